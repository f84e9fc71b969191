import time

import pytest
import timm
import torch
from safetensors.torch import save_file

from maskctl.components import models as M
from maskctl.core.errors import MaskctlError


def test_compose_task_logits_probabilities():
    generator = torch.Generator().manual_seed(0)
    mask, gender, age = torch.randn(4, 3, generator=generator), torch.randn(4, 2, generator=generator), torch.randn(4, 3, generator=generator)
    out = M.compose_task_logits(mask, gender, age)
    assert out.shape == (4, 18)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))
    lm, lg, la = mask.log_softmax(1), gender.log_softmax(1), age.log_softmax(1)
    # class = mask * 6 + gender * 3 + age
    for n, (m, g, a) in [(0, (0, 0, 0)), (1, (1, 0, 2)), (2, (2, 1, 1)), (3, (0, 1, 2)), (0, (2, 1, 2))]:
        c = m * 6 + g * 3 + a
        assert out[n, c].item() == pytest.approx((lm[n, m] + lg[n, g] + la[n, a]).item(), abs=1e-6)


def test_compose_by_hand():
    # mask certain (class 1 = incorrect), gender 50/50, age 50/50 between bands 0 and 2
    big = 100.0
    mask = torch.tensor([[-big, big, -big]])
    gender = torch.tensor([[0.0, 0.0]])
    age = torch.tensor([[0.0, -big, 0.0]])
    probs = M.compose_task_logits(mask, gender, age).exp()[0]
    expected = torch.zeros(18)
    expected[[6, 8, 9, 11]] = 0.25
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def multihead():
    torch.manual_seed(0)
    return M.build_model("multihead", num_classes=18, backbone="test_resnet").eval()


def test_multihead_outputs(multihead):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = multihead(x)
        mask, gender, age = multihead(x, tasks=True)
    assert out.shape == (2, 18)
    assert mask.shape == (2, 3) and gender.shape == (2, 2) and age.shape == (2, 3)
    torch.testing.assert_close(out, M.compose_task_logits(mask, gender, age))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))


def test_ordinal_bands_by_hand():
    """Cut logits at the edges say P(age >= 30) = 0.8 and P(age >= 58) = 0.3: bands 0.2 / 0.5 / 0.3."""
    logits = torch.zeros(1, len(M.ORDINAL_AGES))
    logits[0, M.ORDINAL_AGES.index(30)] = torch.logit(torch.tensor(0.8))
    logits[0, M.ORDINAL_AGES.index(58)] = torch.logit(torch.tensor(0.3))
    bands = M.ordinal_band_log_probs(logits, (M.ORDINAL_AGES.index(30), M.ORDINAL_AGES.index(58))).exp()[0]
    torch.testing.assert_close(bands, torch.tensor([0.2, 0.5, 0.3]), atol=1e-6, rtol=0)
    # cuts out of order (older than 58 likelier than older than 30): the middle band is floored, the rest renormalised
    logits[0, M.ORDINAL_AGES.index(58)] = torch.logit(torch.tensor(0.9))
    bands = M.ordinal_band_log_probs(logits, (M.ORDINAL_AGES.index(30), M.ORDINAL_AGES.index(58))).exp()[0]
    assert bands[1] < 1e-5 and bands.sum().item() == pytest.approx(1.0)


def test_cumulative_age_targets():
    targets = M.cumulative_age_targets(torch.tensor([18, 30, 60]))
    assert targets.shape == (3, len(M.ORDINAL_AGES))
    assert targets[0].sum() == 0 and targets[2].sum() == len(M.ORDINAL_AGES)
    assert targets[1, M.ORDINAL_AGES.index(30)] == 1 and targets[1, M.ORDINAL_AGES.index(31)] == 0


def test_ordinal_multihead_reads_its_bands_at_the_run_edges_and_rebuilds_from_meta():
    torch.manual_seed(0)
    model = M.build_model("multihead", 18, backbone="test_resnet", age_edges="30,58", age_head="ordinal").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        mask, gender, cuts = model(x, tasks=True)
    assert cuts.shape == (2, len(M.ORDINAL_AGES))
    edges = (M.ORDINAL_AGES.index(30), M.ORDINAL_AGES.index(58))
    torch.testing.assert_close(out, M.compose_task_logits(mask, gender, M.ordinal_band_log_probs(cuts, edges)))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))
    soft = model.soft_targets(torch.tensor([[0, 1, 1, 45], [2, 0, 2, 60]]))
    assert [t.shape for t in soft] == [(2, 3), (2, 2), (2, len(M.ORDINAL_AGES))]
    again = M.model_from_meta({"model": "multihead", "backbone": "test_resnet", "num_classes": 18, "age_edges": "30,58",
                               "model_args": {"age_head": "ordinal"}})
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), out)


@pytest.mark.parametrize("arguments, problem", [
    ({"age_head": "regression"}, "age_head must be one of bands, ordinal"),
    ({"age_head": "ordinal", "age_edges": "30,65"}, "cuts at ages 19..60"),
])
def test_ordinal_head_refusals(arguments, problem):
    with pytest.raises(MaskctlError, match=problem):
        M.build_model("multihead", 18, backbone="test_resnet", **arguments)


def test_multihead_refuses_other_class_counts():
    with pytest.raises(MaskctlError, match="18"):
        M.build_model("multihead", num_classes=5, backbone="test_resnet")


