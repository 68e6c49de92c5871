"""Recognise a checkpoint folder's layout and load its backbone, projection and rules.

Four layouts are supported:

1. jina-colbert-v2 (and its -96/-64 variants): Stanford layout over XLM-RoBERTa with
   rotary positions, run by our native backbone (`maxsim.models.jina_xlmr`).
2. Stanford ColBERT (`HF_ColBERT`, e.g. colbert-ir/colbertv2.0): a transformers encoder
   under `bert.*` (or another base prefix) plus `linear.weight`, rules in `artifact.metadata`.
3. PyLate / sentence-transformers ColBERT (`modules.json` with Dense projection modules,
   rules in `config_sentence_transformers.json`).
4. A plain Hugging Face encoder with no projection (output dim = hidden size).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from safetensors.torch import load_file
from torch import nn

from maxsim.hub import LOCAL_FOLDER_FIX, TOKENIZER_FILES, download, module_paths
from maxsim.models.jina_xlmr import JinaXLMRConfig, JinaXLMRModel, is_jina_xlmr_config

if TYPE_CHECKING:
    from transformers import PreTrainedModel

SUPPORTED_LAYOUTS = (
    "jina-colbert-v2 (config.json with HF_ColBERT + rotary XLM-RoBERTa, model.safetensors)",
    "Stanford ColBERT (config.json with HF_ColBERT, artifact.metadata, bert.* + linear.weight)",
    "PyLate ColBERT (modules.json with Dense modules, config_sentence_transformers.json)",
    "plain Hugging Face encoder (config.json + model.safetensors, no projection)",
)
# artifact.metadata values when the file (or a key) is missing: the Stanford defaults,
# and jina-colbert-v2's own for the rotary XLM-RoBERTa family.
STANFORD_DEFAULTS: dict[str, dict[str, Any]] = {
    "stanford": {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 32,
        "doc_maxlen": 220,
        "attend_to_mask_tokens": False,
        "mask_punctuation": True,
    },
    "jina-colbert-v2": {
        "query_token_id": "[QueryMarker]",
        "doc_token_id": "[DocumentMarker]",
        "query_maxlen": 32,
        "doc_maxlen": 8192,
        "attend_to_mask_tokens": True,
        "mask_punctuation": True,
    },
}


@dataclass(frozen=True)
class EncodingRules:
    """How texts become token ids, and which output rows are kept."""

    query_prefix_ids: tuple[int, ...]
    document_prefix_ids: tuple[int, ...]
    query_length: int
    document_length: int
    expand_queries: bool
    attend_to_expansion: bool
    skiplist_ids: frozenset[int]
    expansion_token_id: int
    pad_token_id: int


@dataclass(frozen=True)
class LoadOptions:
    """What the caller of `ColBERT.from_pretrained` chose; None means the checkpoint's value."""

    query_length: int | None = None
    document_length: int | None = None
    dtype: torch.dtype = torch.float32
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False


@dataclass
class Checkpoint:
    """Everything `maxsim.ColBERT` needs from a folder, before device/dtype placement."""

    name: str
    layout: str
    backbone: JinaXLMRModel | HFBackbone
    projection: nn.Sequential
    tokenizer: Any
    rules: EncodingRules

    def check_lengths(self) -> None:
        """Raise if the token limits exceed what the backbone's positions allow."""
        limit = self.backbone.max_tokens if isinstance(self.backbone, HFBackbone) else None
        for argument, value in (
            ("query_length", self.rules.query_length),
            ("document_length", self.rules.document_length),
        ):
            if limit is not None and value > limit:
                raise ValueError(
                    f"{argument}={value} exceeds the {limit} positions of {self.name}; "
                    f"pass {argument}={limit} or less"
                )

    @property
    def output_size(self) -> int:
        """Vectors' size before any Matryoshka cut: the projection's, else the hidden size."""
        if len(self.projection):
            return cast(nn.Linear, self.projection[-1]).out_features
        return self.backbone.hidden_size


