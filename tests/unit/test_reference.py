"""The generated reference pages (docs/reference/cli.md, settings.md) say what the code says."""
from maskctl.cli.reference import REFERENCE_DIR, REGENERATE, cli_page, settings_page, stale_pages
from maskctl.config import FIELDS


def test_reference_pages_are_up_to_date():
    stale = stale_pages()
    assert not stale, f"docs/reference/{', '.join(stale)} out of date: run `{REGENERATE}` and commit the result"


def test_the_pages_name_every_command_option_and_setting_in_markdown_not_rich_markup():
    cli, settings = cli_page(), settings_page()
    for command in ("maskctl tune run", "maskctl tune show", "maskctl bench quality", "maskctl train", "maskctl tta-eval"):
        assert f"## {command}\n" in cli
    assert "| `--heartbeat` | integer | `60` |" in cli and "| `--min-evidence` |" in cli and "`--amp` / `--no-amp`" in cli
    for name in FIELDS:
        assert f"| `{name}` |" in settings
    assert "| `folds` | `--folds` | integer | 5 | 2 to 100 | Number of folds. |" in settings
    assert "| `task_weights` | `--set task_weights=...` |" in settings  # a setting without a train option
    for page in (cli, settings):
        assert "[/" not in page and "\\[" not in page and "[bold" not in page  # rich's markup and escapes stay out


def test_check_mode_reports_a_stale_page(tmp_path):
    from maskctl.cli import reference

    (tmp_path / "cli.md").write_text(cli_page())
    (tmp_path / "settings.md").write_text(settings_page().replace("Number of folds.", "Folds."))
    assert reference.stale_pages(tmp_path) == ["settings.md"]
    assert reference.main(["--check"]) == 0 and (REFERENCE_DIR / "cli.md").is_file()
