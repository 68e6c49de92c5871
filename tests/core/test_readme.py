"""The README's Python examples run in order, offline: the tiny checkpoint stands in for
the hub model and Qdrant's local mode for a server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
OFFLINE = {
    '"jinaai/jina-colbert-v2"': None,
    'QdrantClient(url="http://localhost:6333")': 'QdrantClient(":memory:")',
}


def test_readme_examples_run(
    tiny_checkpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks):
        for online, offline in OFFLINE.items():
            block = block.replace(online, offline or repr(tiny_checkpoint))
        exec(compile(block, f"{README}:block{number}", "exec"), namespace)
    assert "berlin" in capsys.readouterr().out
