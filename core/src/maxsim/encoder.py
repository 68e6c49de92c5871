"""`maxsim.ColBERT`: load a late-interaction checkpoint and encode, rerank and explain."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from maxsim.batching import token_budget_batches
from maxsim.cache import DEFAULT_CACHE_BYTES, DocumentVectorCache
from maxsim.checkpoints import Checkpoint, LoadOptions, load_checkpoint, resolve_folder
from maxsim.fingerprint import checkpoint_fingerprint
from maxsim.late_interaction import EncodedText, TokenizedEncoder
from maxsim.models.jina_xlmr import flash_attention_available
from maxsim.progress import progress_bar
from maxsim.quantization import check_quantization, quantize_linear_layers
from maxsim.validation import check_positive_int

DEFAULT_MODEL = "jinaai/jina-colbert-v2"
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


class ColBERT(TokenizedEncoder):
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
        quantize: str | None = None,
        cache_size: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.name = checkpoint.name
        self.layout = checkpoint.layout
        self.rules = checkpoint.rules
        self.tokenizer = checkpoint.tokenizer
        self.dim = dim
        self.device = device
        self.dtype = dtype
        self.max_batch_tokens = check_positive_int(max_batch_tokens, "max_batch_tokens")
        self.quantize = check_quantization(quantize, device, dtype)
        self.document_cache = DocumentVectorCache(cache_size)
        self._backbone = checkpoint.backbone.to(device=device, dtype=dtype)
        if self.quantize is not None:
            quantize_linear_layers(self._backbone)
        self._projection = checkpoint.projection.to(device=device, dtype=dtype)
        self._skiplist = torch.tensor(sorted(checkpoint.rules.skiplist_ids), dtype=torch.long)
        self._before, self._after = _special_tokens_around_content(checkpoint.tokenizer)
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str = DEFAULT_MODEL,
        *,
        dim: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        max_batch_tokens: int = 16384,
        quantize: str | None = None,
        cache_size: int = DEFAULT_CACHE_BYTES,
    ) -> ColBERT:
        """Load a checkpoint from a local folder or a Hugging Face repo id.

        Args:
            name_or_path: folder or repo id; jina-colbert-v2 (-96/-64), Stanford ColBERT,
                PyLate ColBERT and plain Hugging Face encoders are recognised.
            dim: Matryoshka cut: keep the first `dim` output dims, renormalised.
            device: defaults to CUDA when available (and no `quantize`), else CPU.
            dtype: defaults to bfloat16 on CUDA and float32 on CPU.
            query_length / document_length: token limits; default the checkpoint's.
            attn_implementation: "sdpa", "eager" or "flash_attention_2"; defaults to
                flash-attn's varlen kernel on CUDA in 16-bit when it imports, else SDPA.
                The native jina backbone runs SDPA for "eager" (the same math).
            max_batch_tokens: padded tokens per forward pass (memory bound per batch).
            quantize: "int8" runs the backbone's linear layers in int8 on the CPU
                (`maxsim.quantization`; needs `maxsim[int8]`); None keeps float32.
            cache_size: bytes of document vectors `rerank` keeps (`maxsim.cache`,
                256 MiB by default); 0 turns the cache off.

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
        gpu = torch.cuda.is_available() and quantize is None
        resolved_device = torch.device(device or ("cuda" if gpu else "cpu"))
        resolved_dtype = _model_dtype(dtype, resolved_device)
        check_quantization(quantize, resolved_device, resolved_dtype)
        check_positive_int(cache_size, "cache_size", minimum=0)
        check_positive_int(max_batch_tokens, "max_batch_tokens")
        if dim is not None:
            check_positive_int(dim, "dim")
        options = LoadOptions(
            query_length=query_length,
            document_length=document_length,
            dtype=resolved_dtype,
            attn_implementation=_attention(attn_implementation, resolved_device, resolved_dtype),
            trust_remote_code=trust_remote_code,
        )
        checkpoint = load_checkpoint(name_or_path, options)
        return cls(
            checkpoint,
            dim=_output_dim(checkpoint, dim),
            device=resolved_device,
            dtype=resolved_dtype,
            max_batch_tokens=max_batch_tokens,
            quantize=quantize,
            cache_size=cache_size,
        )

    @property
    def fingerprint(self) -> str:
        """Digest of the checkpoint folder's config and weights (computed on first use)."""
        if self._fingerprint is None:
            self._fingerprint = checkpoint_fingerprint(resolve_folder(self.name))
        return self._fingerprint

    @property
    def query_length(self) -> int:
        return self.rules.query_length

    @property
    def document_length(self) -> int:
        return self.rules.document_length

    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        encoded = self.tokenizer(texts, add_special_tokens=False, verbose=False)
        return [list(row) for row in encoded["input_ids"]]

    def _content_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]] | None:
        if not getattr(self.tokenizer, "is_fast", False):
            return None
        encoded = self.tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [[(int(start), int(end)) for start, end in row] for row in encoded["offset_mapping"]]

    def _frame(self, content: list[int], is_query: bool) -> list[int]:
        rules = self.rules
        prefix = rules.query_prefix_ids if is_query else rules.document_prefix_ids
        ids = [*self._before, *prefix, *content, *self._after]
        if is_query and rules.expand_queries:
            ids += [rules.expansion_token_id] * (rules.query_length - len(ids))
        return ids

    def _frame_overhead(self, is_query: bool) -> int:
        prefix = self.rules.query_prefix_ids if is_query else self.rules.document_prefix_ids
        return len(self._before) + len(self._after) + len(prefix)

    def _token_strings(self, ids: list[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(ids))

    def _embed(
        self, sequences: list[list[int]], is_query: bool, batch_size: int, progress: bool | None
    ) -> list[EncodedText]:
        results: list[EncodedText | None] = [None] * len(sequences)
        lengths = [len(row) for row in sequences]
        description = "Encoding queries" if is_query else "Encoding documents"
        with progress_bar(len(sequences), description, progress) as bar:
            for batch in token_budget_batches(lengths, batch_size, self.max_batch_tokens):
                encoded = self._forward([sequences[i] for i in batch], is_query)
                for index, item in zip(batch, encoded, strict=True):
                    results[index] = item
                bar.update(len(batch))
        return [item for item in results if item is not None]

    @torch.no_grad()
    def _forward(self, ids: list[list[int]], is_query: bool) -> list[EncodedText]:
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
            EncodedText(vectors[row][keep[row]], input_ids[row][keep[row]].tolist())
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


def _special_tokens_around_content(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text's own tokens ([CLS] / [SEP])."""
    content = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    framed = list(tokenizer("a")["input_ids"])
    for start in range(len(framed) - len(content) + 1):
        if framed[start : start + len(content)] == content:
            return framed[:start], framed[start + len(content) :]
    raise ValueError("the tokenizer's special tokens could not be located around a text")


MODEL_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _model_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """`dtype` as a torch float type; None is bfloat16 on CUDA and float32 elsewhere."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype in MODEL_DTYPES.values():
        return dtype  # type: ignore[return-value]
    if isinstance(dtype, str) and dtype in MODEL_DTYPES:
        return MODEL_DTYPES[dtype]
    raise ValueError(
        f"dtype must be one of {', '.join(MODEL_DTYPES)} (or torch dtypes), got {dtype!r}"
    )


def _attention(requested: str | None, device: torch.device, dtype: torch.dtype) -> str:
    """The attention to run: flash-attn's varlen kernel where it can (CUDA, 16-bit), else SDPA."""
    half = dtype in (torch.float16, torch.bfloat16)
    if requested is None:
        use_flash = device.type == "cuda" and half and flash_attention_available()
        return "flash_attention_2" if use_flash else "sdpa"
    if requested not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {requested!r}"
        )
    if requested == "flash_attention_2" and not flash_attention_available():
        raise ValueError(
            "attn_implementation='flash_attention_2' needs flash-attn: pip install 'maxsim[flash]'"
        )
    if requested == "flash_attention_2" and not (device.type == "cuda" and half):
        raise ValueError(
            "attn_implementation='flash_attention_2' runs on CUDA in float16 or bfloat16; "
            "pass device='cuda' and dtype=torch.bfloat16, or attn_implementation='sdpa'"
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
