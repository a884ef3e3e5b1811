"""Datasets: training sets (training_sets/) and evaluation sets (evaluation_sets/, all as one
EvalSet). Both read VIBE/MAED `*_db.pt` files, each with its own reader: training rows need
clips, augmentation and per-row checks, evaluation rows become an EvalSet."""
