"""The model worker: one thread that merges waiting requests into token-budget batches.

Request handlers never run the model: they queue a job and await its future, so the
event loop keeps answering (`/health`, new requests) while the model works.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from maxsim.late_interaction import TokenizedEncoder

logger = logging.getLogger("maxsim")


@dataclass(frozen=True)
class Encoded:
    """One job's result: a float32 [rows, dim] array per text, and the tokens processed."""

    vectors: list[np.ndarray]
    tokens: int


@dataclass
class _Job:
    texts: list[str]
    is_query: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Encoded]
    sequences: list[list[int]] = field(default_factory=list)


class ModelWorker:
    """Runs `model` on a thread; `encode` is awaited from the event loop.

    The thread starts with the app's lifespan, or on the first `encode` when the lifespan
    never runs (a mounted sub-app, `--lifespan off`).

    Each round takes every job waiting (up to `round_tokens` tokens), tokenizes them and
    embeds all queries, then all documents, in one call each: the model's own token-budget
    batching then packs texts from different requests into the same forward passes.

    Example:
        >>> from maxsim.testing import FakeColBERT
        >>> worker = ModelWorker(FakeColBERT(dim=4))
        >>> worker.start()
        >>> asyncio.run(worker.encode(["a red apple"], is_query=False)).tokens
        3
        >>> worker.stop()
    """

    def __init__(
        self, model: TokenizedEncoder, *, batch_size: int = 64, round_tokens: int = 65536
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.round_tokens = round_tokens
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._held: _Job | None = None

    def start(self) -> None:
        """Start the model thread, unless it runs already."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="maxsim-model", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the model thread once the jobs queued before are done."""
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    async def encode(self, texts: list[str], *, is_query: bool) -> Encoded:
        """Vectors for `texts` (checked non-empty strings), computed on the worker thread."""
        loop = asyncio.get_running_loop()
        job = _Job(texts, is_query, loop, loop.create_future())
        self.start()
        self._queue.put(job)
        return await job.future

    def _run(self) -> None:
        while True:
            jobs = self._round()
            if jobs is None:
                return
            for is_query in (True, False):
                group = [job for job in jobs if job.is_query == is_query]
                if group:
                    self._serve(group, is_query)

    def _round(self) -> list[_Job] | None:
        """The jobs of the next round (None once stopped), tokenized."""
        first = self._held if self._held is not None else self._queue.get()
        self._held = None
        if first is None:
            return None
        jobs: list[_Job] = []
        tokens = 0
        job: _Job | None = first
        while job is not None:
            if not self._tokenize(job):
                job = self._next()
                continue
            size = sum(len(sequence) for sequence in job.sequences)
            if jobs and tokens + size > self.round_tokens:
                self._held = job
                break
            jobs.append(job)
            tokens += size
            job = self._next()
        return jobs

    def _next(self) -> _Job | None:
        try:
            job = self._queue.get_nowait()
        except queue.Empty:
            return None
        if job is None:
            self._queue.put(None)
        return job

    def _tokenize(self, job: _Job) -> bool:
        """Whether `job` has its token ids (a job held over from the last round has)."""
        if job.sequences:
            return True
        try:
            job.sequences, _ = self.model._sequences(job.texts, job.is_query)
        except Exception as error:
            _settle(job, error=error)
            return False
        return True

    def _serve(self, jobs: list[_Job], is_query: bool) -> None:
        """Embed `jobs` together; when that fails, each alone, so only a bad job fails."""
        sequences = [sequence for job in jobs for sequence in job.sequences]
        try:
            encoded = self.model._embed(sequences, is_query, self.batch_size, False)
        except Exception as error:
            if len(jobs) > 1:
                for job in jobs:
                    self._serve([job], is_query)
                return
            logger.exception("the model failed on a request of %d texts", len(sequences))
            _settle(jobs[0], error=error)
            return
        start = 0
        for job in jobs:
            items = encoded[start : start + len(job.sequences)]
            start += len(job.sequences)
            vectors = [item.embeddings.numpy() for item in items]
            _settle(job, Encoded(vectors, sum(len(sequence) for sequence in job.sequences)))


def _settle(job: _Job, result: Encoded | None = None, error: BaseException | None = None) -> None:
    def settle() -> None:
        if job.future.cancelled():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)  # type: ignore[arg-type]

    job.loop.call_soon_threadsafe(settle)
