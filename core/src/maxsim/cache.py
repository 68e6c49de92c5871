"""A bounded, thread-safe cache of document vectors, shared by the rerankers.

An encoder's `rerank` (and through it LangChain's `ColBERTReranker` and LlamaIndex's
`ColBERTRerank`) looks every document up here before encoding it, so a chunk that comes
back for many questions is encoded once. Entries are keyed by the text and by everything
that changes its vectors (the encoder's class and checkpoint, dim, document length, dtype,
quantization and, for a remote encoder, its server), so one cache can serve several
encoders. The cache is bounded in bytes and evicts the least recently used entries first.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maxsim.validation import check_positive_int

if TYPE_CHECKING:
    from maxsim.late_interaction import LateInteractionEncoder

DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
ENTRY_OVERHEAD_BYTES = 256

CacheKey = tuple[tuple[Hashable, ...], str]


@dataclass(frozen=True)
class CacheInfo:
    """How a cache has done: lookups answered (`hits`) and encoded (`misses`), and its size."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int


def encoder_settings(encoder: LateInteractionEncoder) -> tuple[Hashable, ...]:
    """What makes an encoder's document vectors what they are, as a hashable tuple."""
    return (
        type(encoder).__qualname__,
        encoder.name,
        getattr(encoder, "layout", None),
        encoder.dim,
        encoder.document_length,
        str(getattr(encoder, "dtype", None)),
        getattr(encoder, "quantize", None),
        getattr(encoder, "base_url", None),
    )


class DocumentVectorCache:
    """Document vectors by text and encoder settings, least recently used evicted first.

    Holds at most `max_bytes` (vectors, texts and a fixed overhead per entry); 0 turns the
    cache off.

    Example:
        >>> from maxsim.testing import FakeColBERT
        >>> cache = DocumentVectorCache(max_bytes=1_000_000)
        >>> model = FakeColBERT()
        >>> first = cache.encode_documents(model, ["red apple", "blue sky"])
        >>> again = cache.encode_documents(model, ["blue sky"])
        >>> info = cache.info()
        >>> info.hits, info.misses, info.entries
        (1, 2, 2)
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = check_positive_int(max_bytes, "cache_size", minimum=0)
        self._entries: OrderedDict[CacheKey, tuple[np.ndarray, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def encode_documents(
        self, encoder: LateInteractionEncoder, texts: Sequence[str], batch_size: int = 32
    ) -> list[np.ndarray]:
        """`encoder.encode_documents(texts)`, answered from the cache where it can be.

        Texts not in the cache are encoded in one call (each distinct text once) and
        stored. Returns one float32 [rows, dim] array per text, in input order (copies:
        changing them leaves the cache alone).
        With `max_bytes=0` this is `encoder.encode_documents` and nothing is counted.
        """
        check_positive_int(batch_size, "batch_size")
        if not self.max_bytes:
            return encoder.encode_documents(list(texts), batch_size)
        texts = list(texts)
        settings = encoder_settings(encoder)
        found = self._lookup([(settings, text) for text in texts])
        missing = list(dict.fromkeys(text for text in texts if text not in found))
        if missing:
            arrays = encoder.encode_documents(missing, batch_size)
            for array in arrays:
                array.flags.writeable = False
            encoded = dict(zip(missing, arrays, strict=True))
            self._store([((settings, text), array) for text, array in encoded.items()])
            found.update(encoded)
        return [found[text].copy() for text in texts]

    def info(self) -> CacheInfo:
        """Hits, misses, evictions, entries and bytes held so far."""
        with self._lock:
            return CacheInfo(
                self._hits,
                self._misses,
                self._evictions,
                len(self._entries),
                self._bytes,
                self.max_bytes,
            )

    def clear(self) -> None:
        """Drop every entry (the counts are kept)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _lookup(self, keys: list[CacheKey]) -> dict[str, np.ndarray]:
        """The cached arrays of these keys by text, counting a hit or a miss for each."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    self._misses += 1
                    continue
                self._hits += 1
                self._entries.move_to_end(key)
                found[key[1]] = entry[0]
        return found

    def _store(self, items: list[tuple[CacheKey, np.ndarray]]) -> None:
        with self._lock:
            for key, array in items:
                size = array.nbytes + sys.getsizeof(key[1]) + ENTRY_OVERHEAD_BYTES
                if size > self.max_bytes:
                    continue
                previous = self._entries.pop(key, None)
                if previous is not None:
                    self._bytes -= previous[1]
                self._entries[key] = (array, size)
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size
                self._evictions += 1
