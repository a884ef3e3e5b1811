"""The world layer: one shared, gravity-aligned world frame for every tracked person.

Between the body results and render/export (it knows nothing of video decoding or the CLI):
`camera.py` estimates the camera's rotation from the video (`rotation_fit.py` the
rotation-only fits, `camera_motion.py` the result kept with the run), `vanishing.py` a still
background's straight lines (vanishing directions), `ground.py` the up direction and the
floor, `placement.py` each person's metric, depth-stabilised position, `contacts.py` foot
contacts and the foot lock, `frames.py` the world frame and its file, `build.py` assembles
them (`build_world`).
"""
from .build import WorldBuild, build_world
from .frames import WORLD_FILE, WorldFrame, load_world, save_world, world_joints, world_vertices

__all__ = ["WORLD_FILE", "WorldBuild", "WorldFrame", "build_world", "load_world", "save_world",
           "world_joints", "world_vertices"]
