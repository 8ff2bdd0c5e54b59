"""Every notebook in notebooks/ runs top to bottom on the sample data, in a fresh kernel of
this interpreter, and saves its charts and tables; and every one is committed without outputs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL = "screening-tests"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """A kernel spec that starts ipykernel with the interpreter running the tests (the project's
    venv), whatever kernels the machine has registered under other names."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec = kernels / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "screening (tests)", "language": "python",
    }))
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code), f"{path.name} 含有输出，请清除后提交"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_saves_charts_and_tables(path, kernel_specs, tmp_path):
    book = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    NotebookClient(book, km=manager, timeout=180, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]
    assert shown, f"{path.name} 没有显示任何图表"
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "missing from font" not in stderr  # matplotlib's warning for a glyph drawn as an empty box

    out = tmp_path / "out"
    pngs, svgs = sorted(out.glob("*.png")), sorted(out.glob("*.svg"))
    assert pngs and [p.stem for p in pngs] == [p.stem for p in svgs]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert list(out.glob("*.xlsx"))
