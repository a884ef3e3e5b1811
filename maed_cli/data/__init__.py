"""Datasets: training sets (training_sets/) and evaluation sets (the 3DPW release, VIBE/MAED
db files, all as one EvalSet)."""
