"""One-line messages are plain text: brackets in a path or a shape are printed, not read as markup."""
from maskctl.console import fail, warn


def test_brackets_in_messages_survive(capsys):
    fail("model.onnx takes uint8 images [batch, 64, 48, 3], not [bold]this[/bold]")
    warn("runs/c-[56, 40] is odd")
    err = capsys.readouterr().err
    assert "[batch, 64, 48, 3]" in err and "[bold]this[/bold]" in err
    assert "runs/c-[56, 40]" in err
