"""A PyLate folder over ModernBERT (lightonai/GTE-ModernColBERT-v1's layout) loads.

The folder is built here: a tiny random `ModernBertModel` saved by transformers, a
byte-level BPE tokenizer trained on a few sentences with ModernBERT's special tokens and
PyLate's "[Q] " / "[D] " added tokens, a bias-free Dense projection, and PyLate's
settings file. The reference runs transformers' ModernBertModel (eager attention, one
text at a time, no padding) on ids framed from the raw BPE tokenizer.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

import maxsim

SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
CORPUS = [
    "Who founded Berlin? Berlin was founded by the river, in the city of Berlin.",
    "The cat sat on the mat! Late interaction scores token by token: fast?",
    "Paris is the capital of France and the big city on the river.",
]
QUERIES = ["Who founded Berlin?", "the cat on the mat", "capital of France"]
DOCUMENTS = [
    "Berlin was founded by the river, in the city of Berlin.",
    "The cat sat on the mat!",
    "Paris is the capital of France and the big city on the river. " * 3,
]
QUERY_LENGTH, DOCUMENT_LENGTH, DIM = 12, 40, 16
SKIPLIST = ["!", "?", ",", "."]


def _bpe() -> Tokenizer:
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=200,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    cls, sep = bpe.token_to_id("[CLS]"), bpe.token_to_id("[SEP]")
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return bpe


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gte-moderncolbert")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(),
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
    )
    tokenizer.add_tokens(["[Q] ", "[D] "])  # what PyLate does before saving
    tokenizer.save_pretrained(folder)
    torch.manual_seed(5)
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=2,
        global_attn_every_n_layers=3,
        local_attention=16,  # the sliding window matters for the longest document
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        initializer_range=0.2,
    )
    ModernBertModel(config).save_pretrained(folder)
    weight = torch.randn(DIM, 32, generator=torch.Generator().manual_seed(6)) / 32**0.5
    (folder / "1_Dense").mkdir()
    save_file({"linear.weight": weight}, folder / "1_Dense" / "model.safetensors")
    dense = {"in_features": 32, "out_features": DIM, "bias": False}
    dense["activation_function"] = "torch.nn.modules.linear.Identity"
    (folder / "1_Dense" / "config.json").write_text(json.dumps(dense), encoding="utf-8")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    settings = {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": QUERY_LENGTH,
        "document_length": DOCUMENT_LENGTH,
        "attend_to_expansion_tokens": False,
        "skiplist_words": SKIPLIST,
        "similarity_fn_name": "MaxSim",
    }
    settings_file = folder / "config_sentence_transformers.json"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model(folder: Path) -> maxsim.ColBERT:
    return maxsim.ColBERT.from_pretrained(str(folder), device="cpu")


def _added_tokens(folder: Path) -> dict[str, int]:
    saved = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    return {token["content"]: token["id"] for token in saved["added_tokens"]}


def _expected_ids(folder: Path, text: str, prefix: str, limit: int, expand: bool) -> list[int]:
    """[CLS] prefix BPE pieces [SEP], truncated to `limit`, padded with [MASK] if `expand`."""
    bpe = _bpe()
    added = _added_tokens(folder)
    content = bpe.encode(text, add_special_tokens=False).ids[: limit - 3]
    ids = [bpe.token_to_id("[CLS]"), added[prefix], *content, bpe.token_to_id("[SEP]")]
    return ids + [bpe.token_to_id("[MASK]")] * (limit - len(ids)) if expand else ids


@functools.cache
def _encoder(folder: Path) -> ModernBertModel:
    return ModernBertModel.from_pretrained(folder, attn_implementation="eager").eval()


def _reference(folder: Path, ids: list[int], attention: list[int]) -> np.ndarray:
    encoder = _encoder(folder)
    projection = load_file(folder / "1_Dense" / "model.safetensors")["linear.weight"]
    with torch.no_grad():
        hidden = encoder(
            input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attention])
        ).last_hidden_state[0]
    return F.normalize(hidden @ projection.T, dim=-1).numpy()


def test_layout_and_rules(model: maxsim.ColBERT, folder: Path) -> None:
    added = _added_tokens(folder)
    assert {"[Q] ", "[D] "} <= set(added)
    assert model.layout == "pylate"
    assert type(model._backbone.model).__name__ == "ModernBertModel"
    assert model.rules.query_prefix_ids == (added["[Q] "],)
    assert model.rules.document_prefix_ids == (added["[D] "],)
    assert (model.query_length, model.document_length, model.dim) == (
        QUERY_LENGTH,
        DOCUMENT_LENGTH,
        DIM,
    )


def test_vectors_match_transformers_modernbert(model: maxsim.ColBERT, folder: Path) -> None:
    mask = _bpe().token_to_id("[MASK]")
    queries = model.encode_queries(QUERIES)
    for text, actual in zip(QUERIES, queries, strict=True):
        ids = _expected_ids(folder, text, "[Q] ", QUERY_LENGTH, expand=True)
        attention = [int(token != mask) for token in ids]
        np.testing.assert_allclose(actual, _reference(folder, ids, attention), atol=1e-5)
    skip = {_bpe().token_to_id(word) for word in SKIPLIST}
    documents = model.encode_documents(DOCUMENTS)
    assert len(model.tokenize(DOCUMENTS[2:], is_query=False)[0]) == DOCUMENT_LENGTH
    for text, actual in zip(DOCUMENTS, documents, strict=True):
        ids = _expected_ids(folder, text, "[D] ", DOCUMENT_LENGTH, expand=False)
        keep = [token not in skip for token in ids]
        expected = _reference(folder, ids, [1] * len(ids))[keep]
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, atol=1e-5)
