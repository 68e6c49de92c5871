"""LateInteractionStore against Qdrant's local mode on the same random multivectors.

Documents of 50-300 random unit rows (dim 128), added as vectors (no model in the loop).
Reports add throughput, search latency p50/p95 for k=10 with one 32-row query, memory
per stored token, load time after save, and the search's GFLOP/s against the machine's
float32 matmul rate measured in the same run.

Run from the repository root:

    .venv/bin/python benchmarks/store.py                      # 10k and 100k documents
    .venv/bin/python benchmarks/store.py --sizes 10000 --queries 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import machine, markdown_table, matmul_gflops, timed

import maxsim
from maxsim.testing import FakeColBERT

DIM = 128
QUERY_ROWS = 32
ADD_BATCH = 1000


@dataclass(frozen=True)
class Measurement:
    """One store at one size."""

    name: str
    documents: int
    tokens: int
    add_seconds: float
    search_seconds: list[float]
    bytes_per_token: float
    load_seconds: float | None

    def row(self, matmul_rate: float) -> list[str]:
        p50 = statistics.median(self.search_seconds)
        p95 = float(np.percentile(self.search_seconds, 95))
        gflops = 2 * QUERY_ROWS * self.tokens * DIM / p50 / 1e9
        load = "n/a" if self.load_seconds is None else f"{self.load_seconds:.2f}"
        return [
            self.name,
            f"{self.documents:,}",
            f"{self.documents / self.add_seconds:,.0f}",
            f"{self.tokens / self.add_seconds / 1e6:.2f}",
            f"{p50 * 1000:.0f}",
            f"{p95 * 1000:.0f}",
            f"{gflops:.1f} ({gflops / matmul_rate:.0%})",
            f"{self.bytes_per_token:.1f}",
            load,
        ]


def unit_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    values = rng.standard_normal((rows, DIM), dtype=np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def document_batches(documents: int, seed: int) -> Iterator[list[np.ndarray]]:
    """The same documents for every store: batches of [rows, dim] float32 arrays."""
    rng = np.random.default_rng(seed)
    for start in range(0, documents, ADD_BATCH):
        count = min(ADD_BATCH, documents - start)
        yield [unit_rows(rng, int(rows)) for rows in rng.integers(50, 301, count)]


def measure_ours(documents: int, queries: list[np.ndarray], seed: int) -> Measurement:
    store = maxsim.LateInteractionStore(FakeColBERT(dim=DIM))
    add_seconds = 0.0
    for batch in document_batches(documents, seed):
        seconds, _ = timed(lambda batch=batch: store.add_embeddings(batch))
        add_seconds += seconds
    store.search_embeddings(queries[:1], k=10)
    search = [timed(lambda q=q: store.search_embeddings([q], k=10))[0] for q in queries]
    usage = store.memory_usage()
    with tempfile.TemporaryDirectory() as folder:
        store.save(Path(folder))
        load_seconds, _ = timed(
            lambda: maxsim.LateInteractionStore.load(Path(folder), model=store.model)
        )
    return Measurement(
        "maxsim LateInteractionStore (float16)",
        documents,
        usage.tokens,
        add_seconds,
        search,
        usage.bytes_per_token,
        load_seconds,
    )


def measure_qdrant(documents: int, queries: list[np.ndarray], seed: int) -> Measurement:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "bench",
        vectors_config=models.VectorParams(
            size=DIM,
            distance=models.Distance.DOT,
            multivector_config=models.MultiVectorConfig(
                comparator=models.MultiVectorComparator.MAX_SIM
            ),
        ),
    )
    tokens, add_seconds, next_id = 0, 0.0, 0
    memory_before = _rss_mib()
    for batch in document_batches(documents, seed):
        points = [
            models.PointStruct(id=next_id + i, vector=vectors.tolist(), payload={})
            for i, vectors in enumerate(batch)
        ]
        tokens += sum(vectors.shape[0] for vectors in batch)
        next_id += len(batch)
        seconds, _ = timed(lambda points=points: client.upsert("bench", points=points))
        add_seconds += seconds
    bytes_per_token = (_rss_mib() - memory_before) * 1024 * 1024 / tokens

    def search(query: np.ndarray) -> Callable[[], object]:
        return lambda: client.query_points("bench", query=query.tolist(), limit=10)

    search(queries[0])()
    search_seconds = [timed(search(q))[0] for q in queries]
    return Measurement(
        "Qdrant local mode (baseline)",
        documents,
        tokens,
        add_seconds,
        search_seconds,
        bytes_per_token,
        None,
    )


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=20, help="timed searches per size")
    parser.add_argument(
        "--qdrant-max", type=int, default=10_000, help="largest size run on Qdrant local mode"
    )
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    rng = np.random.default_rng(arguments.seed + 1)
    queries = [unit_rows(rng, QUERY_ROWS) for _ in range(arguments.queries)]
    matmul_rate = matmul_gflops()
    rows = []
    for size in arguments.sizes:
        rows.append(measure_ours(size, queries, arguments.seed))
        if size <= arguments.qdrant_max:
            rows.append(measure_qdrant(size, queries, arguments.seed))
    header = [
        "store",
        "documents",
        "add docs/s",
        "add M vectors/s",
        "search p50 ms",
        "search p95 ms",
        "search GFLOP/s (of matmul)",
        "bytes/token",
        "load s",
    ]
    print(markdown_table(header, [measurement.row(matmul_rate) for measurement in rows]))
    print(
        f"\nfloat32 matmul rate: {matmul_rate:.0f} GFLOP/s; target: search at >= 50% of it and "
        f"<= {2 * DIM + 8} bytes/token (2 x dim + 8) in float16."
    )
    print(machine())


if __name__ == "__main__":
    main()
