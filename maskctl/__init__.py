"""maskctl: train and ship face-mask status classifiers from one command line."""
import os

# Importing albumentations otherwise asks the package index for updates (slow, and no network here).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
