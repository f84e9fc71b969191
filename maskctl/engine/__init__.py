"""Training and evaluation machinery: fit one fold, k-fold runs, checkpoints, metrics, DDP."""
