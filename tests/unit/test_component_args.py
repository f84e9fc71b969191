"""A component's settings from a recipe: global fields by name, <kind>_args over them, checked
against the factory's signature before any work."""
import pytest
import torch

from maskctl.components.settings import component_settings
from maskctl.config import TrainConfig
from maskctl.core.errors import MaskctlError
from maskctl.engine.dry_step import check_components
from maskctl.registry import OPTIMIZERS

TINY = {"model": "test_resnet", "size": "64x48"}  # the dry training step in milliseconds


def test_global_fields_fill_the_settings_the_component_names():
    assert component_settings("optimizer", TrainConfig(optimizer="adam", lr=0.01, momentum=0.5)) == {"lr": 0.01, "weight_decay": 1e-5}
    sgd = component_settings("optimizer", TrainConfig(optimizer="sgd", lr=0.01, momentum=0.5, nesterov=False))
    assert (sgd["momentum"], sgd["nesterov"]) == (0.5, False)
    assert component_settings("scheduler", TrainConfig(scheduler="cosine", epochs=7)) == {"epochs": 7}
    assert component_settings("scheduler", TrainConfig(scheduler="step", t0=4)) == {"t0": 4}  # not the restarts' gamma


def test_args_override_the_global_fields_and_reach_only_the_losses_that_take_them():
    assert component_settings("loss", TrainConfig(loss="focal", focal_gamma=3.0)) == {"gamma": 3.0}
    assert component_settings("loss", TrainConfig(loss="focal", focal_gamma=3.0, loss_args={"gamma": 1})) == {"gamma": 1.0}
    mix = TrainConfig(loss="focal:0.6,f1:0.4", loss_args={"gamma": 0.5, "epsilon": 1e-6})
    from maskctl.components.losses import FocalLoss, SoftF1Loss, build_loss

    built = build_loss(mix.loss, None, **component_settings("loss", mix))
    focal, f1 = built.parts
    assert isinstance(focal, FocalLoss) and focal.gamma == 0.5
    assert isinstance(f1, SoftF1Loss) and f1.epsilon == 1e-6
    assert component_settings("loss", TrainConfig(loss="ce")) == {}  # focal_gamma is no setting of ce


def test_yaml_lists_become_the_tuples_a_factory_asks_for():
    settings = component_settings("optimizer", TrainConfig(optimizer="adamw", optimizer_args={"betas": [0.8, 0.9], "eps": 1}))
    assert settings["betas"] == (0.8, 0.9) and settings["eps"] == 1.0 and isinstance(settings["eps"], float)


@pytest.mark.parametrize("kind, config, expected", [
    ("optimizer", TrainConfig(optimizer="adam", optimizer_args={"betaz": [0.9, 0.99]}),
     "optimizer_args: optimizer adam takes no setting 'betaz' (did you mean betas?); its settings: amsgrad, betas, eps, lr, weight_decay"),
    ("optimizer", TrainConfig(optimizer="adam", optimizer_args={"params": 1}), "params is given by maskctl itself"),
    ("scheduler", TrainConfig(scheduler="constant", scheduler_args={"factor": 0.1}), "scheduler constant takes no setting 'factor'; its settings: none"),
    ("loss", TrainConfig(loss="ce:0.5,f1:0.5", loss_args={"gamma": 2}), "loss ce and f1 takes no setting 'gamma'"),
    ("sampler", TrainConfig(sampler="weighted", sampler_args={"powr": 0.5}), "(did you mean power?)"),
    ("optimizer", TrainConfig(optimizer="adam", optimizer_args={"betas": [0.9]}), "adam's setting betas must be tuple[float, float]"),
    ("optimizer", TrainConfig(optimizer="adam", optimizer_args={"eps": "small"}), "adam's setting eps must be float"),
    ("model", TrainConfig(model="multihead", model_args={"depth": 3}), "model multihead takes no setting 'depth'"),
])
def test_a_setting_the_component_does_not_take_is_one_line(kind, config, expected):
    with pytest.raises(MaskctlError) as info:
        component_settings(kind, config)
    assert expected in str(info.value)


@pytest.mark.parametrize("config, expected", [
    (TrainConfig(model="test_resnet", optimizer="adam", optimizer_args={"betas": [1.5, 0.9]}), "optimizer adam: Invalid beta parameter"),
    (TrainConfig(model="test_resnet", scheduler="cosine-warmup-restarts", t0=3, t_up=3), "scheduler needs t0 >= 1"),
    (TrainConfig(model="test_resnet", model_args={"no_such_timm_arg": 1}), "model test_resnet does not take model_args no_such_timm_arg"),
])
def test_values_a_component_refuses_fail_before_any_work(config, expected):
    with pytest.raises(MaskctlError, match=expected):
        check_components(config)


@pytest.mark.parametrize("settings, component, setting", [
    ({"optimizer": "adamp", "optimizer_args": {"eps": -1}}, "optimizer adamp", "eps=-1.0"),
    ({"optimizer": "adamp", "optimizer_args": {"eps": -1e-3}}, "optimizer adamp", "eps=-0.001"),
    ({"model_args": {"drop_path_rate": 3}}, "model test_resnet", "drop_path_rate=3"),
    ({"model_args": {"drop_path_rate": 1.5}}, "model test_resnet", "drop_path_rate=1.5"),
    ({"model_args": {"drop_block_rate": 2}}, "model test_resnet", "drop_block_rate=2"),
    ({"model": "multihead", "backbone": "test_resnet", "dataset": "mask-multitask", "model_args": {}, "optimizer": "adamp",
      "optimizer_args": {"eps": -5}}, "optimizer adamp", "eps=-5.0"),
])
def test_settings_torch_refuses_only_in_training_fail_in_the_dry_step(settings, component, setting):
    """Built, these components are fine; the dry training step on a dummy batch meets the refusal."""
    with pytest.raises(MaskctlError) as info:
        check_components(TrainConfig(**{**TINY, **settings}))
    message = str(info.value)
    assert message.startswith(f"{component}: ") and setting in message and "\n" not in message


def test_the_dry_step_passes_a_recipe_that_trains():
    check_components(TrainConfig(**TINY, model_args={"drop_path_rate": 0.1}, mix="cutmix", ema=0.9, clip_grad=1.0, class_weights=True))
    check_components(TrainConfig(model="multihead", backbone="test_resnet", dataset="mask-multitask", size="64x48", loss="focal:0.6,f1:0.4"))


def test_a_plugin_optimizer_gets_its_own_settings_without_a_new_field(monkeypatch):
    monkeypatch.setattr(OPTIMIZERS, "_entries", dict(OPTIMIZERS._entries))  # registered for this test only

    @OPTIMIZERS.register("sgd-plugin-test")
    def plugin(params, lr: float, dampening: float = 0.0, warm_steps: int = 0):
        optimizer = torch.optim.SGD(params, lr=lr, dampening=dampening)
        optimizer.warm_steps = warm_steps
        return optimizer

    config = TrainConfig(**TINY, optimizer="sgd-plugin-test", lr=0.5, optimizer_args={"warm_steps": 7, "dampening": 0.1})
    check_components(config)
    made = OPTIMIZERS.create(config.optimizer, params=[torch.nn.Parameter(torch.zeros(1))], **component_settings("optimizer", config))
    assert made.warm_steps == 7 and made.param_groups[0]["dampening"] == 0.1 and made.param_groups[0]["lr"] == 0.5
