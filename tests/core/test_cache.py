"""The document-vector cache: hits and misses, eviction by bytes, keys, threads, rerank."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import maxsim
from maxsim.cache import ENTRY_OVERHEAD_BYTES, DocumentVectorCache
from maxsim.late_interaction import EncodedText
from maxsim.testing import FakeColBERT

DOCUMENTS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "Bread is baked from flour and water.",
    "The Rhine flows through Germany and the Netherlands.",
]


class CountingFake(FakeColBERT):
    """FakeColBERT that counts the sequences it embeds."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__(dim=dim)
        self.embedded = 0

    def _embed(
        self, sequences: list[list[int]], is_query: bool, batch_size: int, progress: bool | None
    ) -> list[EncodedText]:
        self.embedded += len(sequences)
        return super()._embed(sequences, is_query, batch_size, progress)


def entry_bytes(model: FakeColBERT, text: str) -> int:
    """What one cached document costs against the bound."""
    cache = DocumentVectorCache(10**9)
    cache.encode_documents(model, [text])
    return cache.info().bytes


def test_second_rerank_is_answered_from_the_cache() -> None:
    model = CountingFake()
    first = model.rerank("capital of Germany", DOCUMENTS)
    assert model.embedded == 1 + len(DOCUMENTS)
    assert model.cache_info().misses == len(DOCUMENTS) and model.cache_info().hits == 0
    second = model.rerank("capital of Germany", DOCUMENTS)
    assert model.embedded == 2 + len(DOCUMENTS)  # only the query
    assert second == first
    info = model.cache_info()
    assert (info.hits, info.misses, info.entries) == (len(DOCUMENTS), len(DOCUMENTS), 4)


def test_repeated_texts_in_one_call_are_encoded_once() -> None:
    model = CountingFake()
    cache = DocumentVectorCache()
    arrays = cache.encode_documents(model, [DOCUMENTS[0], DOCUMENTS[1], DOCUMENTS[0]])
    assert model.embedded == 2
    np.testing.assert_array_equal(arrays[0], arrays[2])
    np.testing.assert_array_equal(arrays[1], model.encode_documents([DOCUMENTS[1]])[0])


def test_callers_get_copies_they_may_change() -> None:
    model, cache = FakeColBERT(), DocumentVectorCache()
    [array] = cache.encode_documents(model, [DOCUMENTS[0]])
    array[:] = 0.0
    [again] = cache.encode_documents(model, [DOCUMENTS[0]])
    np.testing.assert_array_equal(again, model.encode_documents([DOCUMENTS[0]])[0])


def test_size_zero_turns_the_cache_off() -> None:
    model = CountingFake()
    model.document_cache = DocumentVectorCache(0)
    model.rerank("capital", DOCUMENTS)
    model.rerank("capital", DOCUMENTS)
    assert model.embedded == 2 * (1 + len(DOCUMENTS))
    info = model.cache_info()
    assert (info.entries, info.bytes, info.hits) == (0, 0, 0)


def test_least_recently_used_entries_go_first_and_bytes_stay_bounded() -> None:
    model = FakeColBERT()
    texts = ["red apple", "big plums", "old trees", "new roads"]
    size = entry_bytes(model, texts[0])
    assert all(entry_bytes(model, text) == size for text in texts)
    cache = DocumentVectorCache(max_bytes=3 * size)
    cache.encode_documents(model, texts[:3])
    cache.encode_documents(model, texts[:1])  # texts[0] is now the most recent
    cache.encode_documents(model, texts[3:])
    info = cache.info()
    assert (info.entries, info.evictions, info.bytes) == (3, 1, 3 * size)
    before = cache.info().hits
    cache.encode_documents(model, [texts[0], texts[2], texts[3]])
    assert cache.info().hits == before + 3
    cache.encode_documents(model, [texts[1]])  # evicted: a miss
    assert cache.info().misses == info.misses + 1
    assert cache.info().bytes <= cache.max_bytes


def test_a_stream_of_distinct_texts_never_exceeds_the_bound() -> None:
    model = FakeColBERT()
    cache = DocumentVectorCache(max_bytes=20_000)
    for start in range(0, 200, 10):
        batch = [
            f"document {i} about topic {i % 7} and word {i * 13}" for i in range(start, start + 10)
        ]
        cache.encode_documents(model, batch)
        assert cache.info().bytes <= 20_000
    info = cache.info()
    assert info.evictions > 0 and info.entries < 200 and info.misses == 200


def test_an_entry_larger_than_the_bound_is_not_kept() -> None:
    model = FakeColBERT()
    cache = DocumentVectorCache(max_bytes=ENTRY_OVERHEAD_BYTES)
    [array] = cache.encode_documents(model, [DOCUMENTS[0]])
    np.testing.assert_array_equal(array, model.encode_documents([DOCUMENTS[0]])[0])
    assert cache.info().entries == 0 and cache.info().bytes == 0


def test_keys_differ_by_dim_and_by_document_length() -> None:
    cache = DocumentVectorCache()
    small, large = FakeColBERT(dim=16), FakeColBERT(dim=32)
    short = FakeColBERT(dim=16, document_length=3)
    for model in (small, large, short):
        [array] = cache.encode_documents(model, [DOCUMENTS[0]])
        assert array.shape == model.encode_documents([DOCUMENTS[0]])[0].shape
    assert cache.info().misses == 3 and cache.info().hits == 0
    again = FakeColBERT(dim=16)  # the same settings: shares the entries
    cache.encode_documents(again, [DOCUMENTS[0]])
    assert cache.info().hits == 1


def test_threads_share_one_cache_safely() -> None:
    model = CountingFake()
    texts = [f"passage {i} on subject {i % 5}" for i in range(40)]
    expected = {r.index: r.score for r in FakeColBERT().rerank("subject 3", texts)}

    def rerank(offset: int) -> dict[int, float]:
        rotated = texts[offset:] + texts[:offset]
        results = model.rerank("subject 3", rotated)
        return {(r.index + offset) % len(texts): r.score for r in results}

    with ThreadPoolExecutor(8) as pool:
        scores = list(pool.map(rerank, [i % 4 for i in range(32)]))
    assert all(found == pytest.approx(expected) for found in scores)
    info = model.cache_info()
    assert info.hits + info.misses == 32 * len(texts)
    assert info.entries == len(texts) and info.bytes <= info.max_bytes
    assert info.hits > 0 and model.embedded - 32 <= info.misses


def test_clear_drops_entries_and_keeps_counts() -> None:
    model = FakeColBERT()
    model.rerank("capital", DOCUMENTS)
    model.document_cache.clear()
    info = model.cache_info()
    assert (info.entries, info.bytes, info.misses) == (0, 0, len(DOCUMENTS))


@pytest.mark.parametrize(
    ("size", "error"), [(-1, ValueError), (1.5, TypeError), ("256MB", TypeError)]
)
def test_bad_cache_size_is_refused(size: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="cache_size"):
        DocumentVectorCache(size)  # type: ignore[arg-type]


def test_from_pretrained_checks_cache_size_before_loading() -> None:
    with pytest.raises(ValueError, match="cache_size must be at least 0"):
        maxsim.ColBERT.from_pretrained("/no/such/folder", cache_size=-5)
