// maed view: the input video beside a three.js scene of every person, one timeline for both,
// and the selected person's joint angles. Data layout: maed_cli/viewer/data.py.
import * as THREE from 'three';
import { OrbitControls } from './vendor/three/OrbitControls.js';

const $ = (id) => document.getElementById(id);
const BACKGROUND = 0x0e0f12;
const KEEP_CHUNKS = 8;            // chunks kept per person around the current one
const PLOT_COLORS = ['#4cc9f0', '#f72585', '#b8f35a', '#ffb703', '#c77dff', '#ff7b54'];

async function fetchData(name) {
  const response = await fetch('data/' + name);
  if (!response.ok) throw new Error(`data/${name}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

// float16 -> float32, one table lookup per value
const HALF = new Float32Array(65536);
for (let h = 0; h < 65536; h++) {
  const sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  HALF[h] = e === 0 ? sign * m * 2 ** -24
    : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
}

const meta = await (await fetch('data/meta.json')).json();
const V = meta.vertices, K = meta.chunk_rows, FPS = meta.fps;
const A = meta.angle_names.length;

// --- three.js scene -------------------------------------------------------------------------
const canvas = $('scene');
const params = new URLSearchParams(window.location.search);  // ?antialias=0|1 overrides
function softwareGL() {  // a CPU rasteriser (SwiftShader, llvmpipe): multisampling costs most
  const gl = document.createElement('canvas').getContext('webgl2');
  const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
  const name = ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : '';
  return /swiftshader|llvmpipe|software/i.test(name);
}
const software = softwareGL();
// ?lod=0|1 overrides: draw played frames with the reduced mesh (default: on software WebGL)
const useLod = params.has('lod') ? params.get('lod') !== '0' : software;
let lodIndex = null, posed = null;  // the reduced mesh; positions of some shown pose
const antialias = params.has('antialias') ? params.get('antialias') !== '0' : !software;
const renderer = new THREE.WebGLRenderer({ canvas, antialias });
const scene = new THREE.Scene();
scene.background = new THREE.Color(BACKGROUND);
const focal = meta.focal || 1000, imageH = meta.height || 720, imageW = meta.width || 1280;
const camera = new THREE.PerspectiveCamera(2 * Math.atan(imageH / 2 / focal) * 180 / Math.PI,
                                           1, 0.05, 500);
scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 1.6));
const headlight = new THREE.DirectionalLight(0xffffff, 1.8);
headlight.position.set(0.3, 0.6, 1);
camera.add(headlight);
scene.add(camera);
const controls = new OrbitControls(camera, canvas);
controls.enableDamping = false;
controls.addEventListener('change', () => { dirty = true; });

const [faceBuffer, cameraBuffer] = await Promise.all([
  fetchData('faces.bin'), meta.frame === 'world' ? fetchData('camera.bin') : null]);
const faces = meta.vertices < 65536 ? new Uint16Array(faceBuffer) : new Uint32Array(faceBuffer);
const index = new THREE.BufferAttribute(faces, 1);

// world frame: per decoded frame id, rotation (9), position (3)
const cameraTable = cameraBuffer ? new Float32Array(cameraBuffer) : null;

const matcap = (() => {
  const size = 128, c = document.createElement('canvas');
  c.width = c.height = size;
  const g = c.getContext('2d');
  const light = g.createRadialGradient(size * 0.42, size * 0.36, size * 0.04, size / 2, size / 2, size / 2);
  light.addColorStop(0, '#ffffff');
  light.addColorStop(0.55, '#b8b8b8');
  light.addColorStop(1, '#3a3a3a');
  g.fillStyle = light;
  g.fillRect(0, 0, size, size);
  const texture = new THREE.CanvasTexture(c);
  texture.colorSpace = THREE.SRGBColorSpace;
  return texture;
})();

// Area-weighted vertex normals (what BufferGeometry.computeVertexNormals gives) in one pass
// over plain typed arrays: the generic version costs several times more per frame and runs
// for every person at every frame of playback.
function vertexNormals(pos, out) {
  out.fill(0);
  for (let f = 0; f < faces.length; f += 3) {
    const a = 3 * faces[f], b = 3 * faces[f + 1], c = 3 * faces[f + 2];
    const ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
    const vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    out[a] += nx; out[a + 1] += ny; out[a + 2] += nz;
    out[b] += nx; out[b + 1] += ny; out[b + 2] += nz;
    out[c] += nx; out[c + 1] += ny; out[c + 2] += nz;
  }
  for (let v = 0; v < out.length; v += 3) {
    const n = Math.hypot(out[v], out[v + 1], out[v + 2]) || 1;
    out[v] /= n; out[v + 1] /= n; out[v + 2] /= n;
  }
}

const PATH_TOLERANCE = 0.01;  // metres a drawn trajectory may leave the pelvis path
const PATH_POINTS = 4000;     // at most this many points per drawn trajectory

// The trajectory with the points a line within PATH_TOLERANCE of the path does not need
// (Ramer-Douglas-Peucker), the tolerance doubled until at most PATH_POINTS stay: every line
// segment costs a software rasteriser as much as a mesh triangle, at every frame, and a
// 10-minute path has tens of thousands of them.
function simplifyPath(path) {
  const n = path.length / 3;
  if (n <= 2) return path;
  const keep = new Uint8Array(n);
  for (let tolerance = PATH_TOLERANCE; ; tolerance *= 2) {
    keep.fill(0);
    keep[0] = keep[n - 1] = 1;
    let kept = 2;
    const stack = [0, n - 1];
    while (stack.length && kept <= PATH_POINTS) {
      const j = stack.pop(), i = stack.pop();
      const ax = path[3 * i], ay = path[3 * i + 1], az = path[3 * i + 2];
      const dx = path[3 * j] - ax, dy = path[3 * j + 1] - ay, dz = path[3 * j + 2] - az;
      const dd = dx * dx + dy * dy + dz * dz;
      let worst = -1, far = tolerance * tolerance;
      for (let k = i + 1; k < j; k++) {
        const px = path[3 * k] - ax, py = path[3 * k + 1] - ay, pz = path[3 * k + 2] - az;
        const t = dd > 0 ? Math.max(0, Math.min(1, (px * dx + py * dy + pz * dz) / dd)) : 0;
        const ex = px - t * dx, ey = py - t * dy, ez = pz - t * dz;
        const e = ex * ex + ey * ey + ez * ez;
        if (e > far) { far = e; worst = k; }
      }
      if (worst >= 0) {
        keep[worst] = 1;
        kept++;
        stack.push(i, worst, worst, j);
      }
    }
    if (kept <= PATH_POINTS) {
      const out = new Float32Array(3 * kept);
      for (let k = 0, o = 0; k < n; k++) {
        if (keep[k]) { out.set(path.subarray(3 * k, 3 * k + 3), o); o += 3; }
      }
      return out;
    }
  }
}

// --- playback mesh for software WebGL --------------------------------------------------------
// A CPU rasteriser pays per triangle, whatever its size on screen: the three SMPL meshes were
// most of a played frame's cost there. While playing, such a renderer draws each person with
// LOD_KEEP of the triangles over the same vertices (so every drawn vertex, and the shading
// normals, are the frame's own); a still frame (paused, stepped, seeked) draws the full mesh.
const LOD_KEEP = 0.5;
const LOD_MIN_COS = 0.2;  // a collapse may not turn a face further than ~78 degrees

// Quadric-error half-edge collapse (Garland-Heckbert with the kept vertex in place): the
// cheapest collapse first, skipping any that would break the surface (non-manifold edges,
// the link condition, a folded face). Returns the kept triangles' index array.
function simplifyMesh(faces, pos, target) {
  const F = faces.length / 3, nV = pos.length / 3;
  const tri = Int32Array.from(faces), alive = new Uint8Array(F).fill(1);
  const vf = Array.from({ length: nV }, () => []);
  for (let f = 0; f < F; f++) for (let c = 0; c < 3; c++) vf[tri[3 * f + c]].push(f);
  const Q = new Float64Array(nV * 10);
  const edgeFaces = new Map();
  for (let f = 0; f < F; f++) {
    const a = tri[3 * f], b = tri[3 * f + 1], c = tri[3 * f + 2];
    const ux = pos[3 * b] - pos[3 * a], uy = pos[3 * b + 1] - pos[3 * a + 1], uz = pos[3 * b + 2] - pos[3 * a + 2];
    const vx = pos[3 * c] - pos[3 * a], vy = pos[3 * c + 1] - pos[3 * a + 1], vz = pos[3 * c + 2] - pos[3 * a + 2];
    let nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    const len = Math.hypot(nx, ny, nz);
    if (len > 0) {
      nx /= len; ny /= len; nz /= len;
      const d = -(nx * pos[3 * a] + ny * pos[3 * a + 1] + nz * pos[3 * a + 2]), w = len / 2;
      const q = [nx * nx, nx * ny, nx * nz, nx * d, ny * ny, ny * nz, ny * d, nz * nz, nz * d, d * d];
      for (const v of [a, b, c]) for (let k = 0; k < 10; k++) Q[10 * v + k] += w * q[k];
    }
    for (const [x, y] of [[a, b], [b, c], [c, a]]) {
      const key = Math.min(x, y) * nV + Math.max(x, y);
      edgeFaces.set(key, (edgeFaces.get(key) || 0) + 1);
    }
  }
  const locked = new Uint8Array(nV);  // on an edge with other than two faces: left alone
  for (const [key, count] of edgeFaces) {
    if (count !== 2) { locked[Math.floor(key / nV)] = 1; locked[key % nV] = 1; }
  }
  const cost = (u, v) => {
    const x = pos[3 * v], y = pos[3 * v + 1], z = pos[3 * v + 2], i = 10 * u, j = 10 * v;
    const q = (k) => Q[i + k] + Q[j + k];
    return q(0) * x * x + 2 * q(1) * x * y + 2 * q(2) * x * z + 2 * q(3) * x + q(4) * y * y
      + 2 * q(5) * y * z + 2 * q(6) * y + q(7) * z * z + 2 * q(8) * z + q(9);
  };
  const neighbours = (u) => {
    const out = new Set();
    for (const f of vf[u]) for (let c = 0; c < 3; c++) if (tri[3 * f + c] !== u) out.add(tri[3 * f + c]);
    return out;
  };
  const stamp = new Uint32Array(nV);
  const heap = [];  // binary min-heap of [cost, u, v, stamp u, stamp v]
  const push = (item) => {
    heap.push(item);
    for (let i = heap.length - 1; i > 0;) {
      const up = (i - 1) >> 1;
      if (heap[up][0] <= heap[i][0]) break;
      [heap[up], heap[i]] = [heap[i], heap[up]];
      i = up;
    }
  };
  const pop = () => {
    const top = heap[0], last = heap.pop();
    if (heap.length) {
      heap[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && heap[l][0] < heap[m][0]) m = l;
        if (r < heap.length && heap[r][0] < heap[m][0]) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]];
        i = m;
      }
    }
    return top;
  };
  const offer = (u, v) => { if (!locked[u] && !locked[v]) push([cost(u, v), u, v, stamp[u], stamp[v]]); };
  for (let u = 0; u < nV; u++) for (const v of neighbours(u)) offer(u, v);
  const normal = (a, b, c) => {
    const ux = pos[3 * b] - pos[3 * a], uy = pos[3 * b + 1] - pos[3 * a + 1], uz = pos[3 * b + 2] - pos[3 * a + 2];
    const vx = pos[3 * c] - pos[3 * a], vy = pos[3 * c + 1] - pos[3 * a + 1], vz = pos[3 * c + 2] - pos[3 * a + 2];
    return [uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx];
  };
  let left = F;
  while (left > target && heap.length) {
    const [, u, v, su, sv] = pop();
    if (su !== stamp[u] || sv !== stamp[v]) continue;
    const shared = vf[u].filter((f) => tri[3 * f] === v || tri[3 * f + 1] === v || tri[3 * f + 2] === v);
    if (shared.length !== 2) continue;
    const opposite = new Set(shared.map((f) => tri[3 * f] + tri[3 * f + 1] + tri[3 * f + 2] - u - v));
    const nv = neighbours(v);
    let common = 0, ok = opposite.size === 2;
    for (const w of neighbours(u)) if (nv.has(w)) { common++; if (!opposite.has(w)) ok = false; }
    if (!ok || common !== 2) continue;
    for (const f of vf[u]) {
      if (shared.includes(f)) continue;
      const corner = [tri[3 * f], tri[3 * f + 1], tri[3 * f + 2]];
      const before = normal(...corner);
      const after = normal(...corner.map((w) => (w === u ? v : w)));
      const dot = before[0] * after[0] + before[1] * after[1] + before[2] * after[2];
      if (!(dot > LOD_MIN_COS * Math.hypot(...before) * Math.hypot(...after))) { ok = false; break; }
    }
    if (!ok) continue;
    for (const f of shared) {
      alive[f] = 0;
      left--;
      for (let c = 0; c < 3; c++) {
        const w = tri[3 * f + c];
        if (w !== u) vf[w] = vf[w].filter((g) => g !== f);
      }
    }
    for (const f of vf[u]) {
      if (!alive[f]) continue;
      for (let c = 0; c < 3; c++) if (tri[3 * f + c] === u) tri[3 * f + c] = v;
      vf[v].push(f);
    }
    vf[u] = [];
    for (let k = 0; k < 10; k++) Q[10 * v + k] += Q[10 * u + k];
    stamp[u]++;
    stamp[v]++;
    for (const w of neighbours(v)) { offer(v, w); offer(w, v); }
  }
  const out = new (faces.constructor)(3 * left);
  for (let f = 0, o = 0; f < F; f++) {
    if (alive[f]) { out[o++] = tri[3 * f]; out[o++] = tri[3 * f + 1]; out[o++] = tri[3 * f + 2]; }
  }
  return out;
}

let anglesArrived = () => {};  // until the plot exists, it is drawn with whatever has arrived

class Person {
  constructor(info) {
    Object.assign(this, info);
    this.visible = true;
    this.chunks = new Map();
    this.shownFrame = null;
    const geometry = new THREE.BufferGeometry();
    this.position = new THREE.BufferAttribute(new Float32Array(V * 3), 3);
    this.position.setUsage(THREE.DynamicDrawUsage);
    this.normal = new THREE.BufferAttribute(new Float32Array(V * 3), 3);
    this.normal.setUsage(THREE.DynamicDrawUsage);
    geometry.setAttribute('position', this.position);
    geometry.setAttribute('normal', this.normal);
    geometry.setIndex(index);
    this.geometry = geometry;
    const color = new THREE.Color().setRGB(...info.color, THREE.SRGBColorSpace);
    // a matcap (lit sphere image) shades like a headlight at one texture read per pixel:
    // cheap enough for software WebGL
    this.mesh = new THREE.Mesh(geometry, new THREE.MeshMatcapMaterial({ color, matcap }));
    this.mesh.frustumCulled = false;
    this.mesh.visible = false;
    scene.add(this.mesh);
    this.css = '#' + color.getHexString(THREE.SRGBColorSpace);
  }

  async load() {
    this.angleTable = null;
    const [frames, path] = await Promise.all([
      fetchData(`tracks/${this.id}/frames.bin`), fetchData(`tracks/${this.id}/path.bin`)]);
    this.frames = new Int32Array(frames);
    this.path = new Float32Array(path);
    const line = new THREE.BufferGeometry();
    line.setAttribute('position', new THREE.BufferAttribute(simplifyPath(this.path), 3));
    this.trajectory = new THREE.Line(line, new THREE.LineBasicMaterial(
      { color: this.mesh.material.color, transparent: true, opacity: 0.6 }));
    overlays.add(this.trajectory);
  }

  // The angle table (the server computes it for every frame) is asked for after the first
  // drawn frame, so that its computation does not delay the first chunks; the plot is drawn
  // when it arrives.
  loadAngles() {
    if (!this.anglesLoaded) {
      this.anglesLoaded = fetchData(`tracks/${this.id}/angles.bin`).then((angles) => {
        this.angleTable = angles.byteLength ? new Float32Array(angles) : null;
        anglesArrived(this);
      });
    }
    return this.anglesLoaded;
  }

  row(frame) {  // the row of source frame `frame`, or -1
    const f = this.frames;
    let lo = 0, hi = f.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (f[mid] === frame) return mid;
      if (f[mid] < frame) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  }

  chunk(c) {
    let entry = this.chunks.get(c);
    if (!entry) {
      entry = { data: null };
      entry.promise = fetchData(`tracks/${this.id}/chunk_${c}.bin`).then((buffer) => {
        const head = new Int32Array(buffer, 0, 2), k = head[1];
        entry.data = { first: head[0], centre: new Float32Array(buffer, 8, k * 3),
                       offsets: new Uint16Array(buffer, 8 + k * 12, k * V * 3) };
      });
      this.chunks.set(c, entry);
    }
    return entry;
  }

  ensure(frame, ahead = 1) {  // start loading what `frame` and the next chunks need
    const row = this.row(frame);
    if (row < 0) return Promise.resolve();
    const c = Math.floor(row / K);
    for (let i = 1; i <= ahead && c + i < this.chunks_count(); i++) {
      // the farthest chunk is asked for at this person's own row of the chunk: the people's
      // requests (and the server's work for them) would otherwise all land on one frame,
      // and under host load the frame after a chunk boundary was dropped most often
      if (i === 1 || i < ahead || row % K >= this.stagger) this.chunk(c + i);
    }
    for (const key of [...this.chunks.keys()]) {
      if (key < c - 1 || key > c + Math.max(ahead, KEEP_CHUNKS)) this.chunks.delete(key);
    }
    return this.chunk(c).promise;
  }

  chunks_count() { return this.chunks_total; }

  apply(frame) {  // show `frame`'s pose; false when its chunk is not loaded yet
    const row = this.row(frame);
    if (row < 0) { this.mesh.visible = false; this.shownFrame = frame; return true; }
    const entry = this.chunks.get(Math.floor(row / K));
    if (!entry || !entry.data) return false;
    if (this.shownFrame !== frame) {
      const { first, centre, offsets } = entry.data, i = row - first;
      const cx = centre[3 * i], cy = centre[3 * i + 1], cz = centre[3 * i + 2];
      const pos = this.position.array, base = i * V * 3;
      for (let v = 0; v < V * 3; v += 3) {
        pos[v] = HALF[offsets[base + v]] + cx;
        pos[v + 1] = HALF[offsets[base + v + 1]] + cy;
        pos[v + 2] = HALF[offsets[base + v + 2]] + cz;
      }
      vertexNormals(pos, this.normal.array);
      posed = pos;
      this.position.needsUpdate = true;
      this.normal.needsUpdate = true;
      this.shownFrame = frame;
    }
    this.mesh.visible = this.visible;
    return true;
  }
}

const overlays = new THREE.Group();
scene.add(overlays);
const people = meta.tracks.map((t, i) => new Person({
  ...t, chunks_total: t.chunks, stagger: i * Math.floor(K / meta.tracks.length) % K }));
await Promise.all(people.map((p) => p.load()));

// floor grid (world) and the input camera's frustum
const allPath = people.flatMap((p) => Array.from(p.path));
const centre = [0, 1, 2].map((k) => {
  let s = 0, n = 0;
  for (let i = k; i < allPath.length; i += 3) { s += allPath[i]; n++; }
  return n ? s / n : 0;
});
if (meta.frame === 'world') {
  let extent = 4;
  for (let i = 0; i < allPath.length; i += 3) {
    extent = Math.max(extent, Math.abs(allPath[i] - centre[0]) * 2 + 2,
                      Math.abs(allPath[i + 2] - centre[2]) * 2 + 2);
  }
  const size = Math.ceil(extent);
  const grid = new THREE.GridHelper(size, size, 0x5a6070, 0x30343d);
  grid.position.set(centre[0], 0, centre[2]);
  overlays.add(grid);
}
const frustum = (() => {
  const d = 0.4, w = imageW / 2 / focal * d, h = imageH / 2 / focal * d;
  const c = [[-w, h, -d], [w, h, -d], [w, -h, -d], [-w, -h, -d]];  // three.js camera axes
  const pts = [];
  for (let i = 0; i < 4; i++) pts.push(0, 0, 0, ...c[i], ...c[i], ...c[(i + 1) % 4]);
  const g = new THREE.BufferGeometry();
  g.setAttribute('position', new THREE.BufferAttribute(new Float32Array(pts), 3));
  const lines = new THREE.LineSegments(g, new THREE.LineBasicMaterial({ color: 0xd0d4dc }));
  lines.matrixAutoUpdate = false;
  overlays.add(lines);
  return lines;
})();

function cameraPose(frame) {  // [rotation (9, row-major), position (3)] of the input camera
  if (!cameraTable) return [[1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]];
  const n = cameraTable.length / 13;
  let best = 0;
  let lo = 0, hi = n - 1;
  while (lo <= hi) {  // nearest decoded frame
    const mid = (lo + hi) >> 1;
    if (cameraTable[13 * mid] <= frame) { best = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (best + 1 < n && Math.abs(cameraTable[13 * (best + 1)] - frame)
      < Math.abs(cameraTable[13 * best] - frame)) best += 1;
  const r = Array.from(cameraTable.subarray(13 * best + 1, 13 * best + 10));
  return [r, Array.from(cameraTable.subarray(13 * best + 10, 13 * best + 13))];
}

function placeFrustum(frame) {
  const [r, t] = cameraPose(frame);
  frustum.matrix.set(r[0], r[1], r[2], t[0], r[3], r[4], r[5], t[1], r[6], r[7], r[8], t[2],
                     0, 0, 0, 1);
  frustum.matrixWorldNeedsUpdate = true;
}

function cameraView(frame = state.frame) {  // look from the input camera (level, no roll)
  const [r, t] = cameraPose(frame);
  const forward = new THREE.Vector3(-r[2], -r[5], -r[8]);
  const position = new THREE.Vector3(...t);
  const toPeople = new THREE.Vector3(...centre).sub(position).dot(forward);
  camera.up.set(0, 1, 0);
  camera.position.copy(position);
  controls.target.copy(position).addScaledVector(forward, Math.max(toPeople, 1));
  controls.update();
  dirty = true;
}

// --- state, timeline, video -----------------------------------------------------------------
const state = { frame: meta.first_frame, playing: false, speed: 1, selected: people[0].id,
                group: 'knee', overlays: true };
let dirty = true, playClock = null, videoFrame = null, stalls = 0;
const timing = { on: false, raf: [], poses: 0, stalls: 0, drawMs: [] };
const video = $('video');
let videoUsable = false;
if (meta.video) {
  video.src = meta.video;
  video.addEventListener('loadeddata', () => { videoUsable = true; seekVideo(state.frame); });
  video.addEventListener('error', () => {
    videoUsable = false;
    $('videonote').textContent = 'this browser cannot play the input video (its codec?); ' +
      'the 3D view works without it';
    console.warn('maed view: the input video cannot be played here');
  });
  if ('requestVideoFrameCallback' in video) {
    const onFrame = (now, md) => {
      videoFrame = Math.round(md.mediaTime * FPS);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
} else {
  $('videopane').classList.add('none');
}
$('source').textContent = `${meta.source} · ${meta.frame} frame · ${FPS} fps`;

function seekVideo(frame) {
  // the middle of frame k's display interval [k/fps, (k+1)/fps): no rounding to k-1
  if (videoUsable) video.currentTime = (frame + 0.5) / FPS;
}

function clampFrame(f) { return Math.max(meta.first_frame, Math.min(meta.last_frame, f)); }

function seek(frame) {
  state.frame = clampFrame(Math.round(frame));
  if (state.playing) startClock(); else seekVideo(state.frame);
  for (const p of people) p.ensure(state.frame);
  dirty = true;
}

function startClock() {
  playClock = { t0: performance.now(), f0: state.frame };
  if (videoUsable) {
    video.playbackRate = state.speed;
    seekVideo(state.frame);
    video.play().catch(() => { videoUsable = false; });
  }
}

function setPlaying(on) {
  if (on && state.frame >= meta.last_frame) state.frame = meta.first_frame;
  state.playing = on;
  $('play').innerHTML = on ? '&#10074;&#10074;' : '&#9654;';
  if (on) startClock(); else { playClock = null; if (videoUsable) video.pause(); seekVideo(state.frame); }
  dirty = true;  // a still frame is drawn with the full mesh
}

function setSpeed(speed) {
  state.speed = speed;
  $('speed').value = String(speed);
  if (state.playing) startClock();
}

function advance(now) {
  let frame;
  if (videoUsable && !video.paused && videoFrame !== null) frame = videoFrame;
  else if (videoUsable && !video.paused) frame = Math.floor(video.currentTime * FPS);
  else frame = playClock.f0 + Math.floor((now - playClock.t0) / 1000 * FPS * state.speed);
  if (frame >= meta.last_frame) { state.frame = meta.last_frame; setPlaying(false); }
  else state.frame = Math.max(meta.first_frame, frame);
}

function visiblePeople() { return people.filter((p) => p.visible); }

function makeLod() {  // ~0.2 s of JS: after the first frame, or at the first play
  if (useLod && !lodIndex && posed) {
    lodIndex = new THREE.BufferAttribute(simplifyMesh(faces, posed, Math.round(LOD_KEEP * faces.length / 3)), 1);
  }
}

function draw() {
  let complete = true;
  if (state.playing) makeLod();
  const shape = state.playing && lodIndex ? lodIndex : index;
  for (const p of people) {
    if (p.geometry.index !== shape) p.geometry.setIndex(shape);
    p.ensure(state.frame, state.playing ? 2 : 1);
    if (!p.apply(state.frame)) complete = false;
    if (!p.visible) p.mesh.visible = false;
  }
  placeFrustum(state.frame);
  overlays.visible = state.overlays;
  renderer.render(scene, camera);
  updateLabels();
  drawPlotMarker();
  const status = complete ? '' : 'loading…';
  if (statusText !== status) $('status').textContent = statusText = status;  // no relayout per frame
  return complete;
}

let lastShown = null, statusText = null;
function tick(now) {
  requestAnimationFrame(tick);
  if (timing.on) timing.raf.push(now);
  if (state.playing) advance(now);
  if (dirty || state.frame !== lastShown || !draw.complete) {
    const t0 = performance.now();
    draw.complete = draw();
    if (timing.on) timing.drawMs.push(performance.now() - t0);
    if (draw.complete) {
      if (timing.on && state.frame !== lastShown) timing.poses++;
      lastShown = state.frame;
      dirty = false;
    } else if (timing.on) timing.stalls++;
  }
}
draw.complete = false;

const SOFTWARE_PIXELS = 250000;  // a CPU rasteriser draws at most this many, scaled up

function resize() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  renderer.setPixelRatio(software ? Math.min(1, Math.sqrt(SOFTWARE_PIXELS / (w * h)))
                                  : window.devicePixelRatio || 1);
  renderer.setSize(w, h, false);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
  dirty = true;
  plotCache = null;
}
new ResizeObserver(resize).observe(canvas);

const lastText = {};
function throttle(key) {  // text updates relayout the page: at most 10 a second while playing
  const now = performance.now();
  if (state.playing && now - (lastText[key] || 0) < 100) return false;
  lastText[key] = now;
  return true;
}

function updateLabels() {
  if (!throttle('labels')) return;
  const t = state.frame / FPS;
  $('framelabel').textContent = `frame ${state.frame} / ${meta.last_frame}   t = ${t.toFixed(3)} s`;
  const slider = $('slider');
  if (Number(slider.value) !== state.frame) slider.value = String(state.frame);
}

// --- people list ------------------------------------------------------------------------------
function buildPeople() {
  const box = $('people');
  box.textContent = '';
  people.forEach((p, i) => {
    const row = document.createElement('div');
    row.className = 'person' + (p.id === state.selected ? ' selected' : '');
    row.title = `frames ${p.first_frame}–${p.last_frame}; key ${i + 1} shows/hides, shift+${i + 1} selects`;
    const box_ = document.createElement('input');
    box_.type = 'checkbox';
    box_.checked = p.visible;
    box_.addEventListener('click', (e) => { e.stopPropagation(); setVisible(p.id, box_.checked); });
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = p.css;
    const label = document.createElement('span');
    label.textContent = `person ${p.id}`;
    row.append(box_, swatch, label);
    row.addEventListener('click', () => select(p.id));
    box.append(row);
  });
}

function setVisible(id, on) {
  const p = people.find((q) => q.id === id);
  if (!p) return;
  p.visible = on;
  buildPeople();
  dirty = true;
}

function select(id) {
  state.selected = id;
  buildPeople();
  plotCache = null;
  dirty = true;
}

// --- angle plot -------------------------------------------------------------------------------
const GROUPS = [['knee', 'knees'], ['hip', 'hips'], ['shoulder', 'shoulders'],
                ['elbow', 'elbows'], ['spine', 'spine'], ['neck', 'neck'], ['trunk', 'trunk lean']];
for (const [key, label] of GROUPS) {
  const option = document.createElement('option');
  option.value = key;
  option.textContent = label;
  $('anglegroup').append(option);
}
$('anglegroup').addEventListener('change', (e) => { state.group = e.target.value; plotCache = null; dirty = true; });
let plotCache = null;
anglesArrived = (p) => { if (p.id === state.selected) { plotCache = null; dirty = true; } };
const plot = $('plot');

function plotColumns() {
  return meta.angle_names.map((name, k) => [name, k]).filter(([name]) =>
    state.group === 'trunk' ? name === 'trunk_lean'
      : name.startsWith(state.group + '_') || name.includes('_' + state.group + '_'));
}

function renderPlot() {
  const p = people.find((q) => q.id === state.selected);
  const w = plot.clientWidth, h = plot.clientHeight;
  const img = document.createElement('canvas');
  img.width = w; img.height = h;
  const g = img.getContext('2d');
  g.fillStyle = '#121418'; g.fillRect(0, 0, w, h);
  const legend = $('plotlegend');
  legend.textContent = '';
  if (!p || !p.angleTable || !w || !h) return { img, p };
  const cols = plotColumns(), n = p.frames.length;
  let lo = Infinity, hi = -Infinity;
  for (const [, k] of cols) for (let i = 0; i < n; i++) {
    const v = p.angleTable[i * A + k];
    if (v < lo) lo = v; if (v > hi) hi = v;
  }
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const pad = 0.08 * (hi - lo); lo -= pad; hi += pad;
  const x0 = 40, f0 = p.first_frame, f1 = Math.max(p.last_frame, f0 + 1);
  const xOf = (f) => x0 + (f - f0) / (f1 - f0) * (w - x0 - 4);
  const yOf = (v) => h - 4 - (v - lo) / (hi - lo) * (h - 8);
  g.strokeStyle = '#2c3039'; g.fillStyle = '#889'; g.font = '10px sans-serif';
  for (const v of [lo + pad, (lo + hi) / 2, hi - pad]) {
    g.beginPath(); g.moveTo(x0, yOf(v)); g.lineTo(w, yOf(v)); g.stroke();
    g.fillText(`${v.toFixed(0)}°`, 2, yOf(v) + 3);
  }
  const step = Math.max(1, Math.floor(n / (w - x0)));  // about one sample per pixel column
  cols.forEach(([name, k], c) => {
    g.strokeStyle = PLOT_COLORS[c % PLOT_COLORS.length];
    g.beginPath();
    for (let i = 0; i < n; i += step) {
      const x = xOf(p.frames[i]), y = yOf(p.angleTable[i * A + k]);
      if (i === 0 || p.frames[i] - p.frames[i - step] > step) g.moveTo(x, y); else g.lineTo(x, y);
    }
    g.stroke();
    const item = document.createElement('span');
    item.style.color = g.strokeStyle;
    item.textContent = name.replaceAll('_', ' ');
    item.dataset.column = String(k);
    legend.append(item);
  });
  return { img, p, xOf, cols };
}

function drawPlotMarker() {
  const w = plot.clientWidth, h = plot.clientHeight;
  if (!w || !h) return;
  if (plot.width !== w || plot.height !== h) { plot.width = w; plot.height = h; plotCache = null; }
  if (!plotCache) plotCache = renderPlot();
  const g = plot.getContext('2d');
  if (!plotCache.drawn) { g.drawImage(plotCache.img, 0, 0); plotCache.drawn = true; }
  const { p, xOf, cols } = plotCache;
  const marker = $('plotmarker');
  marker.hidden = !p || !xOf;
  if (!p || !xOf) return;
  marker.style.height = `${h}px`;
  marker.style.transform = `translateX(${xOf(state.frame).toFixed(1)}px)`;
  if (!throttle('legend')) return;
  const row = p.row(state.frame);
  const items = $('plotlegend').children;
  cols.forEach(([name, k], c) => {
    const value = row >= 0 ? `${p.angleTable[row * A + k].toFixed(1)}°` : '–';
    if (items[c]) items[c].textContent = `${name.replaceAll('_', ' ')} ${value}`;
  });
}

plot.addEventListener('click', (e) => {
  const p = plotCache && plotCache.p;
  if (!p) return;
  const x0 = 40, w = plot.clientWidth, f0 = p.first_frame, f1 = Math.max(p.last_frame, f0 + 1);
  seek(f0 + (e.offsetX - x0) / (w - x0 - 4) * (f1 - f0));
});

// --- controls ---------------------------------------------------------------------------------
const SPEEDS = [0.25, 0.5, 1, 2, 4];
$('slider').min = String(meta.first_frame);
$('slider').max = String(meta.last_frame);
$('slider').addEventListener('input', (e) => seek(Number(e.target.value)));
$('play').addEventListener('click', () => setPlaying(!state.playing));
$('prev').addEventListener('click', () => seek(state.frame - 1));
$('next').addEventListener('click', () => seek(state.frame + 1));
$('speed').addEventListener('change', (e) => setSpeed(Number(e.target.value)));
$('camview').addEventListener('click', () => cameraView());
$('helpbtn').addEventListener('click', () => { $('help').hidden = !$('help').hidden; });
window.addEventListener('keydown', (e) => {
  if (e.target.tagName === 'SELECT' || (e.target.tagName === 'INPUT' && e.target.type !== 'range'
      && e.target.type !== 'checkbox')) return;
  const digit = /^Digit([1-9])$/.exec(e.code);
  if (digit) {
    const p = people[Number(digit[1]) - 1];
    if (p) { if (e.shiftKey) select(p.id); else setVisible(p.id, !p.visible); }
  } else if (e.key === ' ') setPlaying(!state.playing);
  else if (e.key === 'ArrowRight') seek(state.frame + (e.shiftKey ? 10 : 1));
  else if (e.key === 'ArrowLeft') seek(state.frame - (e.shiftKey ? 10 : 1));
  else if (e.key === 'Home') seek(meta.first_frame);
  else if (e.key === 'End') seek(meta.last_frame);
  else if (e.key === ']') setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, SPEEDS.indexOf(state.speed) + 1)]);
  else if (e.key === '[') setSpeed(SPEEDS[Math.max(0, SPEEDS.indexOf(state.speed) - 1)]);
  else if (e.key === 'c') cameraView();
  else if (e.key === 'g') { state.overlays = !state.overlays; dirty = true; }
  else if (e.key === 'h' || e.key === '?') $('help').hidden = !$('help').hidden;
  else if (e.key === 'Escape') $('help').hidden = true;
  else return;
  e.preventDefault();
});

buildPeople();
resize();
cameraView(meta.first_frame);
await Promise.all(people.map((p) => p.ensure(state.frame, 0)));
requestAnimationFrame(tick);

// --- hook for tests and benchmarks (tests/test_viewer_browser.py, benchmarks/viewer_speed.py)
const painted = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
async function settle() {
  await Promise.all(people.map((p) => p.ensure(state.frame)));
  await Promise.all(people.map((p) => p.loadAngles()));
  dirty = true;
  await painted();
}
window.maedViewer = {
  meta,
  geometry: { vertexNormals, simplifyPath, simplifyMesh, faces },
  async seek(frame) { seek(frame); await settle(); return this.info(); },
  async setVisible(id, on) { setVisible(id, on); await settle(); return this.info(); },
  async setOverlays(on) { state.overlays = on; await settle(); return this.info(); },
  async cameraView(frame) { cameraView(frame); await settle(); return this.info(); },
  play() { setPlaying(true); },
  pause() { setPlaying(false); },
  setSpeed,
  startTiming() { Object.assign(timing, { on: true, raf: [], poses: 0, stalls: 0, drawMs: [] }); },
  stopTiming() {
    timing.on = false;
    return { raf: timing.raf.slice(), poses: timing.poses, stalls: timing.stalls,
             drawMs: timing.drawMs.slice() };
  },
  info() {
    const rect = canvas.getBoundingClientRect();
    return { frame: state.frame, playing: state.playing, frameOfReference: meta.frame,
             canvas: { x: rect.left, y: rect.top, width: rect.width, height: rect.height },
             fov: camera.fov, people: people.map((p) => ({ id: p.id, visible: p.visible,
               shownFrame: p.shownFrame, meshVisible: p.mesh.visible,
               triangles: p.geometry.index.count / 3 })) };
  },
};
async function firstFrame() {  // what the benchmark times: no wait for the angle tables
  await Promise.all(people.map((p) => p.ensure(state.frame, 0)));
  dirty = true;
  await painted();
}
window.maedViewerReady = firstFrame().then(() => {
  for (const p of people) p.loadAngles();
  setTimeout(makeLod, 500);
  return performance.now();
});
