"""encode, rerank, index and search through the real `python -m maxsim` subprocess.

Each process imports torch and loads a model, so the `runs` fixture runs every command
once, a few side by side, and the tests check their results. All use all-MiniLM-L6-v2:
it loads faster than the tiny jina checkpoint (whose XLM-R tokenizer is the slow part).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from safetensors.numpy import load_file

ENV = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
PARALLEL = 3
DOCUMENTS = [
    {
        "id": "paris",
        "text": "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
        "metadata": {"topic": "travel"},
    },
    {
        "id": "python",
        "text": "Python is a programming language that emphasises code readability.",
        "metadata": {"topic": "code"},
    },
    {
        "id": "bread",
        "text": "Sourdough bread is leavened with a culture of wild yeast and bacteria.",
        "metadata": {"topic": "food"},
    },
]
FOLDER_FILES = {
    "notes/paris.md": "# Paris\n\nThe Eiffel Tower stands on the Champ de Mars in Paris.",
    "recipes/bread.txt": "Knead the sourdough, let it rise overnight and bake the bread.",
    "python.txt": "Python lists and dicts are the language's workhorse data structures.",
    "skipped.py": "print('not a text file')",
    ".hidden/notes.txt": "hidden folders are skipped",
}
TOWER_QUERY = "Which tower stands in Paris?"
BREAD_QUERY = "How do I bake sourdough bread?"
NOT_FOOD = '{"topic": {"$ne": "food"}}'
# case: (command line, what the one stderr line names); MiniLM unless overridden
BAD_INPUTS = {
    "missing file": (["rerank", "query", "missing.txt"], "missing.txt"),
    "empty file": (["encode", "--file", "blank.txt"], "blank.txt is empty"),
    "malformed JSONL line": (["rerank", "query", "bad.jsonl"], "bad.jsonl:2: not valid JSON"),
    "store folder missing": (["search", "nowhere", "query"], "nowhere holds no maxsim store"),
    "corrupt store": (["search", "corrupt", "query"], "store.json is corrupt"),
    "model cannot load": (["encode", "text", "--model", "no-model-here"], "--model PATH"),
    "bad --filter JSON": (["search", "corrupt", "q", "--filter", "{oops"], "--filter"),
    "empty texts": (["encode", "fine", "  "], "empty or whitespace"),
}

Command = tuple[list[str], str | None]  # arguments, stdin
Results = dict[str, subprocess.CompletedProcess[str]]


def run_all(commands: dict[str, Command], cwd: Path) -> Results:
    """`python -m maxsim ...` for each command, PARALLEL at a time."""

    def run(command: Command) -> subprocess.CompletedProcess[str]:
        arguments, stdin = command
        return subprocess.run(
            [sys.executable, "-m", "maxsim", *arguments],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=ENV,
            cwd=cwd,
        )

    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(zip(commands, pool.map(run, commands.values()), strict=True))


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The input files: a JSONL corpus, a folder of notes, passages, broken inputs."""
    root = tmp_path_factory.mktemp("cli")
    write_jsonl(root / "docs.jsonl", DOCUMENTS)
    (root / "passages.txt").write_text("\n".join(d["text"] for d in DOCUMENTS) + "\n\n")
    for name, text in FOLDER_FILES.items():
        (root / "folder" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "folder" / name).write_text(text, encoding="utf-8")
    (root / "blank.txt").write_text("\n\n")
    (root / "bad.jsonl").write_text('{"text": "fine"}\n{"text": "broken"\n')
    (root / "corrupt").mkdir()
    (root / "corrupt" / "store.json").write_text("{not json")
    return root


@pytest.fixture(scope="module")
def runs(root: Path, minilm_path: Path) -> Results:
    minilm = ["--model", str(minilm_path)]
    independent: dict[str, Command] = {
        "index jsonl": (["index", "docs.jsonl", "--store", "jsonl-store", *minilm], None),
        "index folder": (
            ["index", "folder", "--store", "folder-store", "--batch-size", "2", *minilm],
            None,
        ),
        "rerank": (
            ["rerank", TOWER_QUERY, "passages.txt", "--top-n", "2", "--json", *minilm],
            None,
        ),
        "encode documents": (
            [
                "encode",
                "a question?",
                "--file",
                "-",
                "--json",
                "--output",
                "d.safetensors",
                *minilm,
            ],
            "second text, from stdin\n\n third \n",
        ),
        "encode queries": (
            ["encode", "a question?", "--queries", "--output", "q.safetensors", *minilm],
            None,
        ),
        "usage error": (["search", "corrupt", "query", "-k", "0"], None),
        **{
            case: ([command, *minilm, *rest], None)  # a case's own --model comes later and wins
            for case, ([command, *rest], _) in BAD_INPUTS.items()
        },
    }
    results = run_all(independent, root)
    assert results["index jsonl"].returncode == 0, results["index jsonl"].stderr
    shutil.copytree(root / "jsonl-store", root / "jsonl-store-copy")
    on_the_stores: dict[str, Command] = {
        "search jsonl": (
            ["search", "jsonl-store", TOWER_QUERY, "--filter", NOT_FOOD, *minilm],
            None,
        ),
        "search folder": (
            ["search", "folder-store", BREAD_QUERY, "--json", "-k", "5", *minilm],
            None,
        ),
        "index again": (
            ["index", "docs.jsonl", "--store", "jsonl-store-copy", "--json", *minilm],
            None,
        ),
        "index compressed": (
            [
                *["index", "docs.jsonl", "--store", "plaid-store", "--compressed"],
                *["--nbits", "4", *minilm],
            ],
            None,
        ),
    }
    results |= run_all(on_the_stores, root)
    searches: dict[str, Command] = {
        "search compressed": (["search", "plaid-store", TOWER_QUERY, "--json", *minilm], None),
        "compressed into exact": (
            ["index", "docs.jsonl", "--store", "jsonl-store", "--compressed", *minilm],
            None,
        ),
    }
    return results | run_all(searches, root)


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def table(stdout: str) -> list[list[str]]:
    """A printed table's rows (header dropped), split on runs of 2+ spaces."""
    return [re.split(r"\s{2,}", line) for line in stdout.splitlines()[1:]]


