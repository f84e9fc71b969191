"""The house's layout: the import-linter contract in pyproject.toml (every import points down,
imports inside functions included) and a package root that holds only packages and the few
modules every layer shares."""
import subprocess
import sys
from pathlib import Path

import maskctl

PACKAGE = Path(maskctl.__file__).parent
TOP_LEVEL_MODULES = {"__init__.py", "__main__.py", "config.py", "registry.py"}


def test_every_import_points_down():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_package_root_holds_packages_and_the_shared_modules_only():
    modules = {path.name for path in PACKAGE.glob("*.py")}
    assert modules == TOP_LEVEL_MODULES
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages >= {"cli", "api", "commands", "tune", "infer", "engine", "components", "data", "runs", "core"}
