"""Every notebook in notebooks/ runs top to bottom on the sample data, in a fresh kernel of
this interpreter, and saves its charts and tables; and every one is committed without outputs."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
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


#: what an installed package (``pip install .``, no [test] extra) does not have: notebooks for
#: analysts must not need it (issue 14, item 7)
TEST_ONLY_MODULES = ("httpx", "fastapi.testclient", "starlette.testclient", "pytest", "hypothesis", "schemathesis",
                     "openpyxl", "nbclient", "nbformat", "stdnum", "typer.testing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_needs_only_runtime_dependencies(path):
    import ast
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert {"httpx", "openpyxl"} <= {re.split(r"[<>=\[]", r)[0].lower() for r in extras["test"]}
    imported = set()
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        code = "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.startswith(("%", "!")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    bad = sorted(m for m in imported if any(m == t or m.startswith(t + ".") for t in TEST_ONLY_MODULES))
    assert not bad, f"{path.name} imports test-only modules {bad}"
