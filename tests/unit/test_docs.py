"""The manual (docs/ and README.md): it builds with `mkdocs build --strict` (links and anchors
checked), every file path it names exists, and its examples keep the promise docs/index.md makes:
`python` blocks are run by a test exactly as printed, `bash` blocks titled "Try it" run as
printed, and every other `maskctl` line in a `bash` block parses on the real command line."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from maskctl.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^( *)```(\w+)([^\n]*)\n(.*?)^\1```", re.S | re.M)

# Each `python` block of the manual, by its first line, and the test that runs it as printed.
PYTHON_EXAMPLES = {
    '"""poly1.py: poly-1 cross-entropy, the cross-entropy plus epsilon * (1 - the target\'s probability)."""':
        ("tests/unit/test_docs.py", "test_the_poly1_loss_example_registers_and_computes_poly1"),
    "import albumentations as A": ("tests/e2e/test_cli_train.py", "test_a_plugin_augmentation_from_the_docs_trains_and_predicts"),
    '"""best_f1_file.py: each fold\'s best validation macro F1, and the run\'s mean, in RUN/best_f1.txt."""':
        ("tests/e2e/test_cli_callbacks.py", "test_the_docs_plugin_callback_works_through_maskctl_plugins"),
    '"""epoch_counter.py: every (fold, epoch) the run saw, across --resume, in RUN/counted.json."""':
        ("tests/e2e/test_cli_callbacks.py", "test_a_callbacks_state_survives_a_kill_and_resume"),
    'maskctl.train("cpu-quick", epoch=1)': ("tests/e2e/test_api.py", "test_the_settings_errors_the_docs_show_are_the_errors_raised"),
    "from pathlib import Path": ("tests/e2e/test_notebook.py", "test_the_quickstart_notebook_runs_in_a_kernel"),
}


def blocks(language: str, pages=PAGES):
    """(page, title, code) of every fenced block in that language; list items indent theirs."""
    for page in pages:
        for indent, lang, info, code in FENCE.findall(page.read_text()):
            if lang == language:
                title = re.search(r'title="([^"]*)"', info)
                code = "\n".join(line[len(indent):] for line in code.splitlines())
                yield page, title.group(1) if title else "", code


def maskctl_commands(code: str):
    """The argument lists of the `maskctl` commands in a bash block: comments, heredoc bodies,
    VAR=value prefixes and `;`, `&&`, `&` separators handled; `torchrun ... -m maskctl` included."""
    heredoc_end = None
    for line in code.splitlines():
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        marker = re.search(r"<<'?(\w+)'?", line)
        heredoc_end = marker.group(1) if marker else None
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        segment = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|<>"):
                words = [w for w in segment if not re.fullmatch(r"[A-Z_]+=\S*", w)] if segment else []
                if words[:1] == ["maskctl"]:
                    yield words[1:]
                elif "-m" in words and words[words.index("-m") + 1:words.index("-m") + 2] == ["maskctl"]:
                    yield words[words.index("-m") + 2:]
                segment = []
            else:
                segment.append(token)


