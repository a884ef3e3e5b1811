"""Training sets: VIBE/MAED `*_train_db.pt` files -> clips and images (datasets.py), their
augmentation (augment.py), and small synthetic training data for tests (synthetic_train.py).
"""
