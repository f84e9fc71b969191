"""The API's door (maskctl.api.door): what a caller's mistake or a failing disk becomes, and quiet."""
import errno

import pytest

import maskctl
from maskctl.api.door import public
from maskctl.core.console import console, error_console


@public
def synth(data, out=None, people: int = 1, folds: int = 5, quiet: bool = False):
    """A stand-in API function under a command's name (its options' ranges are synth's): prints
    on both consoles, then does what `data` says."""
    console.print("working")
    error_console.print("warning: something")
    if data == "disk full":
        raise OSError(errno.ENOSPC, "No space left on device", "out/probs.csv")
    if data == "exit":
        raise SystemExit(3)
    return data


def test_a_disk_error_and_a_plugins_exit_are_maskctl_errors():
    with pytest.raises(maskctl.MaskctlError, match=r"^out/probs.csv: No space left on device$"):
        synth("disk full", quiet=True)
    with pytest.raises(maskctl.MaskctlError, match=r"sys.exit\(3\) was called during maskctl.synth"):
        synth("exit", quiet=True)


def test_keywords_and_ranges_are_checked_before_any_work(capsys):
    with pytest.raises(maskctl.MaskctlError, match=r"maskctl.synth: unknown keyword 'peple' \(did you mean people\?\); it takes data, out, people, folds, quiet"):
        synth("x", peple=2)
    with pytest.raises(maskctl.MaskctlError, match=r"maskctl.synth: people must be at least 1 and at most 20000, got 0"):
        synth("x", people=0)
    with pytest.raises(maskctl.MaskctlError, match=r"maskctl.synth: folds must be at least 2 and at most 100, got 1"):
        synth("x", folds=1)  # a recipe setting's range, as on the command line
    with pytest.raises(maskctl.MaskctlError, match="missing a required argument: 'data'"):
        synth()
    assert capsys.readouterr() == ("", "")  # refused before the function ran


def test_quiet_silences_both_consoles_and_comes_back_after_a_failure(capsys):
    assert synth("x", quiet=True) == "x"
    with pytest.raises(maskctl.MaskctlError):
        synth("disk full", quiet=True)
    assert capsys.readouterr() == ("", "")
    assert not console.quiet and not error_console.quiet
    synth("x")
    captured = capsys.readouterr()
    assert "working" in captured.out and "warning: something" in captured.err
    with maskctl.quiet():
        synth("x")
        with maskctl.quiet():
            synth("x")
        synth("x")  # the inner block ends, the outer one still holds
    assert capsys.readouterr() == ("", "")


@public
def predict(run, tta: str = "none", tta_weights: str | None = None, quiet: bool = False):
    """A stand-in under predict's name failing with a message the command line shares."""
    from maskctl.core.errors import MaskctlError

    raise MaskctlError(f"--tta-weights needs a policy with several views (--tta hflip), not --tta {tta}; --set stays, as does a-b--c")


@public
def train(recipe=None, *, quiet: bool = False, **settings):
    from maskctl.core.errors import UsageError

    raise UsageError("--val-ratio 0.99 leaves no people on one side; --study is another command's")


def test_errors_name_the_keywords_a_call_takes_not_the_options():
    with pytest.raises(maskctl.MaskctlError) as raised:
        predict("runs/x", tta_weights="1,1")
    assert str(raised.value) == "tta_weights needs a policy with several views (tta hflip), not tta none; --set stays, as does a-b--c"
    with pytest.raises(maskctl.MaskctlError) as raised:  # **settings: the recipe's fields are its keywords
        train("cpu-quick")
    assert str(raised.value) == "val_ratio 0.99 leaves no people on one side; --study is another command's"
    assert raised.value.exit_code == 2


def test_a_value_of_the_wrong_type_fails_in_one_line_before_any_work(capsys):
    import numpy as np

    for value, shown in (("3", "'3'"), (True, "True"), (2.5, "2.5")):
        with pytest.raises(maskctl.MaskctlError) as raised:
            synth("ok", people=value)
        assert str(raised.value) == f"maskctl.synth: people must be a whole number, got {shown}"
    with pytest.raises(maskctl.MaskctlError, match="quiet must be True or False, got 'yes'"):
        synth("ok", quiet="yes")
    assert "working" not in capsys.readouterr().out  # refused before the call ran
    assert synth("ok", people=np.int64(2), quiet=True) == "ok"  # numpy's integers are whole numbers


@public
def tta_eval(run, device: str | None = None, quiet: bool = False):
    return device


@public
def tune(recipe=None, *, quiet: bool = False, **settings):
    return settings


def test_a_torch_device_is_taken_as_its_text():
    import torch

    assert tta_eval("runs/x", torch.device("cpu")) == "cpu"  # positional too
    assert tta_eval("runs/x", device=torch.device("cuda", 1)) == "cuda:1"
    assert tune("cpu-quick", device=torch.device("cpu"), epochs=1) == {"device": "cpu", "epochs": 1}  # a recipe setting
    with pytest.raises(maskctl.MaskctlError, match="device must be a text or None, got 3"):
        tta_eval("runs/x", device=3)
