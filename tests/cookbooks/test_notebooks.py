"""The cookbooks run end to end, offline, on the real all-MiniLM-L6-v2 weights, and the
notebooks in git carry no outputs.

Each notebook runs in a fresh ipykernel of this interpreter (a kernelspec written to a
temporary folder on JUPYTER_PATH, so no kernel installed elsewhere is picked up), with a
temporary working directory that holds a copy of cookbooks/data.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

COOKBOOKS = Path(__file__).parents[2] / "cookbooks"
NOTEBOOKS = sorted(COOKBOOKS.glob("*.ipynb"))
SAMPLE = COOKBOOKS / "data" / "xquad_r_sample.json"
KERNEL = "python3"
RECALL_TO_ENGLISH = re.compile(
    r"(\w\w) questions -> English sentences: Recall@1 = (\S+), Recall@5 = (\S+)"
)
EXACT_AGAINST_COMPRESSED = re.compile(
    r"^\s*(\d+) documents \| exact\s+\S+ ms\s+(\S+) MB recall@5 (\S+) \| "
    r"compressed\s+\S+ ms\s+(\S+) MB recall@5 (\S+) \| top-10 overlap (\S+)$",
    flags=re.MULTILINE,
)
MODEL_LINE = 'MODEL = os.environ.get("MAXSIM_MODEL", "jinaai/jina-colbert-v2")'


def stdout(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook's code cells printed to stdout, in order."""
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.get("name") == "stdout"
    )


