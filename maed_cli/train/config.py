"""Training configuration: nested dataclasses, read from YAML, overridden by `key=value`.

    cfg = load_config("configs/stage2.yaml", ["optim.lr=5e-5", "model.num_blocks=3"])

A YAML file may name a `base:` file (relative to itself) whose values it overrides, so the
dataset presets only state what differs. Unknown keys are an error naming the key, never
silently ignored. Values of overrides are parsed as YAML (`[60, 90]`, `true`, `null`, `1e-4`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..model.encoder import ST_MODES


@dataclass
class ModelConfig:
    num_blocks: int = 6  # 1..12 (the supplementary's Figure 1 sweeps this)
    num_heads: int = 12
    st_mode: str = "parallel"  # stage 1: vanilla (spatial only), stage 2: parallel
    hidden_dim: int = 1024


@dataclass
class InitConfig:
    # A maed checkpoint (e.g. stage 1's best.pt) whose weights start this run. Keys the
    # network lacks/has extra (temp_embed, ts_attn between vanilla and parallel) are reported.
    pretrained: str | None = None
    reinit_decoder: bool = True  # official stage 2: only the encoder is taken over
    # A local timm R50+ViT-B/16 ImageNet-21k file (.pth/.bin/.npz); never downloaded.
    timm_vit: str | None = None


@dataclass
class BodyConfig:
    smpl: str | None = None  # SMPL file; else the installed asset (maed setup smpl)
    j_regressor_extra: str | None = None  # else the installed asset
    j_regressor_h36m: str | None = None  # needed for 3DPW validation


@dataclass
class DataConfig:
    data_dir: str = "data"  # holds database/<name>_<split>_db.pt and the image folders
    # Per-dataset image folder (relative to data_dir or absolute); default: data_dir/<name>.
    image_roots: dict[str, str] = field(default_factory=dict)
    video_2d: list[str] = field(default_factory=lambda: ["insta", "posetrack", "pennaction"])
    video_3d: list[str] = field(default_factory=lambda: ["3dpw", "mpii3d", "h36m"])
    images: list[str] = field(default_factory=lambda: ["coco2014-all", "lspet", "mpii"])
    # Every k-th db row of an image dataset (official: mpii3d 5 when used as images).
    image_subsample: dict[str, int] = field(default_factory=lambda: {"mpii3d": 5})
    batch_2d: int = 3  # clips per process and step
    batch_3d: int = 4
    batch_img: int = 7  # images per process and step (stage 2: hybrid image batch)
    seqlen: int = 16  # frames per training clip
    sample_pool: int = 128  # consecutive db rows a clip is drawn from (interval pool/seqlen)
    overlap: float = 0.5  # pool windows: stride pool*(1-overlap), or the int itself if >= 1
    overlap_by_dataset: dict[str, float] = field(default_factory=lambda: {"3dpw": 8})
    num_workers: int = 4
    check_images: bool = True  # stat every image path when the datasets are built
    skip_bad_samples: bool = False  # drop bad rows/clips with a count instead of stopping


@dataclass
class AugmentConfig:
    crop_scale: float = 1.3  # crop side = scale x the db box side
    random_crop_p: float = 0.2
    random_crop_scale: list[float] = field(default_factory=lambda: [0.7, 1.3])
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.3])  # 3D video
    erase_p: float = 0.3  # per frame, one side per clip
    erase_max: float = 0.7  # largest erased fraction of the width
    flip_p: float = 0.5
    color: bool = True  # stage 1 turns colour jitter and erase off (official configs)
    erase: bool = True


@dataclass
class LossConfig:
    kp_2d: float = 300.0
    kp_3d: float = 600.0
    shape: float = 0.06
    pose: float = 60.0
    norm: float = 1.0


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 1e-5  # Adam L2, as the official code
    milestones: list[int] = field(default_factory=lambda: [60, 90])
    gamma: float = 0.1
    epochs: int = 100
    iters_per_epoch: int | None = None  # None: one pass over the main dataset
    grad_clip: float | None = None  # max global gradient norm; None = off (official)
    amp: str = "auto"  # auto (bf16 on GPUs that support it) | bf16 | fp16 | off


@dataclass
class ValConfig:
    enabled: bool = True
    dataset: str = "3dpw"
    split: str = "val"
    every_epochs: int = 1
    max_frames: int | None = None  # only the first rows (quick checks)
    batch: int = 8  # 128-frame pools per forward pass
    interp: int = 1  # run every k-th frame (1, 2, 4, 8) and interpolate: faster, rougher


@dataclass
class TrainConfig:
    stage: int = 2  # 1: images only (vanilla), 2: hybrid video + images
    # stage 2: "accumulate" = video batch fwd/bwd, image batch fwd/bwd, one step
    # (supplementary); "weighted" = one loss weighted by frame counts (official code).
    hybrid: str = "accumulate"
    seed: int = 0
    out_dir: str = "runs/maed"
    device: str = "auto"  # auto | cpu | cuda | cuda:N (as maed_cli.devices)
    log_every: int = 10  # steps between CSV/TensorBoard rows
    save_every_steps: int = 0  # extra mid-epoch checkpoints (0 = only at epoch ends)
    keep_epoch_checkpoints: bool = False
    max_steps: int | None = None  # stop early (smoke tests, debugging)
    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    body: BodyConfig = field(default_factory=BodyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.stage not in (1, 2):
            raise InputError(f"config: stage must be 1 or 2, got {self.stage}")
        if self.hybrid not in ("accumulate", "weighted"):
            raise InputError(f"config: hybrid must be 'accumulate' or 'weighted', "
                             f"got {self.hybrid!r}")
        if not 1 <= self.model.num_blocks <= 12:
            raise InputError(f"config: model.num_blocks must be in 1..12, "
                             f"got {self.model.num_blocks}")
        if self.model.st_mode not in ST_MODES:
            raise InputError(f"config: model.st_mode {self.model.st_mode!r} is unknown; "
                             f"use one of {', '.join(ST_MODES)}")
        if self.stage == 1 and self.model.st_mode != "vanilla":
            raise InputError("config: stage 1 trains images only; use model.st_mode=vanilla")
        if not 1 <= self.data.seqlen <= 16:
            raise InputError(f"config: data.seqlen must be in 1..16 (the temporal embedding "
                             f"has 16 slots), got {self.data.seqlen}")
        if self.data.sample_pool < self.data.seqlen:
            raise InputError("config: data.sample_pool must be >= data.seqlen")
        if self.optim.amp is False:  # YAML reads a bare `off` as false
            self.optim.amp = "off"
        if self.optim.amp not in ("auto", "bf16", "fp16", "off"):
            raise InputError(f"config: optim.amp must be auto|bf16|fp16|off, "
                             f"got {self.optim.amp!r}")
        if self.stage == 1 and not self.data.images:
            raise InputError("config: stage 1 needs at least one image dataset (data.images)")
        if self.stage == 2 and not self.data.video_3d and not self.data.video_2d:
            raise InputError("config: stage 2 needs video datasets (data.video_2d/video_3d)")
        self._validate_numbers()

    def _validate_numbers(self) -> None:
        o, d = self.optim, self.data
        _whole(o.epochs, "optim.epochs", 1)
        _positive(o.lr, "optim.lr")
        _positive(o.weight_decay, "optim.weight_decay", zero_ok=True)
        _positive(o.gamma, "optim.gamma")
        if o.iters_per_epoch is not None:
            _whole(o.iters_per_epoch, "optim.iters_per_epoch", 1)
        if o.grad_clip is not None:
            _positive(o.grad_clip, "optim.grad_clip")
        if self.max_steps is not None:
            _whole(self.max_steps, "max_steps", 0)
        _whole(self.save_every_steps, "save_every_steps", 0)
        _whole(d.num_workers, "data.num_workers", 0)
        # A batch size only matters for a stream that is built (build_datasets): presets
        # without images keep stage 2's batch_img, and stage 1 ignores the video batches,
        # so 0 is fine there.
        for key, names, used in (("batch_2d", "video_2d", self.stage == 2),
                                 ("batch_3d", "video_3d", self.stage == 2),
                                 ("batch_img", "images", True)):
            if used and getattr(d, names):
                _whole(getattr(d, key), f"data.{key}", 1,
                       f"while data.{names} lists datasets (set data.{names}=[] to train "
                       f"without them)")
            else:
                _whole(getattr(d, key), f"data.{key}", 0)
        if self.val.enabled:
            _whole(self.val.batch, "val.batch", 1)


def _whole(value: Any, key: str, minimum: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"config: {key} must be a whole number >= {minimum}"
                         f"{' ' + why if why else ''}, got {value!r}")


def _positive(value: Any, key: str, zero_ok: bool = False) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)
    if not number or value < 0 or (value == 0 and not zero_ok):
        raise InputError(f"config: {key} must be a number {'>= 0' if zero_ok else '> 0'}, "
                         f"got {value!r}")


def _from_dict(cls: type, values: dict, where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise InputError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        default = known[key].default_factory() if known[key].default_factory is not \
            dataclasses.MISSING else known[key].default
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise InputError(f"{where}: {key} must be a mapping")
            kwargs[key] = _from_dict(type(default), value, f"{where}.{key}")
        else:
            kwargs[key] = _coerce(value, str(known[key].type), f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, type_name: str, where: str) -> Any:
    """YAML 1.1 reads `5e-5` as a string and `1` as an int: make numbers what the field says."""
    if value is None or isinstance(value, bool):
        return value
    base = type_name.split("|")[0].strip()
    try:
        if base == "float" and isinstance(value, (int, str)):
            return float(value)
        if base == "int" and isinstance(value, str):
            return int(value)
    except ValueError:
        raise InputError(f"{where}: expected a number, got {value!r}") from None
    return value


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in (
                "image_roots", "image_subsample", "overlap_by_dataset"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise InputError(f"{path}: `base:` files form a cycle")
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:  # a 0-byte or comments-only file: most likely the wrong file
        raise InputError(f"{path}: the file holds no settings; a training config is a mapping "
                         f"of keys to values (e.g. `base: stage2.yaml`, see configs/)")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a training config is a mapping of keys to values")
    base = data.pop("base", None)
    if base:
        data = _merge(_read_yaml(path.parent / base, seen + (path,)), data)
    return data


def apply_override(data: dict, override: str) -> None:
    """`a.b.c=value` into the nested dict; the value is parsed as YAML."""
    if "=" not in override:
        raise InputError(f"override {override!r} is not key=value (e.g. optim.lr=5e-5)")
    key, _, text = override.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = value


CONFIG_DIRS = (Path("configs"), Path(__file__).resolve().parents[2] / "configs")


def resolve_config_path(path: str | Path) -> Path:
    """A file, or a bare preset name (`stage2`, `presets/vibe`) looked up in ./configs and in
    the configs folder of the maed checkout."""
    path = Path(path)
    if path.is_file():
        return path
    for folder in CONFIG_DIRS:
        for candidate in (folder / path, folder / f"{path}.yaml"):
            if candidate.is_file():
                return candidate
    raise InputError(f"config file not found: {path} (nor as a preset in "
                     f"{' or '.join(str(d) for d in CONFIG_DIRS)})")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
                ) -> TrainConfig:
    data = _read_yaml(resolve_config_path(path)) if path else {}
    for override in overrides:
        apply_override(data, override)
    try:
        cfg = _from_dict(TrainConfig, data, str(path or "config"))
    except TypeError as exc:
        raise InputError(f"{path}: {exc}") from None
    cfg.validate()
    return cfg


def config_from_dict(data: dict) -> TrainConfig:
    cfg = _from_dict(TrainConfig, data, "checkpoint config")
    cfg.validate()
    return cfg
