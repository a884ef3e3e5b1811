"""Datasets: training sets (training_sets/) and evaluation sets (evaluation_sets/, all as one
EvalSet). db.py reads VIBE/MAED `*_db.pt` files into an EvalSet."""
