"""The demo command through a real subprocess, and the package's import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_maxsim(*arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maxsim", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", **env},
    )


def test_demo_ranks_the_sample_corpus(minilm_path: Path) -> None:
    result = run_maxsim("demo", "--model", str(minilm_path), "--top-n", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "12 passages" in lines[0]
    queries = [i for i, line in enumerate(lines) if line.startswith("query: ")]
    assert len(queries) == 2
    first_hit = lines[queries[0] + 1]
    assert first_hit.lstrip().startswith("1.") and "Eiffel" in first_hit
    assert "Berlin" in lines[queries[1] + 1]


def test_demo_without_the_model_says_how_to_pass_one(tmp_path: Path) -> None:
    result = run_maxsim("demo", "--model", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "--model PATH" in result.stderr and "missing" in result.stderr


def test_demo_without_network_prints_the_fix_once(tmp_path: Path) -> None:
    result = run_maxsim("demo", HF_HOME=str(tmp_path / "empty-cache"))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("maxsim: cannot load model 'jinaai/jina-colbert-v2'")
    assert "cannot be reached" in line
    assert line.count("pass a local checkpoint folder") == 1 and line.count("--model PATH") == 1


def test_demo_help_names_the_licence() -> None:
    result = run_maxsim("demo", "--help")
    assert result.returncode == 0
    assert "CC BY-NC 4.0" in " ".join(result.stdout.split())


def test_core_never_imports_the_frameworks() -> None:
    code = (
        "import sys, maxsim, maxsim.cli, maxsim.scoring;"
        "print(sorted(m for m in sys.modules if m.startswith(('langchain', 'llama_index'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
