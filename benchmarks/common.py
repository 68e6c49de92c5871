"""Helpers shared by the benchmark scripts: timing, peak memory, matmul rate, the machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")
MIB = 1024 * 1024
SAMPLE_SECONDS = 0.005
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_WINDOW_SECONDS = 1.0
QUIET_TIMEOUT_SECONDS = 120.0
CLUSTER_NOISE = np.float32(0.06)


def timed(function: Callable[[], T]) -> tuple[float, T]:
    """Seconds one call of `function` took, and what it returned."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `repeats` calls (run one warm-up call first yourself)."""
    return statistics.median(timed(function)[0] for _ in range(repeats))


def matmul_gflops(size: int = 4096, repeats: int = 3) -> float:
    """The float32 rate of one `size` x `size` torch matmul, median of `repeats` runs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    seconds = median_seconds(lambda: torch.mm(a, b), repeats)
    return 2 * size**3 / seconds / 1e9


def _cpu_seconds(neighbours: Sequence[int] = ()) -> tuple[float, float]:
    """Busy CPU seconds of the whole machine (from /proc/stat), and of this process plus
    the `neighbours` it started itself (process ids)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    own = os.times()
    started = 0
    for pid in neighbours:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        started += int(fields[11]) + int(fields[12])
    return (sum(values) - idle) / CLOCK_TICKS, own.user + own.system + started / CLOCK_TICKS


@contextmanager
def busy_neighbour() -> Iterator[int]:
    """Another process spinning on one core (a Python busy loop) while the block runs;
    yields its process id and kills it at the end."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def clustered_unit_rows(rng: np.random.Generator, centroids: np.ndarray, rows: int) -> np.ndarray:
    """`rows` float32 unit rows scattered around random `centroids`, the way real token
    vectors gather around a few thousand directions."""
    picks = rng.integers(len(centroids), size=rows)
    noise = rng.standard_normal((rows, centroids.shape[1]), dtype=np.float32)
    values = centroids[picks] + CLUSTER_NOISE * noise
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def random_centroids(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """`count` random float32 unit vectors of length `dim`."""
    values = rng.standard_normal((count, dim), dtype=np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


class QuietTimer:
    """Wall-clock timing that notices other processes competing for the CPU.

    On a small shared machine another process (a test run, say) can take half the cores
    and double a timing. Before each timed call this waits (up to `timeout` s) for a
    second in which other processes used under `threshold` of the CPUs; a call during
    which they used more is repeated, up to `attempts` calls, and the fastest is kept.
    """

    def __init__(
        self, attempts: int = 3, threshold: float = 0.05, timeout: float = QUIET_TIMEOUT_SECONDS
    ) -> None:
        self.attempts = attempts
        self.threshold = threshold
        self.timeout = timeout
        self.runs = 0
        self.contended = 0
        self.neighbours: list[int] = []

    def foreign_share(self, function: Callable[[], Any]) -> tuple[float, float]:
        """Seconds `function` took, and the share of all CPUs other processes (not counting
        `neighbours`, the busy processes a run starts on purpose) used meanwhile."""
        busy, own = _cpu_seconds(self.neighbours)
        seconds, _ = timed(function)
        busy_after, own_after = _cpu_seconds(self.neighbours)
        foreign = max(busy_after - busy - (own_after - own), 0.0)
        return seconds, foreign / (max(seconds, 1e-3) * (os.cpu_count() or 1))

    def wait(self) -> None:
        """Return after a quiet second, or after `timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            _, share = self.foreign_share(lambda: time.sleep(QUIET_WINDOW_SECONDS))
            if share < self.threshold:
                return

    def time(self, function: Callable[[], Any]) -> float:
        """Seconds for one call of `function`, retried while other processes interfered."""
        best = float("inf")
        self.runs += 1
        for _ in range(self.attempts):
            self.wait()
            seconds, share = self.foreign_share(function)
            best = min(best, seconds)
            if share < self.threshold:
                return seconds
        self.contended += 1
        return best

    def summary(self) -> str:
        return (
            f"{self.contended} of {self.runs} timed calls still overlapped other processes' "
            f"CPU use (over {self.threshold:.0%} of the cores) after {self.attempts} tries."
        )


class MatmulRates:
    """The float32 matmul rate, sampled again and again during a run: the machine's speed
    can drift (a shared host), so the run reports the range and scores against the best."""

    def __init__(self, timer: QuietTimer) -> None:
        self.samples: list[float] = []
        self.timer = timer

    def sample(self) -> None:
        self.timer.wait()
        self.samples.append(matmul_gflops())

    @property
    def best(self) -> float:
        return max(self.samples)

    def summary(self) -> str:
        return (
            f"Float32 matmul rate (4096x4096 torch.mm, median of 3), sampled "
            f"{len(self.samples)} times during the run: {min(self.samples):.1f}-{self.best:.1f} "
            "GFLOP/s; the percentages use the highest."
        )


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _sampled_peak_kib(function: Callable[[], Any]) -> int:
    """Peak VmRSS seen by a thread sampling every few milliseconds while `function` runs."""
    peak = _status_kib("VmRSS")
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _status_kib("VmRSS"))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        function()
    finally:
        done.set()
        sampler.join()
    return max(peak, _status_kib("VmRSS"))


def peak_extra_mib(function: Callable[[], Any]) -> float:
    """How far the process's resident memory rose above its level before `function` ran.

    Uses the kernel's exact peak counter (VmHWM after a reset through clear_refs) when
    the process may reset it, else a sampling thread.
    """
    before = _status_kib("VmRSS")
    if _reset_peak_rss():
        function()
        peak = _status_kib("VmHWM")
    else:
        peak = _sampled_peak_kib(function)
    return max(peak - before, 0) * 1024 / MIB


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, blank lines skipped."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def read_qrels(path: Path) -> dict[str, set[str]]:
    """A BEIR qrels TSV (header line first) as the relevant document ids of each query."""
    relevant: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        query, document, score = line.split("\t")
        if int(score) > 0:
            relevant.setdefault(query, set()).add(document)
    return relevant


def machine() -> str:
    """One line naming the CPU, cores, memory and torch version."""
    cpu = platform.processor() or "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"Machine: {cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table; the first column left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
