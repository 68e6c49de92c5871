"""LateInteractionStore against Qdrant's local mode on the same random multivectors.

Documents of 50-300 unit rows (dim 128, clustered around 4,096 random directions, as
token vectors are), added as vectors (no model in the loop). Reports add throughput,
search latency p50/p95 for k=10 with one 32-row query, memory per stored token, load
time after save, and the search's GFLOP/s against the machine's float32 matmul rate
measured in the same run. The searches are timed twice: on an otherwise idle CPU, and
with a busy neighbour (a second process this script starts, spinning on one core).

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
from common import (
    MatmulRates,
    QuietTimer,
    busy_neighbour,
    clustered_unit_rows,
    machine,
    markdown_table,
    random_centroids,
    timed,
)

import maxsim
from maxsim.testing import FakeColBERT

DIM = 128
QUERY_ROWS = 32
ADD_BATCH = 1000
CENTROIDS = 4096


@dataclass(frozen=True)
class Measurement:
    """One store at one size."""

    name: str
    documents: int
    tokens: int
    add_seconds: float
    search_seconds: list[float]
    busy_search_seconds: list[float]
    bytes_per_token: float
    load_seconds: float | None

    def row(self, matmul_rate: float) -> list[str]:
        p50 = statistics.median(self.search_seconds)
        p95 = float(np.percentile(self.search_seconds, 95))
        gflops = 2 * QUERY_ROWS * self.tokens * DIM / p50 / 1e9
        load = "n/a" if self.load_seconds is None else f"{self.load_seconds:.2f}"
        busy = self.busy_search_seconds
        return [
            self.name,
            f"{self.documents:,}",
            f"{self.documents / self.add_seconds:,.0f}",
            f"{self.tokens / self.add_seconds / 1e6:.2f}",
            f"{p50 * 1000:.0f}",
            f"{p95 * 1000:.0f}",
            f"{gflops:.1f} ({gflops / matmul_rate:.0%})",
            f"{statistics.median(busy) * 1000:.0f}" if busy else "n/a",
            f"{self.bytes_per_token:.1f}",
            load,
        ]


def document_batches(documents: int, seed: int) -> Iterator[list[np.ndarray]]:
    """The same documents for every store: batches of [rows, dim] float32 arrays."""
    rng = np.random.default_rng(seed)
    centroids = random_centroids(rng, CENTROIDS, DIM)
    for start in range(0, documents, ADD_BATCH):
        count = min(ADD_BATCH, documents - start)
        yield [
            clustered_unit_rows(rng, centroids, int(rows)) for rows in rng.integers(50, 301, count)
        ]


@dataclass
class SearchTimer:
    """Times searches on an idle CPU and, when `busy`, again beside a busy neighbour."""

    timer: QuietTimer
    busy: bool

    def time(self, searches: list[Callable[[], object]]) -> tuple[list[float], list[float]]:
        searches[0]()
        idle = [self.timer.time(search) for search in searches]
        if not self.busy:
            return idle, []
        with busy_neighbour() as pid:
            self.timer.neighbours.append(pid)
            try:
                return idle, [self.timer.time(search) for search in searches]
            finally:
                self.timer.neighbours.remove(pid)


def measure_ours(
    documents: int, queries: list[np.ndarray], seed: int, timer: SearchTimer
) -> Measurement:
    store = maxsim.LateInteractionStore(FakeColBERT(dim=DIM))
    add_seconds = 0.0
    for batch in document_batches(documents, seed):
        seconds, _ = timed(lambda batch=batch: store.add_embeddings(batch))
        add_seconds += seconds
    search, busy = timer.time([lambda q=q: store.search_embeddings([q], k=10) for q in queries])
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
        busy,
        usage.bytes_per_token,
        load_seconds,
    )


def measure_qdrant(
    documents: int, queries: list[np.ndarray], seed: int, timer: SearchTimer
) -> Measurement:
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

    search_seconds, busy = timer.time([search(q) for q in queries])
    return Measurement(
        "Qdrant local mode (baseline)",
        documents,
        tokens,
        add_seconds,
        search_seconds,
        busy,
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
    parser.add_argument(
        "--no-busy", action="store_true", help="skip the searches beside a busy neighbour"
    )
    parser.add_argument(
        "--quiet-timeout", type=float, default=120.0, help="most seconds to wait for a quiet CPU"
    )
    arguments = parser.parse_args()

    rng = np.random.default_rng(arguments.seed + 1)
    centroids = random_centroids(np.random.default_rng(arguments.seed), CENTROIDS, DIM)
    queries = [clustered_unit_rows(rng, centroids, QUERY_ROWS) for _ in range(arguments.queries)]
    quiet = QuietTimer(attempts=2, timeout=arguments.quiet_timeout)
    rates = MatmulRates(quiet)
    timer = SearchTimer(quiet, busy=not arguments.no_busy)
    rows = []
    for size in arguments.sizes:
        rates.sample()
        rows.append(measure_ours(size, queries, arguments.seed, timer))
        if size <= arguments.qdrant_max:
            rows.append(measure_qdrant(size, queries, arguments.seed, timer))
        rates.sample()
    matmul_rate = rates.best
    header = [
        "store",
        "documents",
        "add docs/s",
        "add M vectors/s",
        "search p50 ms",
        "search p95 ms",
        "search GFLOP/s (of matmul)",
        "busy neighbour: search p50 ms",
        "bytes/token",
        "load s",
    ]
    print(markdown_table(header, [measurement.row(matmul_rate) for measurement in rows]))
    print(
        f"\n{rates.summary()} Target: search at >= 50% of it and <= {2 * DIM + 8} bytes/token "
        f"(2 x dim + 8) in float16. {quiet.summary()}"
    )
    print(machine())


if __name__ == "__main__":
    main()