class HFBackbone(nn.Module):
    """A transformers encoder seen through the same call as the native backbone."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.hidden_size = int(model.config.hidden_size)

    @property
    def max_tokens(self) -> int | None:
        """The longest input its absolute position embeddings allow (None: no limit)."""
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None)
        if (
            positions is None
            or getattr(config, "position_embedding_type", "absolute") != "absolute"
        ):
            return None
        offset = config.pad_token_id + 1 if "roberta" in config.model_type else 0
        return int(positions) - offset

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def resolve_folder(name_or_path: str) -> Path:
    """A local folder as is; otherwise a Hugging Face repo id downloaded to the cache."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        raise FileNotFoundError(
            f"model folder {name_or_path!r} does not exist; {LOCAL_FOLDER_FIX} or a Hugging "
            "Face repo id such as 'jinaai/jina-colbert-v2'"
        )
    return download(name_or_path)


def load_checkpoint(name_or_path: str, options: LoadOptions) -> Checkpoint:
    """Recognise the layout of `name_or_path` and load it on the CPU in `options.dtype`."""
    folder = resolve_folder(name_or_path)
    config = _read_json(folder / "config.json") if (folder / "config.json").exists() else None
    modules_file = folder / "modules.json"
    if config is not None:
        _refuse_remote_code(folder, config, options)
    if config is not None and "HF_ColBERT" in (config.get("architectures") or []):
        loader = _load_stanford
    elif modules_file.exists() and _pylate_dense_folders(folder):
        loader = _load_pylate
    elif config is not None:
        loader = _load_plain
    else:
        raise ValueError(
            f"{folder} is not a checkpoint layout maxsim recognises. Supported layouts: "
            + "; ".join(SUPPORTED_LAYOUTS)
            + "."
        )
    checkpoint = loader(folder, name_or_path, config or {}, options)
    checkpoint.check_lengths()
    return checkpoint


def _load_stanford(
    folder: Path, name: str, config: dict[str, Any], options: LoadOptions
) -> Checkpoint:
    metadata_file = folder / "artifact.metadata"
    stored = _read_json(metadata_file) if metadata_file.exists() else {}
    layout = "jina-colbert-v2" if is_jina_xlmr_config(config) else "stanford"
    metadata = {**STANFORD_DEFAULTS[layout], **stored.get("config", stored)}
    tokenizer = _load_tokenizer(folder, options)
    state = _load_weights(folder)
    if "linear.weight" not in state:
        raise ValueError(f"{folder} is an HF_ColBERT checkpoint without 'linear.weight'")
    projection = nn.Sequential(_linear(state.pop("linear.weight"), None))
    backbone: JinaXLMRModel | HFBackbone
    if layout == "jina-colbert-v2":
        if not metadata["attend_to_mask_tokens"]:
            raise ValueError(
                f"{metadata_file}: attend_to_mask_tokens false is not supported for rotary "
                "XLM-RoBERTa checkpoints"
            )
        backbone = JinaXLMRModel.from_state_dict(
            JinaXLMRConfig.from_dict(config),
            state,
            dtype=options.dtype,
            attn_implementation=options.attn_implementation,
        )
    else:
        backbone = _transformers_backbone(folder, state, options)
    rules = EncodingRules(
        query_prefix_ids=(_token_id(tokenizer, metadata["query_token_id"], "query marker"),),
        document_prefix_ids=(_token_id(tokenizer, metadata["doc_token_id"], "document marker"),),
        query_length=options.query_length or int(metadata["query_maxlen"]),
        document_length=options.document_length or int(metadata["doc_maxlen"]),
        expand_queries=True,
        attend_to_expansion=bool(metadata["attend_to_mask_tokens"]),
        skiplist_ids=_skiplist(tokenizer, list(string.punctuation))
        if metadata["mask_punctuation"]
        else frozenset(),
        expansion_token_id=_required_id(tokenizer, "mask_token_id"),
        pad_token_id=_required_id(tokenizer, "pad_token_id"),
    )
    return Checkpoint(name, layout, backbone, projection, tokenizer, rules)


