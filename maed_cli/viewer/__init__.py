"""`maed view`: the results of a run in a browser page — video, 3D scene, joint angles."""
