"""Shipped tune search spaces: taken by name like shipped recipes, listed, and valid for the recipe they name."""
import pytest

from maskctl.config import SPACES_DIR, load_config, shipped_spaces
from maskctl.core.errors import MaskctlError
from maskctl.tune.space import read_space


def test_the_levers_space_is_shipped_listed_and_fits_cpu_score():
    spaces = dict(shipped_spaces())
    assert "levers" in spaces and "age head" in spaces["levers"]
    dimensions = {d.name: d for d in read_space("levers", load_config("cpu-score"))}
    assert dimensions["model_args.age_head"].choices == ("bands", "ordinal")
    assert {"loss", "sampler", "augmentation", "mix", "ema", "age_edges", "lr", "weight_decay"} <= set(dimensions)
    assert read_space(SPACES_DIR / "levers.yaml", load_config("cpu-score")) == list(dimensions.values())  # by path as well


def test_an_unknown_space_name_lists_the_shipped_ones_and_suggests():
    with pytest.raises(MaskctlError, match=r"space 'lever' not found .*shipped space: levers\); did you mean levers\?"):
        read_space("lever", load_config("cpu-score"))
