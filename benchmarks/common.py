"""Helpers shared by the benchmark scripts: timing, peak memory, matmul rate, the machine."""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")
MIB = 1024 * 1024
SAMPLE_SECONDS = 0.005


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


class MatmulRates:
    """The float32 matmul rate, sampled again and again during a run: the machine's speed
    can drift (a shared host), so the run reports the range and scores against the best."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def sample(self) -> None:
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
