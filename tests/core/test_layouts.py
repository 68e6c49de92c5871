"""The four checkpoint layouts `maxsim.ColBERT.from_pretrained` recognises.

Every checkpoint is built here, offline, from a tiny random BERT and a hand-written
WordPiece vocabulary. Expected token ids and embeddings are computed independently with
transformers' `BertModel` (eager attention, one text at a time, no padding) and plain
torch, never through maxsim internals.
"""

from __future__ import annotations

import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, BertTokenizer

import maxsim

SPECIAL_TOKENS = [
    "[PAD]",
    "[unused0]",
    "[unused1]",
    "[unused2]",
    "[unused3]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
]
# fmt: off
WORDS = [
    "the", "a", "who", "what", "is", "are", "cat", "dog", "sat", "ran", "on", "mat", "late",
    "interaction", "token", "by", "score", "fast", "red", "blue", "big", "small", "city",
    "river", "to", "and", "of", "in", "search", "query", "document", "model", "run", "berlin",
    "paris", "##s", "##ning", "##ed", "##er", "##ly",
]
# fmt: on
VOCAB = [*SPECIAL_TOKENS, *string.punctuation, *WORDS]
ID = {token: index for index, token in enumerate(VOCAB)}
CLS, SEP, MASK, PAD = ID["[CLS]"], ID["[SEP]"], ID["[MASK]"], ID["[PAD]"]
Q_MARKER, D_MARKER = ID["[unused0]"], ID["[unused1]"]
HIDDEN = 32
ATOL = 1e-5

QUERIES = ["Who is the cat?", "what is late interaction", "red city"]
LONG_QUERY = "the cat sat on the mat and the dog ran to the big city by the river"
# Different lengths, and punctuation ("!", ",", "?", ".") to exercise the skiplists.
DOCUMENTS = [
    "The cat runs, fast!",
    "late interaction scores token by token, in the city of paris. who ran?",
    "red",
    "a big dog ran to the river!",
]
LONG_DOCUMENT = " ".join(["the cat sat on the mat"] * 6)  # 36 word pieces


@dataclass
class Tiny:
    """A checkpoint folder and what the reference needs: the encoder and projections."""

    folder: Path
    bert: BertModel
    layers: list[tuple[torch.Tensor, torch.Tensor | None]]


