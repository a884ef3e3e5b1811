"""Evaluation: error metrics (pure functions) and the MAED evaluation protocol."""
