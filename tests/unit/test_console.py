"""One-line messages are plain text: brackets in a path or a shape are printed, not read as markup."""
import pytest

from maskctl.core.console import fail, warn
from maskctl.core.errors import shown


def test_brackets_in_messages_survive(capsys):
    fail("model.onnx takes uint8 images [batch, 64, 48, 3], not [bold]this[/bold]")
    warn("runs/c-[56, 40] is odd")
    err = capsys.readouterr().err
    assert "[batch, 64, 48, 3]" in err and "[bold]this[/bold]" in err
    assert "runs/c-[56, 40]" in err


SECRET = "S3cr@tPw"


@pytest.mark.parametrize("say", [
    lambda url: fail(f"cannot open the study storage {url}: connection refused"),
    lambda url: warn(f"trial 3 failed: OperationalError: could not connect to {url}"),
    lambda url: fail(f"--storage {shown(url)}: name the journal file"),  # quoted and cut: the password goes before the cut
    lambda url: fail(shown("x" * 40 + url)),  # a cut that would fall inside the password
])
@pytest.mark.parametrize("url", [
    f"postgresql://maskuser:{SECRET}@127.0.0.1:5432/maskdb",
    f"mysql+pymysql://root:{SECRET}{SECRET}{SECRET}@db.example:3306/optuna",
    f"postgresql://db.example/maskdb?user=maskuser&password={SECRET}",
    f"http://user:{SECRET}@127.0.0.1:5000",
])
def test_no_error_or_warning_line_shows_a_password(capsys, say, url):
    say(url)
    err = capsys.readouterr().err
    assert not [part for part in (SECRET, SECRET[:4], SECRET[5:]) if part in err], err
