import pytest

from maskctl import registry as R
from maskctl.core import plugins
from maskctl.core.errors import MaskctlError


def make_registry():
    reg = R.Registry("widget")

    @reg.register("alpha", "the first")
    def alpha(x=1):
        return ("alpha", x)

    @reg.register("alphabet")
    def alphabet():
        """Doc line one.

        More text."""
        return "alphabet"

    @reg.register("beta")
    def beta():
        return "beta"

    return reg


def test_register_create_names():
    reg = make_registry()
    assert reg.names() == ["alpha", "alphabet", "beta"]
    assert reg.names("alpha*") == ["alpha", "alphabet"]
    assert reg.names("b*") == ["beta"]
    assert reg.names("z*") == []
    assert reg.create("alpha", x=5) == ("alpha", 5)
    assert reg.create("beta") == "beta"
    assert "alpha" in reg and "gamma" not in reg
    descriptions = {e.name: e.description for e in reg.entries()}
    assert descriptions == {"alpha": "the first", "alphabet": "Doc line one.", "beta": ""}


def test_unknown_name_lists_valid_and_suggests_closest():
    reg = make_registry()
    with pytest.raises(R.UnknownNameError) as info:
        reg.create("bota")
    message = str(info.value)
    assert isinstance(info.value, MaskctlError)
    assert "unknown widget 'bota'" in message
    assert "Did you mean 'beta'?" in message
    assert "Valid: alpha, alphabet, beta" in message


def test_unknown_name_without_close_match_has_no_hint():
    reg = make_registry()
    with pytest.raises(R.UnknownNameError) as info:
        reg.get("zzzzzzzz")
    assert "Did you mean" not in str(info.value)
    assert "Valid: alpha, alphabet, beta" in str(info.value)


def test_duplicate_registration_raises():
    reg = make_registry()
    with pytest.raises(ValueError, match="registered twice"):
        @reg.register("beta")
        def other():
            return None
    assert reg.create("beta") == "beta"  # the first one is kept


def test_fallback_resolves_outside_names():
    reg = R.Registry("thing")
    reg.set_fallback(lambda name: (lambda: name.upper()) if name.startswith("x") else None, lambda: ["xyz"], ", or any x-name")
    assert reg.create("xyz") == "XYZ"
    with pytest.raises(R.UnknownNameError, match="or any x-name"):
        reg.create("yxz")


@pytest.mark.parametrize("kind, expected", [
    ("losses", "LOSSES"), ("loss", "LOSSES"), ("model", "MODELS"), ("models", "MODELS"),
    ("tta", "TTA_POLICIES"), ("augmentation", "AUGMENTATIONS"), ("dataset", "DATASETS"), ("scheduler", "SCHEDULERS"),
])
def test_registry_for_singular_and_plural(kind, expected):
    assert R.registry_for(kind) is getattr(R, expected)


def test_registry_for_unknown_kind_suggests():
    with pytest.raises(R.UnknownNameError) as info:
        R.registry_for("lossez")
    assert "Did you mean 'losses'?" in str(info.value)
    assert "Valid: datasets, models, losses" in str(info.value)


def test_a_registry_fills_itself_once_at_its_first_lookup(monkeypatch):
    calls = []

    def fill(registry):
        calls.append(registry.kind)
        if len(calls) == 1:
            raise MaskctlError("a broken plugin")  # a failed fill is tried again at the next lookup
        reg.register("late")(lambda: "late")

    monkeypatch.setattr(R, "_import_locations", fill)
    reg = R.Registry("widget")
    reg.register("early")(lambda: "early")
    assert calls == []  # registering is no lookup
    with pytest.raises(MaskctlError, match="a broken plugin"):
        reg.names()
    assert reg.names() == ["early", "late"]
    assert "late" in reg and reg.create("late") == "late" and reg.entries()
    assert calls == ["widget", "widget"]


def test_a_lookup_imports_only_its_own_kind_without_any_call():
    """In a fresh interpreter, as a command runs: no load_plugins() anywhere. A TTA lookup imports
    the TTA module only (no torch: predicting from an ONNX export checks its policy); a loss
    lookup then fills the losses."""
    import os
    import subprocess
    import sys

    script = ("import sys\n"
              "from maskctl.registry import LOSSES, TTA_POLICIES\n"
              "print('hflip' in TTA_POLICIES.names(), 'torch' in sys.modules, 'focal' in LOSSES.names())\n")
    env = {k: v for k, v in os.environ.items() if k != plugins.PLUGINS_ENV}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "True"]


