"""Evaluation sets, all as one EvalSet (evalset.py): the official 3DPW release (threedpw.py),
VIBE/MAED `*_db.pt` files (db.py), and a synthetic release in the 3DPW layout for tests
(synthetic_3dpw.py).
"""