def displayed(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    """The `mime` payloads of every display_data / execute_result output."""
    return [
        output["data"][mime]
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type in {"display_data", "execute_result"} and mime in output["data"]
    ]


def check_quickstart(nb: nbformat.NotebookNode) -> None:
    text = stdout(nb)
    assert "1. [1]" in text
    assert "best: The Eiffel Tower is 330 metres tall." in text
    for dim in (128, 96, 64):  # MiniLM has 384 dims: every cut fits, at dim x 2 bytes
        assert re.search(rf"^\s*{dim}\s+{dim * 2}\s", text, flags=re.MULTILINE), dim
    assert displayed(nb, "image/png"), "the token heat map was not shown"


def check_langchain(nb: nbformat.NotebookNode) -> None:
    text = stdout(nb)
    system = text.split("--- system\n", 1)[1].split("--- human", 1)[0]
    assert system.index("[eiffel-height] The Eiffel Tower is 330 metres tall") < system.index(
        "[eiffel-history]"
    )
    assert "bread" not in system.lower()  # top_n=2 kept the two best passages only
    assert "The Eiffel Tower is 330 metres tall [eiffel-height]." in text  # the chain's answer
    assert "sources: ['eiffel-height', 'eiffel-history']" in text


def check_llamaindex(nb: nbformat.NotebookNode) -> None:
    [table] = displayed(nb, "text/markdown")
    first_row = table.splitlines()[2]
    assert first_row.startswith("| 1 | ")
    assert "The Eiffel Tower is 330 metres tall" in first_row.split(" | ")[2]
    assert "reranked first: The Eiffel Tower is 330 metres tall" in stdout(nb)


def check_multilingual(nb: nbformat.NotebookNode) -> None:
    text = stdout(nb)
    found = RECALL_TO_ENGLISH.findall(text)
    assert [lang for lang, _, _ in found] == ["de", "es", "zh", "ar"]
    for _, at1, at5 in found:
        assert 0.0 <= float(at1) <= float(at5) <= 1.0
    assert 0.0 <= float(re.findall(r"all languages: Recall@5 = (\S+)", text)[0]) <= 1.0
    assert len(re.findall(r"^[✓~✗] ", text, flags=re.MULTILINE)) == 12


def check_persistence(nb: nbformat.NotebookNode) -> None:
    text = stdout(nb)
    assert "same results after load: True" in text
    assert "same documents: True" in text
    assert "chunk_size after load: 96" in text
    assert re.search(r"^immune-system:en\s+window \d+", text, flags=re.MULTILINE)  # the HIV window
    documents, points = re.findall(r"(\d+) documents in (\d+) points", text)[0]
    assert int(points) > int(documents) == 4  # long documents became several windows
    rows = [[float(value) for value in row] for row in EXACT_AGAINST_COMPRESSED.findall(text)]
    assert [row[0] for row in rows] == [1_000, 4_000, 16_000]
    for _, exact_mb, exact_recall, compressed_mb, compressed_recall, overlap in rows:
        assert compressed_mb < exact_mb / 2  # MiniLM: 384 x 2 bytes against 384 x 2 / 8 + 2
        assert compressed_recall >= exact_recall - 0.1 and overlap >= 0.8
    assert rows[-1][3] < rows[-1][1] / 5  # the centroids weigh less as the store grows
    assert "PLAIDStore 16000 documents" in text
    assert "same results after load (compressed): True" in text
    assert displayed(nb, "image/png"), "the exact-against-compressed plot was not shown"


def check_self_hosting(nb: nbformat.NotebookNode) -> None:
    text = stdout(nb)
    assert "health: {'status': 'ok', 'model': 'jina-colbert-v2'}" in text
    assert re.search(r"query vectors: \(\d+, 128\)", text)
    first = text.split("tokens billed:", 1)[1].splitlines()[1]  # the best reranked passage
    assert first.endswith(
        "Mount Everest, at 8,849 metres, is the highest mountain above sea level."
    )
    assert "{'detail': 'top_n: Input should be greater than or equal to 1'}" in text
    assert "401 without the key" in text
    assert "reranked first: Mount Everest" in text
    assert "best: everest" in text
    assert "remote == local to float32 noise: True" in text
    assert "server stopped: True" in text


CHECKS: dict[str, Callable[[nbformat.NotebookNode], None]] = {
    "01_quickstart.ipynb": check_quickstart,
    "02_langchain_rag.ipynb": check_langchain,
    "03_llamaindex_rerank.ipynb": check_llamaindex,
    "04_multilingual.ipynb": check_multilingual,
    "05_persistence_and_scale.ipynb": check_persistence,
    "06_self_hosting.ipynb": check_self_hosting,
}


@pytest.fixture
def kernel(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A `python3` kernelspec for this interpreter, first on JUPYTER_PATH."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "cookbooks", "language": "python"}),
        encoding="utf-8",
    )
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    return KERNEL


def test_every_notebook_has_checks() -> None:
    assert sorted(CHECKS) == [path.name for path in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(
    path: Path,
    kernel: str,
    minilm_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAXSIM_MODEL", str(minilm_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    shutil.copytree(COOKBOOKS / "data", tmp_path / "data")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name=kernel, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the traceback, when a cell fails
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    CHECKS[path.name](nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    markdown = [cell for cell in nb.cells if cell.cell_type == "markdown"]
    for cell in code:
        assert cell.outputs == [], f"{path.name}: cell {cell.get('id')} has outputs"
        assert cell.execution_count is None, f"{path.name}: cell {cell.get('id')} was executed"
    assert MODEL_LINE in code[0].source
    assert any("CC BY-NC 4.0" in cell.source for cell in markdown)
    assert len(markdown) >= len(code) // 2, "a cookbook tells a story between its code cells"


def test_sample_is_small_and_consistent() -> None:
    assert SAMPLE.stat().st_size < 100_000
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    sentences = {document["sentence"] for document in sample["documents"]}
    for document in sample["documents"]:
        assert set(document["text"]) == set(sample["document_languages"])
    for question in sample["questions"]:
        assert question["relevant"] in sentences
        assert set(sample["query_languages"]) <= set(question["text"])
    assert "CC BY-SA 4.0" in sample["source"]
    assert "CC BY-SA 4.0" in (COOKBOOKS / "data" / "README.md").read_text(encoding="utf-8")