def _load_pylate(
    folder: Path, name: str, config: dict[str, Any], options: LoadOptions
) -> Checkpoint:
    settings_file = folder / "config_sentence_transformers.json"
    settings = _read_json(settings_file) if settings_file.exists() else {}
    transformer_folder = folder / _transformer_module_path(folder)
    if transformer_folder != folder and (transformer_folder / "config.json").exists():
        _refuse_remote_code(
            transformer_folder, _read_json(transformer_folder / "config.json"), options
        )
    tokenizer = _load_tokenizer(transformer_folder, options)
    backbone = _pretrained_backbone(transformer_folder, options)
    projection = nn.Sequential(*(_load_dense(path) for path in _pylate_dense_folders(folder)))
    expand_queries = bool(settings.get("do_query_expansion", True))
    rules = EncodingRules(
        query_prefix_ids=_prefix_ids(tokenizer, settings.get("query_prefix", "[Q] ")),
        document_prefix_ids=_prefix_ids(tokenizer, settings.get("document_prefix", "[D] ")),
        query_length=options.query_length or int(settings.get("query_length", 32)),
        document_length=options.document_length or int(settings.get("document_length", 180)),
        expand_queries=expand_queries,
        attend_to_expansion=expand_queries
        and bool(settings.get("attend_to_expansion_tokens", False)),
        skiplist_ids=_skiplist(tokenizer, settings.get("skiplist_words", list(string.punctuation))),
        expansion_token_id=_expansion_id(tokenizer),
        pad_token_id=_required_id(tokenizer, "pad_token_id"),
    )
    return Checkpoint(name, "pylate", backbone, projection, tokenizer, rules)


def _load_plain(
    folder: Path, name: str, config: dict[str, Any], options: LoadOptions
) -> Checkpoint:
    tokenizer = _load_tokenizer(folder, options)
    backbone = _pretrained_backbone(folder, options)
    st_config_file = folder / "sentence_bert_config.json"
    st_config = _read_json(st_config_file) if st_config_file.exists() else {}
    default_document_length = int(
        st_config.get("max_seq_length", min(int(config.get("max_position_embeddings", 512)), 512))
    )
    pad_token_id = _required_id(tokenizer, "pad_token_id")
    rules = EncodingRules(
        query_prefix_ids=(),
        document_prefix_ids=(),
        query_length=options.query_length or 32,
        document_length=options.document_length or default_document_length,
        expand_queries=False,
        attend_to_expansion=False,
        skiplist_ids=_skiplist(tokenizer, list(string.punctuation)),
        expansion_token_id=pad_token_id,
        pad_token_id=pad_token_id,
    )
    return Checkpoint(name, "plain", backbone, nn.Sequential(), tokenizer, rules)


def _refuse_remote_code(folder: Path, config: dict[str, Any], options: LoadOptions) -> None:
    """A config whose model is remote code (auto_map) needs trust_remote_code=True.

    jina-colbert-v2's own auto_map is not needed: maxsim runs that backbone natively.
    """
    auto_map = config.get("auto_map")
    if not auto_map or options.trust_remote_code or is_jina_xlmr_config(config):
        return
    model_class = auto_map.get("AutoModel", auto_map) if isinstance(auto_map, dict) else auto_map
    raise ValueError(
        f"{folder}/config.json names a model that runs as remote code ({model_class}), which "
        "maxsim does not run by default. Supported layouts: "
        + "; ".join(SUPPORTED_LAYOUTS)
        + ". For jina-colbert-v1-en (JinaBERT) use jinaai/jina-colbert-v2, which maxsim runs "
        "natively; to run another architecture's remote code through transformers, pass "
        "trust_remote_code=True."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data


def _load_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / "model.safetensors"
    if path.exists():
        try:
            return load_file(path)
        except Exception as error:
            raise ValueError(f"cannot read {path}: {error}") from error
    legacy = folder / "pytorch_model.bin"
    if legacy.exists():
        try:
            return torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"cannot read {legacy}: {error}") from error
    raise FileNotFoundError(f"{folder} has no model.safetensors (or pytorch_model.bin)")


def _load_tokenizer(folder: Path, options: LoadOptions) -> Any:
    from transformers import AutoTokenizer

    if not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{folder} has no tokenizer: expected one of {', '.join(TOKENIZER_FILES)}"
        )
    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=options.trust_remote_code)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load the tokenizer in {folder}: {error}") from error