def test_build_model_timm_name():
    model = M.build_model("test_resnet", num_classes=18)
    assert model.num_classes == 18
    out = model.eval()(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 18)


def test_build_model_unknown_name():
    with pytest.raises(MaskctlError, match="unknown model"):
        M.build_model("no_such_net_zz", num_classes=18)


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(123)
    source = timm.create_model("test_resnet", num_classes=1000, pretrained=False)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(folder / "test_resnet.safetensors"))
    torch.save(state, folder / "test_resnet.pth")
    return folder, state


def first_conv_key(state):
    return next(k for k, v in state.items() if k.endswith("weight") and v.dim() == 4)


@pytest.mark.parametrize("filename", ["test_resnet.safetensors", "test_resnet.pth"])
def test_pretrained_file_loads_backbone_with_new_head(imagenet_weights, filename):
    folder, state = imagenet_weights
    torch.manual_seed(999)
    model = M.build_model("test_resnet", num_classes=18, pretrained=str(folder / filename))
    loaded = model.state_dict()
    key = first_conv_key(state)
    torch.testing.assert_close(loaded[key], state[key])
    convs = [k for k, v in state.items() if v.dim() == 4]
    for k in convs:
        torch.testing.assert_close(loaded[k], state[k])
    head = model.get_classifier()
    assert head.out_features == 18
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 18)


def test_pretrained_file_for_multihead_backbone(imagenet_weights):
    folder, state = imagenet_weights
    model = M.build_model("multihead", num_classes=18, backbone="test_resnet", pretrained=str(folder / "test_resnet.safetensors"))
    key = first_conv_key(state)
    torch.testing.assert_close(model.backbone.state_dict()[key], state[key])


def test_pretrained_missing_file(tmp_path):
    with pytest.raises(MaskctlError, match="not found"):
        M.build_model("test_resnet", num_classes=18, pretrained=str(tmp_path / "nope.safetensors"))


def test_pretrained_wrong_suffix(tmp_path):
    path = tmp_path / "weights.txt"
    path.write_text("x")
    with pytest.raises(MaskctlError, match="safetensors"):
        M.build_model("test_resnet", num_classes=18, pretrained=str(path))


def test_pretrained_corrupt_file(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(MaskctlError, match="broken.safetensors"):
        M.build_model("test_resnet", num_classes=18, pretrained=str(path))


def test_pretrained_hub_offline_fails_fast_and_mentions_file_option(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"), raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    start = time.monotonic()
    with pytest.raises(MaskctlError) as info:
        M.build_model("resnet18", num_classes=18, pretrained="hub")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "--pretrained" in message
    assert "resnet18" in message
    assert "\n" not in message


def test_pretrained_hub_without_network_fails_within_seconds(monkeypatch, tmp_path):
    """No HF_HUB_OFFLINE, and the hub's address refuses connections (a closed local port, so no
    network is touched): huggingface_hub alone would retry for many seconds."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    for proxy in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    start = time.monotonic()
    with pytest.raises(MaskctlError) as info:
        M.build_model("resnet18", num_classes=18, pretrained="hub")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "127.0.0.1 is out of reach" in message and "--pretrained PATH" in message and "resnet18" in message
    assert constants.HF_HUB_OFFLINE is False  # offline mode only for the one attempt


def _pickle_that_runs_code(path):
    import os

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"state": Exploit()}, path)


@pytest.mark.parametrize("filename,write,reason", [
    ("text.pth", lambda p: p.write_text("hello\n"), "not a PyTorch or safetensors weights file"),
    ("exploit.pth", _pickle_that_runs_code, "posix.system"),
    ("empty.pth", lambda p: p.write_bytes(b""), "not a PyTorch or safetensors weights file"),
    ("broken.safetensors", lambda p: p.write_bytes(b"\xff" * 64), "not a PyTorch or safetensors weights file"),
])
def test_unloadable_weights_and_checkpoints_are_explained_in_a_sentence(tmp_path, filename, write, reason):
    """Never a bare number (a KeyError's byte value) and never the advice to retry with
    weights_only=False, which would run the file's code."""
    from maskctl.engine import checkpoint

    path = tmp_path / filename
    write(path)
    for load in (lambda: M.build_model("test_resnet", num_classes=18, pretrained=str(path)), lambda: checkpoint.load(path)):
        with pytest.raises(MaskctlError) as info:
            load()
        message = str(info.value)
        assert reason in message and filename in message and "\n" not in message
        assert "weights_only=False" not in message and "weights_only` set to `False" not in message


def test_model_meta_round_trip():
    from maskctl.config import TrainConfig

    config = TrainConfig(model="test_resnet", size="64x48")
    meta = M.model_meta(config, 18, [str(c) for c in range(18)], mask_classes=True)
    assert meta["size"] == [64, 48] and meta["num_classes"] == 18 and meta["mask_classes"]
    model = M.model_from_meta(meta)
    assert model.num_classes == 18


@pytest.mark.parametrize("name", ["test_res*", "test_resne?"])
def test_build_model_wildcard_name_is_a_clean_error(name):
    """`--model test_res*` is not a model: one-line MaskctlError, not timm's RuntimeError."""
    with pytest.raises(MaskctlError, match="unknown model"):
        M.build_model(name, num_classes=18)
