"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (the venv's own Python,
this checkout's maskctl), and docs/python-api.md shows exactly its code."""
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
DOCS_PAGE = ROOT / "docs" / "python-api.md"
KERNEL = "maskctl-test-python"


def code_cells(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch):
    """A kernelspec in a temporary JUPYTER_PATH that starts this interpreter with this checkout
    first on its path: the installed `python3` spec may name another Python."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "maskctl test", "language": "python",
        "env": {"PYTHONPATH": str(ROOT)},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def test_the_quickstart_notebook_runs_in_a_kernel(tmp_path, venv_kernel):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.monotonic()
    # Any cell that raises fails the run (CellExecutionError names the cell and the error).
    NotebookClient(notebook, kernel_name=venv_kernel, timeout=240, resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.monotonic() - started
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    texts = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "unknown setting 'epoch' (did you mean epochs?)" in texts
    assert "ensemble" in texts and "quick-cutmix" in texts
    work = tmp_path / "maskctl-quickstart"
    for made in ("runs/quick/submission.csv", "runs/quick/tta.json", "runs/quick-cutmix/probs.csv", "ensemble/submission.csv",
                 "data/train/folds.csv", "data/reports/eda-train/report.md"):
        assert (work / made).is_file(), made
    # rich's messages and tables reach the notebook as HTML (display data), not as escape codes in
    # a text stream; a progress bar that cannot draw (no ipywidgets) is left out, not a warning
    html = "\n".join(o.data["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    assert "best validation macro F1 per fold" in html and "wrote" in html
    assert not any("\x1b[" in o.text for o in outputs if o.output_type == "stream")
    assert "ipywidgets" not in html
    print(f"notebook ran in {seconds:.0f}s")


def test_the_python_api_page_shows_the_notebooks_code():
    """The page's example is the notebook's code cells, in order: the test above runs it."""
    import nbformat

    page = DOCS_PAGE.read_text(encoding="utf-8")
    example = page.split("<!-- quickstart.ipynb -->\n```python\n", 1)[1].split("```", 1)[0]
    assert example.strip() == "\n\n".join(code_cells(nbformat.read(NOTEBOOK, as_version=4))).strip()
