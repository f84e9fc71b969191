"""Drive the real command line: in-process with Typer's CliRunner, or as a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from maskctl.cli.main import app

# Tiny model and images: timm's test_resnet at 64x48 trains at hundreds of images/s on 2 cores.
TINY = ["--model", "test_resnet", "--size", "64x48", "--batch-size", "16", "--lr", "0.003", "--optimizer", "adamw",
        "--scheduler", "cosine", "--augmentation", "light", "--device", "cpu", "--workers", "0"]


def invoke(*args):
    """Returns the click Result; output holds stdout and stderr."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def run_cli(*args, timeout: int = 300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskctl", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def docs_plugin(page: str, first_line: str, target: Path) -> Path:
    """The ```python example of docs/`page` that starts with `first_line`, exactly as printed
    there, written to `target` (a plugin file for $MASKCTL_PLUGINS)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / page).read_text()
    example = text.split(f"```python\n{first_line}\n", 1)[1].split("```", 1)[0]
    target.write_text(f"{first_line}\n{example}")
    return target


def one_line_error(result) -> str:
    """The error a user sees: exactly one line starting with 'error:' and no traceback."""
    text = result.output if hasattr(result, "output") else result.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]
