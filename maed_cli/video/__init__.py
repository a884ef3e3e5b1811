"""Everything between a video file and MAED's input crops, with no SMPL and no network:
decoding and encoding (io), person detection (detect), tracking (track), cropping (crop).
"""
