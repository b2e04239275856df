"""The numbered notebooks run top to bottom on this checkout; any cell error fails the test.

They are stored without outputs and executed in memory (nothing is written back). Notebook 02 reads the
champion's or the newest model's reports under ``models/``, and trains one in a temporary folder when none was
evaluated on the current corpus (a fresh clone): a couple of minutes with the embedding cache warm.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from training.paths import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))

pytestmark = pytest.mark.slow


def test_notebooks_are_found() -> None:
    assert [p.name for p in NOTEBOOKS][:2] == ["01-corpus-overview.ipynb", "02-error-analysis.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: Path, trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Notebook 02 analyses the model this session trained instead of training one of its own (the kernel
    # inherits the environment).
    monkeypatch.setenv("NEWSCLF_NOTEBOOK_MODELS_DIR", str(trained_model_dir.parent))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
