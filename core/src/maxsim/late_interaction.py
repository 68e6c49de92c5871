"""The encoder interface (`LateInteractionEncoder`) and its tokenized base (`TokenizedEncoder`).

Stores, adapters, the CLI and the server use only `LateInteractionEncoder`: a name, a
dim, two lengths, `encode_queries`, `encode_documents` and `rerank`. `TokenizedEncoder`
adds what needs token ids (chunk windows, `explain`, `tokenize`); `maxsim.ColBERT` and
`maxsim.testing.FakeColBERT` fill in its small hooks, `maxsim.RemoteColBERT` has none.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from maxsim.cache import CacheInfo, DocumentVectorCache
from maxsim.scoring import scores
from maxsim.validation import check_positive_int, check_text, check_texts

logger = logging.getLogger("maxsim")


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its position in the input, its raw MaxSim `score`, its
    text, and `normalized_score` (score / query rows, in [-1, 1] for cosine models)."""

    index: int
    score: float
    document: str
    normalized_score: float


@dataclass(frozen=True)
class TokenMatch:
    """The document token that one query token matched best, and their similarity."""

    query_token: str
    document_token: str
    document_position: int
    similarity: float


@dataclass(frozen=True)
class Explanation:
    """Token-level view of one query/document score.

    `similarities[i, j]` is query token i against kept document token j; the score is the
    sum over query tokens of their best match.
    """

    query_tokens: list[str]
    document_tokens: list[str]
    similarities: np.ndarray

    @property
    def matches(self) -> list[TokenMatch]:
        best = self.similarities.argmax(axis=1)
        return [
            TokenMatch(token, self.document_tokens[j], int(j), float(self.similarities[i, j]))
            for i, (token, j) in enumerate(zip(self.query_tokens, best, strict=True))
        ]

    @property
    def score(self) -> float:
        return float(self.similarities.max(axis=1).sum())


@dataclass
class EncodedText:
    """The kept rows of one encoded sequence and the ids of their tokens."""

    embeddings: torch.Tensor
    token_ids: list[int]