def test_user_plugins_load_once_for_all_registries(tmp_path, monkeypatch):
    plugin = tmp_path / "user_plugin.py"
    plugin.write_text("from maskctl.registry import LOSSES\n@LOSSES.register('user-plugin-loss')\ndef made():\n    return 'made'\n")
    R.load_plugins()  # maskctl's own entries first: the copy below keeps them
    monkeypatch.setattr(R.LOSSES, "_entries", dict(R.LOSSES._entries))  # registered for this test only
    monkeypatch.setenv(plugins.PLUGINS_ENV, str(plugin))
    monkeypatch.setattr(R, "_user_plugins_loaded", False)  # as in a fresh process
    loads = []
    real = R.load_plugins
    monkeypatch.setattr(R, "load_plugins", lambda: loads.append(1) or real())
    for kind, location in (("loss", "json"), ("tta policy", "csv"), ("model", "wave")):  # three registries met for the first time
        R.Registry(kind, locations=(location,)).names()
    assert R.LOSSES.create("user-plugin-loss") == "made"
    assert loads == [1]


def test_load_plugins_fills_every_registry():
    R.load_plugins()
    assert set(R.DATASETS.names()) >= {"mask-base", "mask-profile", "mask-multitask", "image-folder"}
    assert set(R.LOSSES.names()) >= {"ce", "focal", "label-smoothing", "f1"}
    assert set(R.SAMPLERS.names()) >= {"none", "weighted"}
    assert set(R.SCHEDULERS.names()) >= {"cosine-warmup-restarts", "cosine", "plateau", "step"}
    assert set(R.OPTIMIZERS.names()) >= {"adamp", "adam", "adamw", "sgd"}
    assert set(R.AUGMENTATIONS.names()) >= {"seed", "light", "none"}
    assert set(R.TTA_POLICIES.names()) >= {"none", "hflip"}
    assert "multihead" in R.MODELS.names()
    for name, reg in R.REGISTRIES.items():
        assert reg.names(), f"registry {name} is empty"
    R.load_plugins()  # importing twice must not re-register (and raise)


def test_models_fallback_to_timm():
    R.load_plugins()
    factory = R.MODELS.get("test_resnet")
    model = factory(num_classes=7, pretrained=False)
    assert model.num_classes == 7
    with pytest.raises(R.UnknownNameError) as info:
        R.MODELS.get("definitely_not_a_model_xyz")
    assert "unknown model 'definitely_not_a_model_xyz'" in str(info.value)


@pytest.mark.parametrize("pattern", ["test_res*", "*resnet*", "test_resne?"])
def test_models_fallback_refuses_wildcards(pattern):
    """timm.list_models treats its argument as a pattern; a model name with wildcards is not a
    model and must fail at lookup with the usual message, not later inside timm."""
    R.load_plugins()
    with pytest.raises(R.UnknownNameError):
        R.MODELS.get(pattern)


def test_models_fallback_accepts_pretrained_tags():
    """timm names carry pretrained tags (`resnet18.a1_in1k`, what the hub weights are filed
    under); timm.create_model and timm.is_model accept them, so the registry should too."""
    import timm

    R.load_plugins()
    assert timm.is_model("test_resnet.r160_in1k")
    factory = R.MODELS.get("test_resnet.r160_in1k")
    assert factory(num_classes=4, pretrained=False).num_classes == 4


def test_plugins_from_the_environment(tmp_path, monkeypatch):
    plugin = tmp_path / "my_losses.py"
    plugin.write_text(
        "from maskctl.registry import LOSSES\n"
        "@LOSSES.register('plugin-test-loss', 'from a user plugin file')\n"
        "def made(**_):\n    return 'made'\n"
    )
    monkeypatch.setattr(R.LOSSES, "_entries", dict(R.LOSSES._entries))  # registered for this test only
    monkeypatch.setenv(plugins.PLUGINS_ENV, f" json , {plugin}")  # a module name and a file, spaces allowed
    R.load_plugins()
    R.load_plugins()  # a second call does not register twice
    assert R.LOSSES.create("plugin-test-loss") == "made"


@pytest.mark.parametrize("content, expected", [
    (None, "FileNotFoundError"),
    ("raise RuntimeError('boom')", "RuntimeError: boom"),
])
def test_a_broken_plugin_is_one_clear_error(tmp_path, monkeypatch, content, expected):
    plugin = tmp_path / "broken.py"
    if content is not None:
        plugin.write_text(content)
    monkeypatch.setenv(plugins.PLUGINS_ENV, str(plugin))
    with pytest.raises(MaskctlError, match=f"cannot load plugin .*broken.py.*{expected}"):
        R.load_plugins()


def test_an_unknown_plugin_module_names_it(monkeypatch):
    monkeypatch.setenv(plugins.PLUGINS_ENV, "no_such_maskctl_plugin")
    with pytest.raises(MaskctlError, match="no_such_maskctl_plugin"):
        R.load_plugins()
