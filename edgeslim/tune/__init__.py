"""Hyperparameter search with Optuna (edgeslim tune)."""
