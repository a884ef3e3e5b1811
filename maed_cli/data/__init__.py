"""Datasets for evaluation: the 3DPW release, VIBE/MAED db files, all as one EvalSet."""
