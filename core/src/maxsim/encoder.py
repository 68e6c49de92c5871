"""`maxsim.ColBERT`: load a late-interaction checkpoint and encode, rerank and explain."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from maxsim.batching import token_budget_batches
from maxsim.checkpoints import Checkpoint, LoadOptions, load_checkpoint
from maxsim.models.jina_xlmr import flash_attention_available
from maxsim.scoring import scores
from maxsim.validation import check_positive_int, check_text, check_texts

logger = logging.getLogger("maxsim")

DEFAULT_MODEL = "jinaai/jina-colbert-v2"
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
PROGRESS_DELAY_SECONDS = 2.0


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its position in the input, its MaxSim score, its text."""

    index: int
    score: float
    document: str


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
class _Encoded:
    embeddings: torch.Tensor
    token_ids: list[int]


class ColBERT:
    """A late-interaction encoder: one vector per token for queries and documents.

    The default model, jinaai/jina-colbert-v2, is licensed CC BY-NC 4.0 (non-commercial).

    Example:
        >>> import maxsim
        >>> model = maxsim.ColBERT.from_pretrained("jinaai/jina-colbert-v2")  # doctest: +SKIP
        >>> [query] = model.encode_queries(["Who founded Berlin?"])
        >>> query.shape
        (32, 128)
        >>> documents = model.encode_documents(["Berlin was founded in the 13th century."])
        >>> maxsim.scores([query], documents).shape
        (1, 1)
        >>> best = model.rerank("Who founded Berlin?", ["Berlin history", "Apple pie"], top_n=1)
        >>> len(best)
        1
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        dim: int,
        device: torch.device,
        dtype: torch.dtype,
        max_batch_tokens: int = 16384,
    ) -> None:
        self.name = checkpoint.name
        self.layout = checkpoint.layout
        self.rules = checkpoint.rules
        self.tokenizer = checkpoint.tokenizer
        self.dim = dim
        self.device = device
        self.dtype = dtype
        self.max_batch_tokens = check_positive_int(max_batch_tokens, "max_batch_tokens")
        self._backbone = checkpoint.backbone.to(device=device, dtype=dtype)
        self._projection = checkpoint.projection.to(device=device, dtype=dtype)
        self._skiplist = torch.tensor(sorted(checkpoint.rules.skiplist_ids), dtype=torch.long)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str = DEFAULT_MODEL,
        *,
        dim: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        max_batch_tokens: int = 16384,
    ) -> ColBERT:
        """Load a checkpoint from a local folder or a Hugging Face repo id.

        Args:
            name_or_path: folder or repo id; jina-colbert-v2 (-96/-64), Stanford ColBERT,
                PyLate ColBERT and plain Hugging Face encoders are recognised.
            dim: Matryoshka cut: keep the first `dim` output dims, renormalised.
            device: defaults to CUDA when available, else CPU.
            dtype: defaults to bfloat16 on CUDA and float32 on CPU.
            query_length / document_length: token limits; default the checkpoint's.
            attn_implementation: "sdpa", "eager" or "flash_attention_2"; defaults to
                flash-attn's varlen kernel on CUDA when it imports, else SDPA.
            max_batch_tokens: padded tokens per forward pass (memory bound per batch).

        Raises:
            FileNotFoundError: the folder (or a file in it) does not exist.
            ValueError: an unrecognised layout or an out-of-range argument.
        """
        for value, argument in (
            (query_length, "query_length"),
            (document_length, "document_length"),
        ):
            if value is not None:
                check_positive_int(value, argument, minimum=4)
        resolved_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        resolved_dtype = dtype or (
            torch.bfloat16 if resolved_device.type == "cuda" else torch.float32
        )
        options = LoadOptions(
            query_length=query_length,
            document_length=document_length,
            dtype=resolved_dtype,
            attn_implementation=_attention(attn_implementation, resolved_device),
            trust_remote_code=trust_remote_code,
        )
        checkpoint = load_checkpoint(name_or_path, options)
        return cls(
            checkpoint,
            dim=_output_dim(checkpoint, dim),
            device=resolved_device,
            dtype=resolved_dtype,
            max_batch_tokens=max_batch_tokens,
        )

    @property
    def query_length(self) -> int:
        return self.rules.query_length

    @property
    def document_length(self) -> int:
        return self.rules.document_length

    def encode_queries(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [query_length, dim] array per query (expansion rows included).

        Raises:
            TypeError: `texts` is not a list of strings (the message names the position).
            ValueError: a text is empty or whitespace only.
        """
        texts = check_texts(texts, "texts")
        encoded = self._encode(texts, True, batch_size, show_progress_bar)
        return _output([item.embeddings for item in encoded], as_tensor)

    def encode_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        """One float32 [kept tokens, dim] array per document (punctuation rows dropped).

        Documents longer than `document_length` tokens are truncated, with one warning
        per call on the "maxsim" logger.

        Raises:
            TypeError: `texts` is not a list of strings (the message names the position).
            ValueError: a text is empty or whitespace only.
        """
        texts = check_texts(texts, "texts")
        encoded = self._encode(texts, False, batch_size, show_progress_bar)
        return _output([item.embeddings for item in encoded], as_tensor)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        *,
        batch_size: int = 32,
    ) -> list[RerankResult]:
        """Documents ordered by MaxSim against `query`, best first (ties keep input order).

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
        document_embeddings = self.encode_documents(documents, batch_size=batch_size)
        row = scores([query_embeddings], document_embeddings)[0]
        order = np.argsort(-row, kind="stable")[:top_n]
        return [RerankResult(int(i), float(row[i]), documents[i]) for i in order]

    def explain(self, query: str, document: str) -> Explanation:
        """Which document token each query token matched, with the similarities."""
        check_text(query, "query")
        check_text(document, "document")
        [encoded_query] = self._encode([query], True, 1, False)
        [encoded_document] = self._encode([document], False, 1, False)
        similarities = encoded_query.embeddings @ encoded_document.embeddings.T
        return Explanation(
            query_tokens=self.tokenizer.convert_ids_to_tokens(encoded_query.token_ids),
            document_tokens=self.tokenizer.convert_ids_to_tokens(encoded_document.token_ids),
            similarities=similarities.numpy(),
        )

    def tokenize(self, texts: Sequence[str], *, is_query: bool) -> list[list[int]]:
        """Token ids exactly as the model sees them (markers inserted, queries expanded)."""
        ids, _ = self._tokenize(check_texts(texts, "texts"), is_query)
        return ids

    def _tokenize(self, texts: list[str], is_query: bool) -> tuple[list[list[int]], int]:
        """Token ids per text, and how many texts were truncated."""
        rules = self.rules
        prefix = rules.query_prefix_id if is_query else rules.document_prefix_id
        limit = rules.query_length if is_query else rules.document_length
        budget = limit - (prefix is not None)
        stripped = [text.strip() for text in texts]
        ids = self._tokenizer_ids(stripped, budget + 1)
        truncated = [i for i, row in enumerate(ids) if len(row) > budget]
        if truncated:
            shorter = self._tokenizer_ids([stripped[i] for i in truncated], budget)
            for i, row in zip(truncated, shorter, strict=True):
                ids[i] = row
        if prefix is not None:
            ids = [[*row[:1], prefix, *row[1:]] for row in ids]
        if is_query and rules.expand_queries:
            ids = [row + [rules.expansion_token_id] * (limit - len(row)) for row in ids]
        return ids, len(truncated)

    def _tokenizer_ids(self, texts: list[str], max_length: int) -> list[list[int]]:
        encoded = self.tokenizer(texts, truncation=True, max_length=max_length)
        return [list(row) for row in encoded["input_ids"]]

    def _encode(
        self, texts: list[str], is_query: bool, batch_size: int, show_progress_bar: bool | None
    ) -> list[_Encoded]:
        check_positive_int(batch_size, "batch_size")
        if not texts:
            return []
        ids, truncated = self._tokenize(texts, is_query)
        if truncated and not is_query:
            logger.warning(
                "%d of %d documents were longer than document_length=%d tokens and were "
                "truncated; pass document_length=... to ColBERT.from_pretrained, or store "
                "long documents in chunks (LateInteractionStore(chunk_size=...))",
                truncated,
                len(texts),
                self.rules.document_length,
            )
        results: list[_Encoded | None] = [None] * len(texts)
        batches = token_budget_batches([len(row) for row in ids], batch_size, self.max_batch_tokens)
        with tqdm(
            total=len(texts),
            desc="Encoding queries" if is_query else "Encoding documents",
            unit="text",
            disable=show_progress_bar is False,
            delay=0.0 if show_progress_bar else PROGRESS_DELAY_SECONDS,
        ) as progress:
            for batch in batches:
                for index, item in zip(
                    batch, self._forward([ids[i] for i in batch], is_query), strict=True
                ):
                    results[index] = item
                progress.update(len(batch))
        return [item for item in results if item is not None]

    @torch.inference_mode()
    def _forward(self, ids: list[list[int]], is_query: bool) -> list[_Encoded]:
        rules = self.rules
        longest = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), longest), rules.pad_token_id, dtype=torch.long)
        real = torch.zeros((len(ids), longest), dtype=torch.bool)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = torch.tensor(tokens)
            real[row, : len(tokens)] = True
        attention_mask = real
        if is_query and rules.expand_queries and not rules.attend_to_expansion:
            attention_mask = self._unexpanded(input_ids)
        hidden = self._backbone(input_ids.to(self.device), attention_mask.to(self.device))
        vectors = self._projection(hidden)[..., : self.dim]
        vectors = F.normalize(vectors.float(), dim=-1).cpu()
        keep = real if is_query else real & ~torch.isin(input_ids, self._skiplist)
        return [
            _Encoded(vectors[row][keep[row]], input_ids[row][keep[row]].tolist())
            for row in range(len(ids))
        ]

    def _unexpanded(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Mask of the tokens up to each query's end token, before the expansion tokens.

        Found by position, not by id, so a literal mask token inside a query is attended.
        """
        positions = torch.arange(1, input_ids.shape[1] + 1)
        not_expansion = input_ids != self.rules.expansion_token_id
        lengths = (positions * not_expansion).amax(dim=1, keepdim=True)
        return positions <= lengths


def _attention(requested: str | None, device: torch.device) -> str:
    if requested is None:
        use_flash = device.type == "cuda" and flash_attention_available()
        return "flash_attention_2" if use_flash else "sdpa"
    if requested not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {requested!r}"
        )
    if requested == "flash_attention_2" and not flash_attention_available():
        raise ValueError(
            "attn_implementation='flash_attention_2' needs flash-attn: pip install 'maxsim[flash]'"
        )
    return requested


def _output_dim(checkpoint: Checkpoint, dim: int | None) -> int:
    """The output size after a Matryoshka cut to `dim`, checked against what the model has."""
    available = checkpoint.output_size
    if dim is None:
        return available
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= available:
        raise ValueError(
            f"dim must be an integer in 1..{available} for this checkpoint, got {dim!r}"
        )
    return dim


def _output(embeddings: list[torch.Tensor], as_tensor: bool) -> list[Any]:
    return embeddings if as_tensor else [tensor.numpy() for tensor in embeddings]
