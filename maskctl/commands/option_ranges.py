"""The sane range of every command option that is not a recipe setting, declared once: the command
line checks its options against it (maskctl/cli, each option's Check) and the Python API its
keywords (maskctl/api/door.py). Recipe settings carry their ranges on their TrainConfig field."""
from __future__ import annotations

from maskctl.config import FIELDS, Range

RANGES: dict[str, dict[str, Range]] = {
    "synth": {"people": Range(1, 20_000), "eval_people": Range(0, 20_000), "label_noise": Range(0, 0.5)},
    "demo": {"people": Range(1, 20_000)},
    "tta_eval": {"min_gain": Range(0, 1)},
    "pseudo": {"min_prob": Range(0, 1)},
    "audit": {"min_evidence": Range(0, 1), "sheet": Range(1, 200), "top": Range(1, 10_000)},
    "explain": {"pairs": Range(1, 1000), "per_pair": Range(1, 100)},
    "bench": {"batches": Range(2, 100_000), "repeats": Range(1, 100)},
    "bench_quality": {"minutes": Range(0, 10_000, low_open=True), "people": Range(1, 20_000), "eval_people": Range(1, 20_000)},
    "tune": {"trials": Range(1, 100_000), "heartbeat": Range(1, 3600)},
}

# Options of other commands that mean a recipe setting (predict's --batch-size, split's --folds)
# take that setting's range.
RECIPE_CHECKS = {name: field.metadata["check"] for name, field in FIELDS.items() if field.metadata.get("check") is not None}


def checks_of(command: str) -> dict:
    """Every range `command`'s options are held to, by option name."""
    return {**RECIPE_CHECKS, **RANGES.get(command, {})}