def _transformers_backbone(
    folder: Path, state: dict[str, torch.Tensor], options: LoadOptions
) -> HFBackbone:
    """A transformers model built from `config.json`, fed Stanford-style `bert.*` weights."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(folder, trust_remote_code=options.trust_remote_code)
    config.architectures = None
    model = AutoModel.from_config(
        config,
        attn_implementation=_hf_attention(options.attn_implementation),
        trust_remote_code=options.trust_remote_code,
    )
    prefix = model.base_model_prefix + "."
    own = {
        key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)
    }
    if not own:
        raise ValueError(f"{folder}/model.safetensors has no '{prefix}*' encoder weights")
    missing = [key for key in model.load_state_dict(own, strict=False).missing_keys]
    missing = [key for key in missing if not key.startswith("pooler.")]
    if missing:
        raise ValueError(f"{folder}/model.safetensors lacks encoder weights {missing[:5]}")
    return HFBackbone(model.to(options.dtype).eval())


def _pretrained_backbone(folder: Path, options: LoadOptions) -> HFBackbone:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(
            folder,
            dtype=options.dtype,
            attn_implementation=_hf_attention(options.attn_implementation),
            trust_remote_code=options.trust_remote_code,
        )
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load the encoder in {folder}: {error}") from error
    return HFBackbone(model.eval())


def _hf_attention(attn_implementation: str) -> str:
    return "sdpa" if attn_implementation == "flash_attention_2" else attn_implementation


def _transformer_module_path(folder: Path) -> str:
    return (module_paths(folder, "Transformer") or [""])[0]


def _pylate_dense_folders(folder: Path) -> list[Path]:
    """The Dense projection folders of a PyLate model, in module order."""
    return [folder / path for path in module_paths(folder, "Dense")]


def _load_dense(folder: Path) -> nn.Linear:
    settings = _read_json(folder / "config.json")
    activation = settings.get("activation_function", "torch.nn.modules.linear.Identity")
    if settings.get("use_residual"):
        raise ValueError(f"{folder}/config.json: residual Dense projections are not supported")
    if not activation.endswith("Identity"):
        raise ValueError(
            f"{folder}/config.json: activation {activation!r} is not supported; "
            "maxsim loads Dense projections with the Identity activation"
        )
    state = _load_weights(folder)
    if "linear.weight" not in state:
        raise ValueError(f"{folder} has no 'linear.weight' tensor")
    return _linear(state["linear.weight"], state.get("linear.bias"))


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _token_id(tokenizer: Any, token: str | int, what: str) -> int:
    if isinstance(token, int):
        return token
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {what} token {token!r}")
    return int(token_id)


def _prefix_ids(tokenizer: Any, prefix: object) -> tuple[int, ...]:
    """The ids PyLate puts after [CLS] for `prefix`; an empty prefix means none.

    PyLate adds the prefix to the tokenizer as one token, trailing space included
    ("[Q] "); older folders name a vocabulary token ("[unused0]"). Failing both, the
    prefix is text and its own tokenization is inserted.
    """
    if prefix is None or (isinstance(prefix, str) and not prefix.strip()):
        return ()
    if not isinstance(prefix, str):
        raise ValueError(f"prefixes must be strings, got {prefix!r}")
    unknown = tokenizer.unk_token_id
    for candidate in dict.fromkeys((prefix, prefix.strip(), prefix.strip() + " ")):
        token_id = tokenizer.convert_tokens_to_ids(candidate)
        if token_id is not None and token_id != unknown:
            return (int(token_id),)
    ids = [int(i) for i in tokenizer(prefix, add_special_tokens=False)["input_ids"]]
    if not ids or unknown in ids:
        raise ValueError(
            f"the tokenizer has no prefix token {prefix!r} (with or without its trailing "
            "space) and cannot spell it with known tokens"
        )
    return tuple(ids)


def _expansion_id(tokenizer: Any) -> int:
    """PyLate pads queries with the mask token, else the end token, else the pad token."""
    for attribute in ("mask_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, attribute, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer defines no mask, end or pad token to expand queries with")


def _required_id(tokenizer: Any, attribute: str) -> int:
    value = getattr(tokenizer, attribute, None)
    if value is None:
        raise ValueError(f"the tokenizer defines no {attribute.removesuffix('_id')} token")
    return int(value)


def _skiplist(tokenizer: Any, words: list[str]) -> frozenset[int]:
    """Ids of the skiplist words, each looked up as one whole token (unknown ones dropped)."""
    ids = (tokenizer.convert_tokens_to_ids(word) for word in words)
    return frozenset(int(i) for i in ids if i is not None and i != tokenizer.unk_token_id)
