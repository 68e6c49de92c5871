"""The README's Python examples run (with the tiny checkpoint in place of the hub model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(
    block: str, tiny_checkpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = block.replace('"jinaai/jina-colbert-v2"', repr(tiny_checkpoint))
    exec(compile(code, str(README), "exec"), {})
    assert capsys.readouterr().out.strip()