class LateInteractionEncoder(ABC):
    """What every multi-vector encoder offers: local, remote or fake.

    Subclasses give `name`, `dim`, the two lengths and the two `encode_*` methods;
    `rerank` is shared. Chunk windows are optional: `supports_chunking` says whether
    `check_chunking` and `encode_document_chunks` work (they need a tokenizer).
    """

    name: str
    dim: int
    supports_chunking: ClassVar[bool] = False

    @property
    @abstractmethod
    def query_length(self) -> int:
        """Tokens per query, specials and markers included."""

    @property
    @abstractmethod
    def document_length(self) -> int:
        """Most tokens per document, specials and markers included."""

    @property
    def fingerprint(self) -> str | None:
        """An id of the checkpoint's config and weights, the same wherever it was loaded
        from (None when unknown: then stores compare models by name)."""
        return None

    @abstractmethod
    def encode_queries(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [rows, dim] array per query, in input order (torch with `as_tensor`)."""

    @abstractmethod
    def encode_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [kept tokens, dim] array per document, truncated at `document_length`."""

    def check_chunking(self, chunk_size: int, chunk_overlap: int) -> int:
        """Content tokens per window for these settings; refused without a tokenizer.

        Raises:
            ValueError: this encoder cannot split documents into token windows.
        """
        raise _no_chunking(self, chunk_size)

    def encode_document_chunks(
        self,
        texts: Sequence[str],
        chunk_size: int,
        chunk_overlap: int = 64,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[list[Any]]:
        """Each document as overlapping token windows; refused without a tokenizer.

        Raises:
            ValueError: this encoder cannot split documents into token windows.
        """
        raise _no_chunking(self, chunk_size)

    def document_window_spans(
        self, texts: Sequence[str], chunk_size: int, chunk_overlap: int = 64
    ) -> list[list[tuple[int, int]]] | None:
        """Each text's windows as character spans; refused without a tokenizer.

        Raises:
            ValueError: this encoder cannot split documents into token windows.
        """
        raise _no_chunking(self, chunk_size)

    @cached_property
    def document_cache(self) -> DocumentVectorCache:
        """Where `rerank` keeps document vectors; assign another to resize or share one."""
        return DocumentVectorCache()

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the document-vector cache that `rerank` uses."""
        return self.document_cache.info()

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        *,
        batch_size: int = 32,
    ) -> list[RerankResult]:
        """Documents ordered by MaxSim against `query`, best first (ties keep input order).

        Document vectors come from `document_cache` when they are there (see `cache_info`).

        Example:
            >>> results = model.rerank("capital of France", ["Paris is in France", "Bread"])
            >>> sorted(result.index for result in results)
            [0, 1]
        """
        check_text(query, "query")
        documents = check_texts(documents, "documents")
        if top_n is not None:
            check_positive_int(top_n, "top_n")
        if not documents:
            return []
        [query_embeddings] = self.encode_queries([query])
        document_embeddings = self.document_cache.encode_documents(self, documents, batch_size)
        return rank(query_embeddings, document_embeddings, documents, top_n)


def rank(
    query: Any, documents: Sequence[Any], texts: Sequence[str], top_n: int | None
) -> list[RerankResult]:
    """`texts` ordered by the MaxSim of their `documents` vectors against `query`, best first.

    Example:
        >>> import numpy as np
        >>> query = np.eye(2, dtype=np.float32)
        >>> [hit.index for hit in rank(query, [query[:1], query], ["a", "b"], None)]
        [1, 0]
    """
    row = scores([query], list(documents))[0]
    order = np.argsort(-row, kind="stable")[:top_n]
    rows = query.shape[0]
    return [RerankResult(int(i), float(row[i]), texts[i], float(row[i]) / rows) for i in order]


def _no_chunking(encoder: LateInteractionEncoder, chunk_size: int) -> ValueError:
    return ValueError(
        f"chunk_size={chunk_size} needs an encoder that splits documents into token windows, "
        f"and {type(encoder).__name__} has no tokenizer (supports_chunking is False); "
        "leave chunk_size=None and split long texts before adding them"
    )


class TokenizedEncoder(LateInteractionEncoder):
    """An encoder that tokenizes locally; subclasses fill in the token-id hooks.

    Truncation, chunk windows, `explain` and `tokenize` are shared here.

    Example:
        >>> from maxsim.testing import FakeColBERT
        >>> fake = FakeColBERT(dim=8)
        >>> fake.supports_chunking, len(fake.tokenize(["Hello, world"], is_query=False)[0])
        (True, 3)
    """

    supports_chunking: ClassVar[bool] = True

    @abstractmethod
    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text's content, without special tokens, never truncated."""

    @abstractmethod
    def _content_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]] | None:
        """Character span of each content token in its text (as `_content_ids` splits it),
        or None when the tokenizer cannot tell."""

    @abstractmethod
    def _frame(self, content: list[int], is_query: bool) -> list[int]:
        """Content ids wrapped in special tokens and marker (and, for queries, expansion)."""

    @abstractmethod
    def _frame_overhead(self, is_query: bool) -> int:
        """How many ids `_frame` adds around the content, expansion not counted."""

    @abstractmethod
    def _embed(
        self, sequences: list[list[int]], is_query: bool, batch_size: int, progress: bool | None
    ) -> list[EncodedText]:
        """Embed framed sequences; rows that the model does not keep are dropped."""

    @abstractmethod
    def _token_strings(self, ids: list[int]) -> list[str]:
        """Readable tokens for ids, for explanations."""

    def encode_queries(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [rows, dim] array per query, in input order.

        Raises:
            TypeError: `texts` is not a list of strings (the message names the position).
            ValueError: a text is empty or whitespace only.
        """
        encoded = self._encode(check_texts(texts, "texts"), True, batch_size, show_progress_bar)
        return _output([item.embeddings for item in encoded], as_tensor)

    def encode_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [kept tokens, dim] array per document, in input order.

        Documents longer than `document_length` tokens are truncated, with one warning
        per call on the "maxsim" logger; `encode_document_chunks` keeps all of them.

        Raises:
            TypeError: `texts` is not a list of strings (the message names the position).
            ValueError: a text is empty or whitespace only.
        """
        encoded = self._encode(check_texts(texts, "texts"), False, batch_size, show_progress_bar)
        return _output([item.embeddings for item in encoded], as_tensor)

    def encode_document_chunks(
        self,
        texts: Sequence[str],
        chunk_size: int,
        chunk_overlap: int = 64,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[list[Any]]:
        """Each document as overlapping windows of at most `chunk_size` tokens.

        A document that fits in one window gives one array, the same as
        `encode_documents`; a longer one gives one array per window, each window framed
        with the special tokens and marker. Nothing is truncated.

        Raises:
            ValueError: `chunk_size` exceeds `document_length`, or leaves no room for
                content beyond `chunk_overlap`.
        """
        texts = check_texts(texts, "texts")
        window = self.check_chunking(chunk_size, chunk_overlap)
        windows: list[list[int]] = []
        owners: list[int] = []
        for owner, content in enumerate(self._content_ids([text.strip() for text in texts])):
            for start in _window_starts(len(content), window, chunk_overlap):
                windows.append(self._frame(content[start : start + window], False))
                owners.append(owner)
        check_positive_int(batch_size, "batch_size")
        encoded = self._embed(windows, False, batch_size, show_progress_bar)
        chunks: list[list[Any]] = [[] for _ in texts]
        for owner, item in zip(owners, encoded, strict=True):
            chunks[owner].append(item.embeddings)
        return [_output(parts, as_tensor) for parts in chunks]

    def document_window_spans(
        self, texts: Sequence[str], chunk_size: int, chunk_overlap: int = 64
    ) -> list[list[tuple[int, int]]] | None:
        """Each text's windows as `encode_document_chunks` makes them, as character spans
        `(start, end)`: `text[start:end]` is the window's text. None when the tokenizer
        gives no character offsets.

        Example:
            >>> from maxsim.testing import FakeColBERT
            >>> FakeColBERT().document_window_spans(["one two three four"], 3, 1)
            [[(0, 13), (8, 18)]]
        """
        texts = check_texts(texts, "texts")
        window = self.check_chunking(chunk_size, chunk_overlap)
        stripped = [text.strip() for text in texts]
        offsets = self._content_offsets(stripped)
        if offsets is None:
            return None
        spans = []
        for text, short, tokens in zip(texts, stripped, offsets, strict=True):
            shift = len(text) - len(text.lstrip())
            starts = _window_starts(len(tokens), window, chunk_overlap)
            spans.append(
                [
                    (
                        shift + tokens[start][0],
                        shift + tokens[min(start + window, len(tokens)) - 1][1],
                    )
                    if tokens
                    else (shift, shift + len(short))
                    for start in starts
                ]
            )
        return spans

    def check_chunking(self, chunk_size: int, chunk_overlap: int) -> int:
        """Content tokens per window for these settings, or an error naming the argument.

        Raises:
            TypeError: a setting is not an integer.
            ValueError: `chunk_size` exceeds `document_length` or leaves no room for
                content, or `chunk_overlap` is negative or fills the whole window.
        """
        check_positive_int(chunk_size, "chunk_size")
        check_positive_int(chunk_overlap, "chunk_overlap", minimum=0)
        if chunk_size > self.document_length:
            raise ValueError(
                f"chunk_size={chunk_size} exceeds document_length={self.document_length}; "
                "pass a smaller chunk_size"
            )
        window = chunk_size - self._frame_overhead(False)
        if window < 2:
            raise ValueError(
                f"chunk_size={chunk_size} leaves no room for text after the model's "
                f"{self._frame_overhead(False)} special tokens; pass a larger chunk_size"
            )
        if chunk_overlap >= window:
            raise ValueError(
                f"chunk_overlap must be in 0..{window - 1} for chunk_size={chunk_size}, "
                f"got {chunk_overlap}"
            )
        return window

    def explain(self, query: str, document: str) -> Explanation:
        """Which document token each query token matched, with the similarities."""
        check_text(query, "query")
        check_text(document, "document")
        [encoded_query] = self._encode([query], True, 1, False)
        [encoded_document] = self._encode([document], False, 1, False)
        similarities = encoded_query.embeddings @ encoded_document.embeddings.T
        return Explanation(
            query_tokens=self._token_strings(encoded_query.token_ids),
            document_tokens=self._token_strings(encoded_document.token_ids),
            similarities=similarities.numpy(),
        )

    def tokenize(self, texts: Sequence[str], *, is_query: bool) -> list[list[int]]:
        """Token ids exactly as the model sees them (markers inserted, queries expanded)."""
        sequences, _ = self._sequences(check_texts(texts, "texts"), is_query)
        return sequences

    def _sequences(self, texts: list[str], is_query: bool) -> tuple[list[list[int]], int]:
        """Framed token ids per text, and how many texts were truncated."""
        limit = self.query_length if is_query else self.document_length
        budget = limit - self._frame_overhead(is_query)
        contents = self._content_ids([text.strip() for text in texts])
        truncated = sum(len(content) > budget for content in contents)
        return [self._frame(content[:budget], is_query) for content in contents], truncated

    def _encode(
        self, texts: list[str], is_query: bool, batch_size: int, progress: bool | None
    ) -> list[EncodedText]:
        check_positive_int(batch_size, "batch_size")
        if not texts:
            return []
        sequences, truncated = self._sequences(texts, is_query)
        if truncated and not is_query:
            logger.warning(
                "%d of %d documents were longer than document_length=%d tokens and were "
                "truncated; load the model with a larger document_length, or store long "
                "documents in chunks (LateInteractionStore(chunk_size=...))",
                truncated,
                len(texts),
                self.document_length,
            )
        return self._embed(sequences, is_query, batch_size, progress)


def _window_starts(tokens: int, window: int, overlap: int) -> range:
    """Where each window of `window` content tokens starts, consecutive ones sharing `overlap`."""
    return range(0, max(tokens - overlap, 1), window - overlap)


def _output(embeddings: list[torch.Tensor], as_tensor: bool) -> list[Any]:
    return embeddings if as_tensor else [tensor.numpy() for tensor in embeddings]
