"""Evaluation sets, all as one EvalSet (evalset.py): the official 3DPW release (threedpw.py)
and a synthetic release in its layout for tests (synthetic_3dpw.py).
"""
