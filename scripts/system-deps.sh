#!/usr/bin/env bash
# Debian/Ubuntu packages maed needs at run time: OpenGL/EGL/OSMesa for headless rendering,
# libGL/glib for OpenCV; Chromium (and its WebDriver) for `maed view`'s browser tests.
# Installs only what is missing; needs root or sudo.
set -euo pipefail
PACKAGES=(libgl1 libglib2.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libgles2
          chromium chromium-driver)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "maed: please install the equivalents of: ${missing[*]}" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "maed: run as root: apt-get install ${missing[*]}" >&2; exit 0; fi
fi
echo "maed: installing system packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
