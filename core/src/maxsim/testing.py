"""Testing tools. `FakeColBERT` is a deterministic stand-in for tests, never a model."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch

from maxsim.late_interaction import EncodedText, TokenizedEncoder
from maxsim.validation import check_positive_int

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


class FakeColBERT(TokenizedEncoder):
    """A model-free encoder for tests: each token's vector comes from a hash of its text.

    Tokens are lower-cased words and punctuation marks. Equal words get equal vectors, so
    a document sharing words with a query scores higher, and results are the same on
    every run and machine. No markers, no query expansion: a query has one row per word
    (up to `query_length`), a document one row per word (up to `document_length`).

    Example:
        >>> from maxsim.testing import FakeColBERT
        >>> fake = FakeColBERT(dim=16)
        >>> [hit.index for hit in fake.rerank("red apple", ["blue sky", "a red apple"])]
        [1, 0]
    """

    def __init__(self, dim: int = 16, query_length: int = 8, document_length: int = 512) -> None:
        self.dim = check_positive_int(dim, "dim")
        self._query_length = check_positive_int(query_length, "query_length")
        self._document_length = check_positive_int(document_length, "document_length")
        self.name = f"fake-colbert-{dim}"
        self._tokens: dict[int, str] = {}
        self._vectors: dict[int, torch.Tensor] = {}

    @property
    def fingerprint(self) -> str:
        """Equal for fakes with equal settings, which encode alike."""
        settings = f"{self.name}:{self._query_length}:{self._document_length}"
        return hashlib.blake2b(settings.encode(), digest_size=16).hexdigest()

    @property
    def query_length(self) -> int:
        return self._query_length

    @property
    def document_length(self) -> int:
        return self._document_length

    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        return [
            [self._token_id(token) for token in TOKEN_PATTERN.findall(text.lower())]
            for text in texts
        ]

    def _content_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[match.span() for match in TOKEN_PATTERN.finditer(text)] for text in texts]

    def _frame(self, content: list[int], is_query: bool) -> list[int]:
        return content

    def _frame_overhead(self, is_query: bool) -> int:
        return 0

    def _embed(
        self, sequences: list[list[int]], is_query: bool, batch_size: int, progress: bool | None
    ) -> list[EncodedText]:
        return [
            EncodedText(torch.stack([self._vector(i) for i in ids]), list(ids)) for ids in sequences
        ]

    def _token_strings(self, ids: list[int]) -> list[str]:
        return [self._tokens[i] for i in ids]

    def _token_id(self, token: str) -> int:
        token_id = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        self._tokens[token_id] = token
        return token_id

    def _vector(self, token_id: int) -> torch.Tensor:
        if token_id not in self._vectors:
            values = np.random.default_rng(token_id).standard_normal(self.dim)
            self._vectors[token_id] = torch.from_numpy(values / np.linalg.norm(values)).float()
        return self._vectors[token_id]