# ---------------------------------------------------------------------------------------
# Building checkpoints


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _write_tokenizer(folder: Path) -> None:
    """vocab.txt written by hand, then a WordPiece tokenizer over it saved beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    # transformers 5 ignores `vocab_file=`: pass the vocabulary read from vocab.txt.
    BertTokenizer(vocab={token: i for i, token in enumerate(lines)}).save_pretrained(folder)


def _bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.2,  # larger than BERT's 0.02, so attention masks matter
    )


def _random_bert(seed: int) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(_bert_config()).eval()


def _as_reference(bert: BertModel) -> BertModel:
    bert.set_attn_implementation("eager")
    return bert.eval()


def _random_linear(
    seed: int, in_features: int, out_features: int, bias: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_features, in_features, generator=generator) / in_features**0.5
    return weight, torch.randn(out_features, generator=generator) if bias else None


STANFORD_METADATA = {
    "query_token_id": "[unused0]",
    "doc_token_id": "[unused1]",
    "query_maxlen": 12,
    "doc_maxlen": 20,
    "attend_to_mask_tokens": False,
    "mask_punctuation": True,
    "dim": 16,
    "similarity": "cosine",
}


def build_stanford(
    folder: Path,
    *,
    seed: int = 1,
    metadata: object = STANFORD_METADATA,
    dim: int = 16,
    legacy: bool = False,
) -> Tiny:
    """An HF_ColBERT folder: `bert.*` + `linear.weight`, `artifact.metadata` as given.

    `legacy` writes pytorch_model.bin (as colbert-ir/colbertv2.0 first shipped) instead
    of model.safetensors.
    """
    bert = _random_bert(seed)
    weight, _ = _random_linear(seed + 100, HIDDEN, dim, bias=False)
    config = _bert_config()
    config.architectures = ["HF_ColBERT"]
    config.save_pretrained(folder)
    state = {f"bert.{key}": value.contiguous() for key, value in bert.state_dict().items()}
    if legacy:
        torch.save({**state, "linear.weight": weight}, folder / "pytorch_model.bin")
    else:
        save_file({**state, "linear.weight": weight}, folder / "model.safetensors")
    _write_json(folder / "artifact.metadata", metadata)
    _write_tokenizer(folder)
    return Tiny(folder, _as_reference(bert), [(weight, None)])


def build_pylate(
    folder: Path, *, attend: bool, out_features: tuple[int, ...] = (24,), seed: int = 2
) -> Tiny:
    bert = _random_bert(seed)
    bert.save_pretrained(folder)
    _write_tokenizer(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
    ]
    layers = []
    in_features = HIDDEN
    for number, features in enumerate(out_features, start=1):
        weight, bias = _random_linear(seed + 100 * number, in_features, features, bias=True)
        assert bias is not None
        dense = folder / f"{number}_Dense"
        _write_json(
            dense / "config.json",
            {
                "in_features": in_features,
                "out_features": features,
                "bias": True,
                "activation_function": "torch.nn.modules.linear.Identity",
            },
        )
        save_file({"linear.weight": weight, "linear.bias": bias}, dense / "model.safetensors")
        modules.append(
            {
                "idx": number,
                "name": str(number),
                "path": dense.name,
                "type": "pylate.models.Dense.Dense",
            }
        )
        layers.append((weight, bias))
        in_features = features
    _write_json(folder / "modules.json", modules)
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "query_prefix": "[unused0]",
            "document_prefix": "[unused1]",
            "query_length": 10,
            "document_length": 16,
            "attend_to_expansion_tokens": attend,
            "skiplist_words": ["!", "?"],
        },
    )
    return Tiny(folder, _as_reference(bert), layers)


def build_plain(folder: Path, *, seed: int = 3) -> Tiny:
    bert = _random_bert(seed)
    bert.save_pretrained(folder)
    _write_tokenizer(folder)
    return Tiny(folder, _as_reference(bert), [])


def load(folder: Path, **kwargs: object) -> maxsim.ColBERT:
    return maxsim.ColBERT.from_pretrained(str(folder), device="cpu", **kwargs)


# ---------------------------------------------------------------------------------------
# Independent reference


def pieces(text: str) -> list[int]:
    """Word-piece ids of `text` without special tokens, from a tokenizer built here."""
    tokenizer = BertTokenizer(vocab=dict(ID))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def expected_ids(text: str, marker: int | None, limit: int, expand: bool = False) -> list[int]:
    """[CLS] marker pieces [SEP], truncated to `limit` in all, padded with [MASK] if `expand`."""
    room = limit - 2 - (marker is not None)
    ids = [CLS, *([marker] if marker is not None else []), *pieces(text)[:room], SEP]
    return ids + [MASK] * (limit - len(ids)) if expand else ids


def reference(tiny: Tiny, ids: list[int], attention: list[int], dim: int | None = None):
    """last_hidden_state -> projections in order -> first `dim` dims -> L2 normalised rows."""
    with torch.no_grad():
        hidden = tiny.bert(
            input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attention])
        ).last_hidden_state[0]
        for weight, bias in tiny.layers:
            hidden = hidden @ weight.T
            if bias is not None:
                hidden = hidden + bias
    return F.normalize(hidden[:, :dim], dim=-1).numpy()


def reference_query(tiny: Tiny, ids: list[int], attend_to_expansion: bool, dim=None):
    real = len(ids) - sum(1 for token in ids if token == MASK)
    attention = [1] * len(ids) if attend_to_expansion else [1] * real + [0] * (len(ids) - real)
    return reference(tiny, ids, attention, dim)


def reference_document(tiny: Tiny, ids: list[int], skiplist: set[int], dim=None):
    keep = [token not in skiplist for token in ids]
    return reference(tiny, ids, [1] * len(ids), dim)[keep]


STANFORD_SKIPLIST = {ID[c] for c in string.punctuation}
PYLATE_SKIPLIST = {ID["!"], ID["?"]}


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def stanford(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return build_stanford(tmp_path_factory.mktemp("stanford"))


@pytest.fixture(scope="module")
def stanford_model(stanford: Tiny) -> maxsim.ColBERT:
    return load(stanford.folder)


@pytest.fixture(scope="module", params=[True, False], ids=["attend", "no-attend"])
def pylate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tiny = build_pylate(tmp_path_factory.mktemp("pylate"), attend=request.param)
    return tiny, load(tiny.folder), request.param


@pytest.fixture(scope="module")
def pylate_chained(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return build_pylate(tmp_path_factory.mktemp("chained"), attend=True, out_features=(24, 8))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return build_plain(tmp_path_factory.mktemp("plain"))


def assert_rows_equal(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == np.float32
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------
# The vocabulary itself (guards the reference tokenizer)


def test_tokenizer_uses_the_hand_written_vocabulary(stanford: Tiny) -> None:
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(stanford.folder)
    expected = ["[CLS]", "the", "cat", "run", "##s", ",", "fast", "!", "[SEP]"]
    assert saved("The cat runs, fast!")["input_ids"] == [ID[token] for token in expected]
    assert pieces("The cat runs, fast!") == [ID[token] for token in expected[1:-1]]
    assert (saved.mask_token_id, saved.pad_token_id) == (MASK, PAD)


# ---------------------------------------------------------------------------------------
# 1. Stanford ColBERT


def test_stanford_rules(stanford_model: maxsim.ColBERT) -> None:
    assert stanford_model.layout == "stanford"
    assert (stanford_model.query_length, stanford_model.document_length) == (12, 20)
    assert stanford_model.dim == 16


def test_stanford_query_ids_have_marker_and_mask_expansion(
    stanford_model: maxsim.ColBERT,
) -> None:
    short, long = stanford_model.tokenize(["Who is the cat?", LONG_QUERY], is_query=True)
    words = ["[CLS]", "[unused0]", "who", "is", "the", "cat", "?", "[SEP]"] + ["[MASK]"] * 4
    assert short == [ID[word] for word in words]
    assert long == expected_ids(LONG_QUERY, Q_MARKER, 12)
    assert len(long) == 12 and long[-1] == SEP and MASK not in long


def test_stanford_document_ids_have_marker_and_are_truncated(
    stanford_model: maxsim.ColBERT,
) -> None:
    short, long = stanford_model.tokenize(["The cat runs, fast!", LONG_DOCUMENT], is_query=False)
    words = ["[CLS]", "[unused1]", "the", "cat", "run", "##s", ",", "fast", "!", "[SEP]"]
    assert short == [ID[word] for word in words]
    assert long == expected_ids(LONG_DOCUMENT, D_MARKER, 20)
    assert len(long) == 20 and long[:2] == [CLS, D_MARKER] and long[-1] == SEP


def test_stanford_queries_match_reference_without_attention_to_masks(
    stanford: Tiny, stanford_model: maxsim.ColBERT
) -> None:
    actual = stanford_model.encode_queries(QUERIES)
    ids = [expected_ids(query, Q_MARKER, 12, expand=True) for query in QUERIES]
    expected = [reference_query(stanford, row, attend_to_expansion=False) for row in ids]
    assert all(vectors.shape == (12, 16) for vectors in actual)
    assert_rows_equal(actual, expected)
    # The attention rule matters: attending to the [MASK] rows gives other vectors.
    attending = reference_query(stanford, ids[0], attend_to_expansion=True)
    assert not np.allclose(actual[0], attending, atol=1e-3)


def test_a_literal_mask_token_in_a_query_is_attended(
    stanford: Tiny, stanford_model: maxsim.ColBERT
) -> None:
    [ids] = stanford_model.tokenize(["who is [MASK] cat"], is_query=True)
    assert ids[:7] == [CLS, Q_MARKER, ID["who"], ID["is"], MASK, ID["cat"], SEP]
    expected = reference(stanford, ids, [1] * 7 + [0] * 5)
    assert_rows_equal(stanford_model.encode_queries(["who is [MASK] cat"]), [expected])


def test_stanford_documents_drop_all_punctuation_rows(
    stanford: Tiny, stanford_model: maxsim.ColBERT
) -> None:
    actual = stanford_model.encode_documents(DOCUMENTS)
    ids = [expected_ids(document, D_MARKER, 20) for document in DOCUMENTS]
    expected = [reference_document(stanford, row, STANFORD_SKIPLIST) for row in ids]
    assert_rows_equal(actual, expected)
    # "The cat runs, fast!": 10 tokens, "," and "!" dropped.
    assert actual[0].shape == (8, 16)


def test_stanford_matryoshka_cut_renormalises_the_first_dims(stanford: Tiny) -> None:
    model = load(stanford.folder, dim=8)
    assert model.dim == 8
    queries = model.encode_queries(QUERIES[:2])
    documents = model.encode_documents(DOCUMENTS[:2])
    query_ids = [expected_ids(query, Q_MARKER, 12, expand=True) for query in QUERIES[:2]]
    document_ids = [expected_ids(document, D_MARKER, 20) for document in DOCUMENTS[:2]]
    assert_rows_equal(queries, [reference_query(stanford, row, False, dim=8) for row in query_ids])
    assert_rows_equal(
        documents,
        [reference_document(stanford, row, STANFORD_SKIPLIST, dim=8) for row in document_ids],
    )
    # Renormalised, not merely sliced: the slice of the full unit vectors is shorter.
    full = reference_query(stanford, query_ids[0], False)[:, :8]
    assert np.all(np.linalg.norm(full, axis=1) < 0.999)
    np.testing.assert_allclose(np.linalg.norm(queries[0], axis=1), 1.0, atol=ATOL)


@pytest.mark.parametrize("dim", [0, -1, 17])
def test_stanford_matryoshka_dim_out_of_range(stanford: Tiny, dim: int) -> None:
    with pytest.raises(ValueError, match="dim"):
        load(stanford.folder, dim=dim)


def test_batch_size_does_not_change_vectors(stanford_model: maxsim.ColBERT) -> None:
    documents = [*DOCUMENTS, "blue", "the small river city of berlin, by the big paris mat"]
    one = stanford_model.encode_documents(documents, batch_size=1)
    four = stanford_model.encode_documents(documents, batch_size=4)
    assert len({vectors.shape[0] for vectors in one}) > 3  # really different lengths
    assert_rows_equal(four, one)
    assert_rows_equal(
        stanford_model.encode_queries(QUERIES, batch_size=4),
        stanford_model.encode_queries(QUERIES, batch_size=1),
    )


def test_truncation_logs_one_warning(
    stanford_model: maxsim.ColBERT, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="maxsim"):
        stanford_model.encode_documents(DOCUMENTS)
        assert not [record for record in caplog.records if record.name == "maxsim"]
        documents = [DOCUMENTS[0], LONG_DOCUMENT, DOCUMENTS[2], LONG_DOCUMENT + " red"]
        [_, long, *_] = stanford_model.encode_documents(documents)
    records = [record for record in caplog.records if record.name == "maxsim"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "2 of 4" in message
    assert "document_length=20" in message
    assert long.shape == (20, 16)  # truncated, nothing to skip in the long document


# ---------------------------------------------------------------------------------------
# 2. PyLate


def test_pylate_rules(pylate) -> None:
    _, model, _ = pylate
    assert model.layout == "pylate"
    assert (model.query_length, model.document_length, model.dim) == (10, 16, 24)


def test_pylate_ids_have_prefix_tokens_and_expansion(pylate) -> None:
    _, model, _ = pylate
    [query] = model.tokenize(["Who is the cat?"], is_query=True)
    words = ["[CLS]", "[unused0]", "who", "is", "the", "cat", "?", "[SEP]", "[MASK]", "[MASK]"]
    assert query == [ID[word] for word in words]
    short, long = model.tokenize(["The cat runs, fast!", LONG_DOCUMENT], is_query=False)
    words = ["[CLS]", "[unused1]", "the", "cat", "run", "##s", ",", "fast", "!", "[SEP]"]
    assert short == [ID[word] for word in words]
    assert long == expected_ids(LONG_DOCUMENT, D_MARKER, 16) and len(long) == 16


def test_pylate_queries_follow_attend_to_expansion_tokens(pylate) -> None:
    tiny, model, attend = pylate
    actual = model.encode_queries(QUERIES)
    ids = [expected_ids(query, Q_MARKER, 10, expand=True) for query in QUERIES]
    assert all(vectors.shape == (10, 24) for vectors in actual)
    assert_rows_equal(actual, [reference_query(tiny, row, attend) for row in ids])
    other = reference_query(tiny, ids[0], not attend)
    assert not np.allclose(actual[0], other, atol=1e-3)


def test_pylate_documents_drop_only_custom_skiplist_words(pylate) -> None:
    tiny, model, _ = pylate
    actual = model.encode_documents(DOCUMENTS)
    ids = [expected_ids(document, D_MARKER, 16) for document in DOCUMENTS]
    assert_rows_equal(actual, [reference_document(tiny, row, PYLATE_SKIPLIST) for row in ids])
    # "The cat runs, fast!": only "!" is dropped; "," keeps its row.
    assert actual[0].shape == (9, 24)
    # "... paris. who ran?" (truncated to 16 tokens) keeps "," and ".".
    assert actual[1].shape[0] == 16 - sum(token in PYLATE_SKIPLIST for token in ids[1])


def test_pylate_chained_dense_modules_apply_in_order(pylate_chained: Tiny) -> None:
    model = load(pylate_chained.folder)
    assert (model.layout, model.dim) == ("pylate", 8)
    queries = model.encode_queries(QUERIES)
    documents = model.encode_documents(DOCUMENTS)
    query_ids = [expected_ids(query, Q_MARKER, 10, expand=True) for query in QUERIES]
    document_ids = [expected_ids(document, D_MARKER, 16) for document in DOCUMENTS]
    assert_rows_equal(queries, [reference_query(pylate_chained, row, True) for row in query_ids])
    assert_rows_equal(
        documents,
        [reference_document(pylate_chained, row, PYLATE_SKIPLIST) for row in document_ids],
    )


# ---------------------------------------------------------------------------------------
# 3. Plain Hugging Face encoder


def test_plain_encoder_has_no_marker_no_expansion_no_projection(plain: Tiny) -> None:
    model = load(plain.folder)
    assert model.layout == "plain"
    assert model.dim == HIDDEN
    assert model.document_length == 64  # max_position_embeddings
    [query] = model.tokenize(["Who is the cat?"], is_query=True)
    assert query == [ID[w] for w in ["[CLS]", "who", "is", "the", "cat", "?", "[SEP]"]]
    [document] = model.tokenize([LONG_DOCUMENT], is_query=False)
    assert document == expected_ids(LONG_DOCUMENT, None, 64)
    assert Q_MARKER not in query and MASK not in query and D_MARKER not in document

    queries = model.encode_queries(QUERIES)
    query_ids = [expected_ids(text, None, 32) for text in QUERIES]
    # Queries keep every row, punctuation included, and are not padded.
    assert_rows_equal(queries, [reference(plain, row, [1] * len(row)) for row in query_ids])
    assert queries[0].shape == (7, HIDDEN)

    documents = model.encode_documents(DOCUMENTS)
    document_ids = [expected_ids(text, None, 64) for text in DOCUMENTS]
    expected = [reference_document(plain, row, STANFORD_SKIPLIST) for row in document_ids]
    assert_rows_equal(documents, expected)
    assert documents[0].shape == (7, HIDDEN)  # 9 tokens less "," and "!"


def test_sentence_transformers_folder_without_dense_is_plain(tmp_path: Path) -> None:
    tiny = build_plain(tmp_path)
    _write_json(
        tmp_path / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
        ],
    )
    model = load(tmp_path)
    assert (model.layout, model.dim) == ("plain", HIDDEN)
    [vectors] = model.encode_documents(["red city"])
    ids = expected_ids("red city", None, 64)
    np.testing.assert_allclose(vectors, reference(tiny, ids, [1] * len(ids)), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------
# 4. Unrecognised and missing folders


def _assert_lists_layouts(error: pytest.ExceptionInfo[ValueError]) -> None:
    message = str(error.value)
    for layout in ("jina-colbert-v2", "Stanford ColBERT", "PyLate", "plain Hugging Face"):
        assert layout in message


def test_folder_without_checkpoint_files_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a model\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a checkpoint layout") as error:
        load(tmp_path)
    _assert_lists_layouts(error)
    assert str(tmp_path) in str(error.value)


def test_remote_code_config_is_rejected(tmp_path: Path) -> None:
    _write_json(
        tmp_path / "config.json",
        {"model_type": "mystery-encoder", "auto_map": {"AutoModel": "modeling.MysteryModel"}},
    )
    with pytest.raises(ValueError, match="trust_remote_code") as error:
        load(tmp_path)
    _assert_lists_layouts(error)


def test_missing_folder_raises_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        load(missing)
    assert str(missing) in str(error.value)


# ---------------------------------------------------------------------------------------
# 5. Layouts of published checkpoints (field sets as those repos ship them, sizes tiny)

# colbert-ir/colbertv2.0 ships the whole ColBERTConfig export, "meta" included.
COLBERTV2_METADATA = {
    **STANFORD_METADATA,
    "query_token": "[Q]",
    "doc_token": "[D]",
    "ncells": None,
    "centroid_score_threshold": None,
    "ndocs": None,
    "nbits": 1,
    "kmeans_niters": 20,
    "bsize": 8,
    "lr": 1e-05,
    "maxsteps": 400000,
    "nway": 64,
    "use_ib_negatives": True,
    "interaction": "colbert",
    "relu": False,
    "checkpoint": "colbert-ir/colbertv2.0",
    "nranks": 4,
    "amp": True,
    "meta": {"hostname": "host", "git_branch": "main", "version": "colbert-v0.4"},
}
PUBLISHED_STANFORD = {
    "colbertv2.0": {"metadata": COLBERTV2_METADATA, "legacy": True},
    "answerai-colbert-small-v1": {
        "metadata": {**COLBERTV2_METADATA, "query_maxlen": 10, "doc_maxlen": 24, "dim": 8},
        "dim": 8,
    },
    "mxbai-colbert-large-v1": {
        "metadata": {**COLBERTV2_METADATA, "doc_maxlen": 64, "checkpoint": "mxbai"},
    },
    # Stanford's own loader also reads the export nested under "config".
    "nested-config": {"metadata": {"config": STANFORD_METADATA, "meta": {"version": "v0.2"}}},
}


@pytest.mark.parametrize("style", list(PUBLISHED_STANFORD))
def test_published_stanford_layouts_match_reference(tmp_path: Path, style: str) -> None:
    spec = PUBLISHED_STANFORD[style]
    tiny = build_stanford(tmp_path, seed=7, **spec)  # type: ignore[arg-type]
    stored = spec["metadata"]
    fields = stored.get("config", stored)  # type: ignore[union-attr]
    query_length, document_length = fields["query_maxlen"], fields["doc_maxlen"]
    model = load(tmp_path)
    assert (model.layout, model.query_length, model.document_length) == (
        "stanford",
        query_length,
        document_length,
    )
    assert model.dim == spec.get("dim", 16)
    queries = model.encode_queries(QUERIES)
    query_ids = [expected_ids(text, Q_MARKER, query_length, expand=True) for text in QUERIES]
    assert_rows_equal(queries, [reference_query(tiny, row, False) for row in query_ids])
    texts = [*DOCUMENTS, LONG_DOCUMENT + " " + LONG_DOCUMENT]
    documents = model.encode_documents(texts)
    document_ids = [expected_ids(text, D_MARKER, document_length) for text in texts]
    expected = [reference_document(tiny, row, STANFORD_SKIPLIST) for row in document_ids]
    assert_rows_equal(documents, expected)


# jinaai/jina-colbert-v1-en: a Stanford folder over JinaBERT, which needs remote code.
JINA_V1_CONFIG = {
    "_name_or_path": "jinaai/jina-colbert-v1-en",
    "architectures": ["HF_ColBERT"],
    "auto_map": {
        "AutoConfig": "jinaai/jina-bert-implementation--configuration_bert.JinaBertConfig",
        "AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel",
    },
    "model_type": "bert",
    "position_embedding_type": "alibi",
    "feed_forward_type": "geglu",
    "hidden_size": HIDDEN,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 8192,
    "vocab_size": len(VOCAB),
}


def test_jinabert_remote_code_checkpoint_gets_a_clear_error(tmp_path: Path) -> None:
    _write_json(tmp_path / "config.json", JINA_V1_CONFIG)
    _write_json(tmp_path / "artifact.metadata", {**STANFORD_METADATA, "doc_maxlen": 180})
    _write_tokenizer(tmp_path)
    save_file({"linear.weight": torch.zeros(16, HIDDEN)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="remote code") as error:
        load(tmp_path)
    message = str(error.value)
    _assert_lists_layouts(error)
    assert "JinaBertModel" in message and "jinaai/jina-colbert-v2" in message
    assert "trust_remote_code=True" in message


def test_pylate_folder_over_a_remote_code_encoder_gets_the_same_error(tmp_path: Path) -> None:
    build_pylate(tmp_path, attend=False)
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    _write_json(tmp_path / "config.json", {**config, "auto_map": JINA_V1_CONFIG["auto_map"]})
    with pytest.raises(ValueError, match="JinaBertModel") as error:
        load(tmp_path)
    _assert_lists_layouts(error)
