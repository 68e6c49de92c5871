"""Clustered synthetic token vectors that behave like ColBERT token embeddings.

Each token is one term of a Zipf-distributed vocabulary: its vector is the term's centre,
plus its document's topic direction, plus noise, normalised. A document draws most tokens
from its topic's own (Zipf) terms and the rest from the whole vocabulary, so documents of a
topic share terms and frequent terms crowd the space, as in real collections. Batches are
generated from their own seed, so a collection can be streamed again without holding it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DIM = 128
VOCABULARY = 30_000
TOPICS = 500
TOPIC_TERMS = 300
TOPIC_SHARE = 0.6
TOPIC_WEIGHT = 0.25
NOISE = 0.35
QUERY_NOISE = 0.35
COPY_NOISE = 3.0
COPY_STRANGERS = 0.5
QUERY_STRANGERS = 0.8
QUERY_ROWS = 32
NOISE_BANK = 1 << 18


class Collection:
    """`documents` documents of about `tokens` tokens each, generated batch by batch."""

    def __init__(self, documents: int, tokens: int, seed: int = 0, batch: int = 10_000) -> None:
        self.documents, self.tokens, self.seed, self.batch = documents, tokens, seed, batch
        rng = np.random.default_rng(seed)
        self.centres = _unit(rng.standard_normal((VOCABULARY, DIM), dtype=np.float32))
        topics = _unit(rng.standard_normal((TOPICS, DIM), dtype=np.float32))
        self.topics = topics * np.float32(TOPIC_WEIGHT)
        self.topic_terms = rng.integers(0, VOCABULARY, (TOPICS, TOPIC_TERMS))
        self.global_cdf = _zipf_cdf(VOCABULARY)
        self.topic_cdf = _zipf_cdf(TOPIC_TERMS)
        bank = rng.standard_normal((NOISE_BANK, DIM), dtype=np.float32)
        self.noise = bank * np.float32(NOISE / np.sqrt(DIM))

    def batches(self) -> Iterator[tuple[int, list[np.ndarray]]]:
        """(first document number, [rows, dim] float32 arrays) for each batch."""
        for first in range(0, self.documents, self.batch):
            yield first, self.generate(first, min(self.batch, self.documents - first))

    def generate(self, first: int, count: int) -> list[np.ndarray]:
        """Documents first .. first + count - 1 (the same on every call)."""
        lengths, topic, terms, noise = self._draw(first, count)
        vectors = np.take(self.centres, terms, axis=0)
        vectors += np.take(self.topics, topic, axis=0)
        vectors += np.take(self.noise, noise, axis=0)
        return np.split(_unit(vectors), np.cumsum(lengths)[:-1])

    def _draw(self, first: int, count: int) -> tuple[np.ndarray, ...]:
        """Per document its length; per token its topic, term and noise-bank row."""
        rng = np.random.default_rng((self.seed, first))
        low, high = int(self.tokens * 0.8), int(self.tokens * 1.2)
        lengths = rng.integers(low, high + 1, count)
        total = int(lengths.sum())
        topic = np.repeat(rng.integers(0, TOPICS, count), lengths)
        from_topic = rng.random(total) < TOPIC_SHARE
        terms = np.searchsorted(self.global_cdf, rng.random(total))
        local = np.searchsorted(self.topic_cdf, rng.random(total))
        terms[from_topic] = self.topic_terms[topic[from_topic], local[from_topic]]
        noise = rng.integers(0, NOISE_BANK, total)
        return lengths, topic, np.minimum(terms, VOCABULARY - 1), noise

    def sample(self, rows: int) -> np.ndarray:
        """About `rows` token vectors of other documents of the same distribution."""
        documents = max(rows // self.tokens, 1)
        return np.concatenate(self.generate(self.documents + 1_000_000_000, documents))

    def queries(
        self, count: int, seed: int = 2, copies: bool = False
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """`count` queries of 32 rows and their source documents.

        A query restates terms of its source: each row is a term of a random source token,
        drawn afresh (term centre + the source's topic + new noise, as another text using
        the word would give), and `QUERY_STRANGERS` of the rows are terms the source need
        not have. Topic neighbours share most terms, so exact search does not always rank
        the source first. With `copies`, each row is instead a source token vector itself
        plus strong noise (`COPY_NOISE`; `COPY_STRANGERS` of the rows are strangers):
        finding the source then hangs on each token's own noise, the fine detail that
        residual compression keeps least of.
        """
        rng = np.random.default_rng((self.seed, seed))
        sources = np.sort(rng.choice(self.documents, count, replace=False))
        queries, cached = [], (-1, ())
        for source in sources:
            first = int(source) // self.batch * self.batch
            if cached[0] != first:
                cached = (first, self._draw(first, min(self.batch, self.documents - first)))
            lengths, topic, terms, noise = cached[1]
            start = int(lengths[: source - first].sum())
            picked = start + rng.integers(0, int(lengths[source - first]), QUERY_ROWS)
            strangers = rng.random(QUERY_ROWS) < (COPY_STRANGERS if copies else QUERY_STRANGERS)
            words = np.where(strangers, rng.integers(0, VOCABULARY, QUERY_ROWS), terms[picked])
            if copies:
                rows = self.centres[terms[picked]] + self.topics[topic[picked]]
                rows = _unit(rows + self.noise[noise[picked]])
                rows[strangers] = self.centres[words[strangers]]
                fresh = rng.standard_normal(rows.shape, dtype=np.float32)
                queries.append(_unit(rows + np.float32(COPY_NOISE / np.sqrt(DIM)) * fresh))
            else:
                rows = self.centres[words] + self.topics[topic[picked]]
                noise_rows = self.noise[rng.integers(0, NOISE_BANK, QUERY_ROWS)]
                rows += noise_rows * np.float32(QUERY_NOISE / NOISE)
                queries.append(_unit(rows))
        return queries, sources


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _zipf_cdf(size: int, exponent: float = 1.0) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return np.cumsum(weights) / weights.sum()
