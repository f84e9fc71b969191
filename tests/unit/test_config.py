"""Recipe loading: shipped recipes, overrides, and unsetting a recipe's value."""
from maskctl.config import load_config


def test_pretrained_none_unsets_the_seed_recipes_hub_weights():
    assert load_config("seed").pretrained == "hub"
    assert load_config("seed", {"pretrained": "none"}).pretrained is None
    assert load_config("seed", {"pretrained": "None"}).pretrained is None


def test_command_line_values_override_the_recipe():
    config = load_config("seed", {"batch_size": 32, "optimizer": "adamw", "epochs": None})
    assert (config.batch_size, config.optimizer, config.epochs) == (32, "adamw", 10)
