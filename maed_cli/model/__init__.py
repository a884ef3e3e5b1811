"""The MAED network (no video, no SMPL): backbone, STE encoder, KTD decoder, checkpoints."""
from .checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from .maed import MAED, MAEDConfig, count_parameters

__all__ = ["MAED", "MAEDConfig", "count_parameters", "LoadedCheckpoint", "load_checkpoint",
           "save_checkpoint"]
