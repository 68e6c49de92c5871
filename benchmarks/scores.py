"""Exact MaxSim speed: `maxsim.scores` against PyLate's padded einsum, on the CPU.

One query (32 unit rows, dim 128) against 10,000 documents of 50-600 unit rows, given as
a list of float32 numpy arrays; rows are clustered around 4,096 random directions, as
token vectors are. The baseline pads every document to the longest, masks, and scores
with `torch.einsum("ash,bth->abst", ...)`; it is timed with the padding (what a caller
holding a list pays) and without it (pre-padded tensors).

Two runs: on an otherwise idle CPU, and with a busy neighbour (a second process this
script starts, spinning on one core, as a RAG service's CPU is never its own).

Run from the repository root:

    .venv/bin/python benchmarks/scores.py            # or: make bench
    .venv/bin/python benchmarks/scores.py --documents 2000 --repeats 3 --runs busy
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from common import (
    MatmulRates,
    QuietTimer,
    busy_neighbour,
    clustered_unit_rows,
    machine,
    markdown_table,
    peak_extra_mib,
    random_centroids,
)
from torch.nn.utils.rnn import pad_sequence

import maxsim

QUERY_ROWS = 32
DIM = 128
CENTROIDS = 4096


@dataclass(frozen=True)
class Padded:
    """Documents padded to the longest: [documents, longest, dim] plus a 0/1 mask."""

    documents: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class Result:
    """One timed variant: its name, seconds per run, matmul FLOPs and peak extra memory."""

    name: str
    seconds: list[float]
    flops: float
    peak_mib: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--min-rows", type=int, default=50)
    parser.add_argument("--max-rows", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant")
    parser.add_argument("--attempts", type=int, default=3, help="tries per timed call")
    parser.add_argument(
        "--quiet-timeout", type=float, default=120.0, help="most seconds to wait for a quiet CPU"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=["idle", "busy"],
        default=["idle", "busy"],
        help="idle CPU, and/or with a busy neighbour process",
    )
    return parser.parse_args()


def make_data(args: argparse.Namespace) -> tuple[np.ndarray, list[np.ndarray]]:
    """The query and the documents, from a seeded generator."""
    rng = np.random.default_rng(args.seed)
    centroids = random_centroids(rng, CENTROIDS, DIM)
    query = clustered_unit_rows(rng, centroids, QUERY_ROWS)
    lengths = rng.integers(args.min_rows, args.max_rows, endpoint=True, size=args.documents)
    return query, [clustered_unit_rows(rng, centroids, int(length)) for length in lengths]


def ours(query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
    return maxsim.scores([query], documents)[0]


def pad(documents: list[np.ndarray]) -> Padded:
    """PyLate's input shape: documents padded with zero rows, and the mask of real rows."""
    tensors = [torch.from_numpy(document) for document in documents]
    padded = pad_sequence(tensors, batch_first=True, padding_value=0.0)
    lengths = torch.tensor([len(document) for document in documents])
    mask = (torch.arange(padded.shape[1])[None, :] < lengths[:, None]).float()
    return Padded(padded, mask)


def einsum_scores(query: torch.Tensor, padded: Padded) -> np.ndarray:
    """PyLate's `colbert_scores`: einsum, mask padding to 0, max over doc rows, sum."""
    similarities = torch.einsum("ash,bth->abst", query[None], padded.documents)
    similarities = similarities * padded.mask[None, :, None, :]
    return similarities.max(dim=-1).values.sum(dim=-1)[0].numpy()


def baseline_with_padding(query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
    return einsum_scores(torch.from_numpy(query), pad(documents))


@dataclass(frozen=True)
class Variant:
    """A way to score: its name, the call, and the matmul FLOPs that call performs."""

    name: str
    call: Callable[[], Any]
    flops: float


def measure(
    variants: list[Variant], repeats: int, timer: QuietTimer, rates: MatmulRates
) -> list[Result]:
    """Warm each variant up, time `repeats` rounds taking turns (so drift in the machine's
    speed hits every variant alike) with the matmul rate sampled between rounds, then
    call each once more for its peak memory."""
    for variant in variants:
        variant.call()
    rates.sample()
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(repeats):
        for variant, seconds in zip(variants, times, strict=True):
            seconds.append(timer.time(variant.call))
        rates.sample()
    return [
        Result(variant.name, seconds, variant.flops, peak_extra_mib(variant.call))
        for variant, seconds in zip(variants, times, strict=True)
    ]


def report(results: list[Result], peak_gflops: float) -> str:
    ours_seconds = results[0].median
    rows = []
    for result in results:
        gflops = result.flops / result.median / 1e9
        rows.append(
            [
                result.name,
                f"{result.median:.3f}",
                f"{min(result.seconds):.3f}-{max(result.seconds):.3f}",
                f"{result.median / ours_seconds:.2f}x",
                f"{gflops:.1f}",
                f"{100 * gflops / peak_gflops:.0f}%",
                f"{result.peak_mib:.1f}",
            ]
        )
    header = [
        "variant",
        "median s",
        "range s",
        "ours is faster by",
        "GFLOP/s",
        "of matmul rate",
        "peak extra RSS MiB",
    ]
    return markdown_table(header, rows)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    query, documents = make_data(args)
    total_rows = sum(len(document) for document in documents)
    padded = pad(documents)
    padded_rows = padded.documents.shape[0] * padded.documents.shape[1]
    query_tensor = torch.from_numpy(query)
    difference = float(np.abs(ours(query, documents) - einsum_scores(query_tensor, padded)).max())
    variants = [
        Variant(
            "ours: `maxsim.scores([q], docs)`",
            lambda: ours(query, documents),
            2 * QUERY_ROWS * total_rows * DIM,
        ),
        Variant(
            "baseline: pad_sequence + mask + einsum",
            lambda: baseline_with_padding(query, documents),
            2 * QUERY_ROWS * padded_rows * DIM,
        ),
        Variant(
            "baseline: einsum on pre-padded tensors",
            lambda: einsum_scores(query_tensor, padded),
            2 * QUERY_ROWS * padded_rows * DIM,
        ),
    ]
    print(
        f"1 query x {QUERY_ROWS} rows vs {len(documents):,} documents of "
        f"{args.min_rows}-{args.max_rows} rows ({total_rows:,} rows, padded to "
        f"{padded.documents.shape[1]}), dim {DIM}, float32, rows clustered around "
        f"{CENTROIDS:,} directions; median of {args.repeats} interleaved runs. "
        f"max |ours - baseline| = {difference:.2e}.\n"
    )
    for run in args.runs:
        timer = QuietTimer(attempts=args.attempts, timeout=args.quiet_timeout)
        rates = MatmulRates(timer)
        if run == "idle":
            results = measure(variants, args.repeats, timer, rates)
        else:
            with busy_neighbour() as pid:
                timer.neighbours.append(pid)
                results = measure(variants, args.repeats, timer, rates)
        title = "Idle CPU" if run == "idle" else "One busy neighbour process (a Python busy loop)"
        print(
            f"### {title}\n\n{report(results, rates.best)}\n\n{rates.summary()} {timer.summary()}\n"
        )
    print(machine())


if __name__ == "__main__":
    main()