def test_index_reports_what_it_stored(runs: Results, root: Path) -> None:
    assert succeeded(runs["index jsonl"]).strip().endswith("(3 new, 3 in the store)")
    assert "(3 new, 3 in the store)" in succeeded(runs["index folder"])  # 2 files skipped
    assert "Encoding documents" in runs["index jsonl"].stderr  # the progress bar
    assert (root / "jsonl-store" / "store.json").is_file()


def test_search_ranks_the_relevant_document_first_and_filters(runs: Results) -> None:
    stdout = succeeded(runs["search jsonl"])
    assert stdout.splitlines()[0].split() == ["rank", "id", "score", "normalized", "score", "text"]
    rows = table(stdout)
    assert [row[1] for row in rows] == ["paris", "python"]  # bread is filtered out
    assert rows[0][0] == "1" and rows[0][4].startswith("The Eiffel Tower")
    assert float(rows[0][2]) > float(rows[1][2])


def test_search_json_on_a_folder_store(runs: Results) -> None:
    hits = json.loads(succeeded(runs["search folder"]))
    assert [hit["rank"] for hit in hits] == [1, 2, 3]
    assert {hit["id"] for hit in hits} == {"notes/paris.md", "recipes/bread.txt", "python.txt"}
    best = hits[0]
    assert set(best) == {"rank", "id", "score", "normalized_score", "text", "metadata", "chunk"}
    assert best["id"] == "recipes/bread.txt"
    assert best["metadata"] == {"path": "recipes/bread.txt"}
    assert best["text"] == FOLDER_FILES["recipes/bread.txt"]
    assert 0 < best["normalized_score"] <= best["score"]


def test_compressed_store_is_built_and_searched_by_itself(runs: Results, root: Path) -> None:
    succeeded(runs["index compressed"])
    manifest = json.loads((root / "plaid-store" / "store.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "maxsim.PLAIDStore" and manifest["settings"]["nbits"] == 4
    hits = json.loads(succeeded(runs["search compressed"]))
    assert hits[0]["id"] == "paris" and len(hits) == 3
    refused = runs["compressed into exact"]
    assert refused.returncode == 1 and "holds an exact store" in refused.stderr


def test_index_again_upserts_by_id(runs: Results) -> None:
    summary = json.loads(succeeded(runs["index again"]))
    assert summary == {"store": "jsonl-store-copy", "indexed": 3, "added": 0, "documents": 3}


def test_rerank_a_text_file_as_json(runs: Results) -> None:
    results = json.loads(succeeded(runs["rerank"]))  # blank lines in the file are skipped
    assert [result["rank"] for result in results] == [1, 2]
    first, second = results
    assert first["index"] == 0 and second["index"] in (1, 2)  # the Eiffel Tower first
    assert set(first) == {"rank", "index", "score", "text"}
    assert first["score"] > second["score"]
    assert all(r["text"] == DOCUMENTS[r["index"]]["text"] for r in results)


def test_encode_documents_as_json_and_safetensors(runs: Results, root: Path) -> None:
    encoded = json.loads(succeeded(runs["encode documents"]))
    assert [item["text"] for item in encoded] == ["a question?", "second text, from stdin", "third"]
    arrays = load_file(str(root / "d.safetensors"))
    assert sorted(arrays) == ["text_0", "text_1", "text_2"]
    for item in encoded:
        assert set(item) == {"index", "text", "rows", "dim", "embeddings"}
        shape = (item["rows"], item["dim"])
        assert item["dim"] == 384 and item["rows"] >= 3  # [CLS] text [SEP]
        assert arrays[f"text_{item['index']}"].shape == shape
        assert (len(item["embeddings"]), len(item["embeddings"][0])) == shape


def test_encode_queries_keep_the_punctuation_documents_skip(runs: Results, root: Path) -> None:
    [row] = table(succeeded(runs["encode queries"]))
    document_rows = json.loads(runs["encode documents"].stdout)[0]["rows"]
    assert row[:3] == ["0", str(document_rows + 1), "384"]  # the "?" row
    arrays = load_file(str(root / "q.safetensors"))
    assert {name: array.shape for name, array in arrays.items()} == {
        "text_0": (document_rows + 1, 384)
    }


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_line_and_exit_1(runs: Results, case: str) -> None:
    result = runs[case]
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("maxsim: ") and BAD_INPUTS[case][1] in lines[0]


def test_usage_errors_keep_exit_2(runs: Results) -> None:
    result = runs["usage error"]
    assert result.returncode == 2 and "usage: maxsim search" in result.stderr
    assert "Traceback" not in result.stderr
