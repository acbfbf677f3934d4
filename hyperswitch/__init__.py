"""hyperswitch: search hyperparameters and optimizer-switching policies on Ray Tune + Optuna."""

__version__ = "0.1.0"