def test_the_docs_build_strict(tmp_path):
    """Missing pages, broken links and anchors are errors (mkdocs.yml: strict, validation)."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    built = subprocess.run([str(mkdocs), "build", "--strict", "--quiet", "-d", str(tmp_path / "site")], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stdout + built.stderr
    # README.md is outside the site: its links into docs/ must name pages and anchors that exist
    for target, anchor in re.findall(r"\]\((docs/[\w-]+\.md)(?:#([\w-]+))?\)", (ROOT / "README.md").read_text()):
        html = tmp_path / "site" / target.removeprefix("docs/").removesuffix(".md").replace("index", "") / "index.html"
        assert html.exists(), target
        assert not anchor or f'id="{anchor}"' in html.read_text(), f"{target}#{anchor}"


def test_every_path_the_manual_names_exists():
    for page in [*PAGES, ROOT / "README.md"]:
        for path in re.findall(r"`((?:maskctl|bench|tests|examples)/[\w./-]*)`", page.read_text()):
            assert (ROOT / path).exists(), f"{page.name} names {path}"


def test_every_python_example_is_run_by_a_test():
    shown = {code.splitlines()[0] for _, title, code in blocks("python") if not title.startswith("Illustrative")}
    assert shown == set(PYTHON_EXAMPLES), "a python block of docs/ without a test that runs it (or a test without its block)"
    for test_file, test_name in PYTHON_EXAMPLES.values():
        assert f"def {test_name}(" in (ROOT / test_file).read_text()


def test_every_maskctl_line_parses_on_the_real_command_line():
    group = typer.main.get_command(app)
    lines = 0
    for page, _, code in [*blocks("bash"), *blocks("bash", [ROOT / "README.md"])]:
        for args in maskctl_commands(code):
            command = group.get_command(None, args[0])
            assert command is not None, f"{page.name}: no command maskctl {args[0]}"
            try:
                command.make_context(args[0], list(args[1:]))
            except Exception as exc:  # click's usage errors: an unknown option, a value of the wrong type
                pytest.fail(f"{page.name}: maskctl {shlex.join(args)}: {getattr(exc, 'format_message', lambda: exc)()}")
            lines += 1
    assert lines > 50  # the parser found the manual's commands


def test_try_it_blocks_run_as_printed(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    tried = [code for _, title, code in blocks("bash") if title == "Try it"]
    assert tried
    monkeypatch.chdir(tmp_path)
    for code in tried:
        for args in maskctl_commands(code):
            result = CliRunner().invoke(app, args, catch_exceptions=False)
            assert result.exit_code == 0, f"maskctl {shlex.join(args)}\n{result.output}"
    assert (tmp_path / "data" / "train" / "folds.csv").exists() and (tmp_path / "data" / "reports" / "eda-train" / "report.md").exists()


def test_the_recipe_example_loads_and_names_real_component_settings(tmp_path):
    from maskctl.components.settings import KINDS, component_settings
    from maskctl.config import load_config

    (recipe,) = [code for page, _, code in blocks("yaml") if page.name == "training.md"]
    (tmp_path / "recipe.yaml").write_text(recipe)
    config = load_config(tmp_path / "recipe.yaml")
    assert config.loss == "focal:0.6,f1:0.4" and config.optimizer_args == {"betas": [0.9, 0.99], "eps": 1e-7}
    for kind in KINDS:
        component_settings(kind, config)  # an unknown key or a wrongly typed value raises


def test_the_tune_space_example_is_a_valid_space(tmp_path):
    from maskctl.config import load_config
    from maskctl.tune.space import read_space

    (code,) = [code for page, _, code in blocks("bash") if page.name == "tune.md" and "<<'YAML'" in code]
    (tmp_path / "space.yaml").write_text(code.split("<<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0])
    dimensions = read_space(tmp_path / "space.yaml", load_config("cpu-quick"))
    assert [d.name for d in dimensions] == ["lr", "weight_decay", "loss"]


def test_the_poly1_loss_example_registers_and_computes_poly1(tmp_path, monkeypatch):
    """extending.md's poly1.py, exactly as printed, loaded through $MASKCTL_PLUGINS."""
    import torch

    import maskctl.registry as R
    from maskctl.components.losses import build_loss
    from maskctl.core import plugins

    (code,) = [code for _, _, code in blocks("python") if code.startswith('"""poly1.py')]
    (tmp_path / "poly1.py").write_text(code)
    R.load_plugins()  # maskctl's own entries first: the copy below keeps them
    monkeypatch.setattr(R.LOSSES, "_entries", dict(R.LOSSES._entries))  # registered for this test only
    monkeypatch.setenv(plugins.PLUGINS_ENV, str(tmp_path / "poly1.py"))
    monkeypatch.setattr(R, "_user_plugins_loaded", False)  # as in a fresh process
    monkeypatch.setattr(R.LOSSES, "_unfilled", True)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.4]])
    cross_entropy = build_loss("ce")(logits, targets)
    p_target = (targets * logits.softmax(dim=1)).sum(dim=1)
    assert torch.isclose(build_loss("poly1", epsilon=2.0)(logits, targets), cross_entropy + 2.0 * (1 - p_target).mean())
    assert torch.isclose(build_loss("poly1", epsilon=0.0)(logits, targets), cross_entropy)
