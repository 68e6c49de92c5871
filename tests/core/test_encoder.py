"""ColBERT's public methods on the tiny jina checkpoint: rerank, explain, batching, bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import maxsim
from maxsim.batching import token_budget_batches

DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France!",
    "The mitochondria is the powerhouse of the cell.",
    "Der Rhein fließt durch Deutschland.",
]


def test_rerank_orders_by_maxsim(tiny_model: maxsim.ColBERT) -> None:
    query = "capital of Germany"
    results = tiny_model.rerank(query, DOCUMENTS)
    expected = maxsim.scores(
        tiny_model.encode_queries([query]), tiny_model.encode_documents(DOCUMENTS)
    )[0]
    assert [result.index for result in results] == list(np.argsort(-expected, kind="stable"))
    assert [result.document for result in results] == [DOCUMENTS[r.index] for r in results]
    np.testing.assert_allclose(
        [result.score for result in results], np.sort(expected)[::-1], rtol=1e-6
    )
    assert [r.index for r in tiny_model.rerank(query, DOCUMENTS, top_n=2)] == [
        r.index for r in results[:2]
    ]
    assert tiny_model.rerank(query, []) == []


def test_explain_matches_the_score(tiny_model: maxsim.ColBERT) -> None:
    query, document = "Who wrote Faust?", "Goethe wrote Faust, a tragic play."
    explanation = tiny_model.explain(query, document)
    assert len(explanation.query_tokens) == tiny_model.query_length
    assert explanation.query_tokens[1] == "[QueryMarker]"
    assert explanation.document_tokens[1] == "[DocumentMarker]"
    assert "," not in explanation.document_tokens
    assert explanation.similarities.shape == (32, len(explanation.document_tokens))
    score = maxsim.scores(
        tiny_model.encode_queries([query]), tiny_model.encode_documents([document])
    )[0, 0]
    assert explanation.score == pytest.approx(score, rel=1e-5)
    for match, row in zip(explanation.matches, explanation.similarities, strict=True):
        assert match.similarity == pytest.approx(row.max())
        assert explanation.document_tokens[match.document_position] == match.document_token


def test_as_tensor_and_input_order(tiny_model: maxsim.ColBERT) -> None:
    texts = ["short", "a much longer document " * 20, "medium length text here"]
    arrays = tiny_model.encode_documents(texts, batch_size=2)
    tensors = tiny_model.encode_documents(texts, as_tensor=True)
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in tensors)
    for array, tensor, text in zip(arrays, tensors, texts, strict=True):
        np.testing.assert_allclose(array, tensor.numpy(), atol=1e-5)
        np.testing.assert_allclose(array, tiny_model.encode_documents([text])[0], atol=1e-5)


def test_long_documents_are_truncated_with_one_warning(
    tiny_checkpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = maxsim.ColBERT.from_pretrained(tiny_checkpoint, document_length=16)
    with caplog.at_level(logging.WARNING, logger="maxsim"):
        vectors = model.encode_documents(["word " * 100, "word " * 50, "short"])
    warnings = [r for r in caplog.records if r.name == "maxsim"]
    assert len(warnings) == 1
    assert "2 of 3 documents" in warnings[0].getMessage()
    assert "document_length=16" in warnings[0].getMessage()
    assert vectors[0].shape[0] == 16
    assert model.tokenize(["word " * 100], is_query=False)[0][-1] == model.tokenizer.eos_token_id


def test_long_queries_are_cut_to_query_length(tiny_model: maxsim.ColBERT) -> None:
    [ids] = tiny_model.tokenize(["many words " * 40], is_query=True)
    assert len(ids) == 32 and ids[-1] == tiny_model.tokenizer.eos_token_id


@pytest.mark.parametrize("method", ["encode_queries", "encode_documents"])
def test_bad_texts(tiny_model: maxsim.ColBERT, method: str) -> None:
    encode = getattr(tiny_model, method)
    assert encode([]) == []
    with pytest.raises(TypeError, match="wrap a single text in a list"):
        encode("just a string")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string, got NoneType"):
        encode(["fine", None])
    with pytest.raises(TypeError, match=r"texts\[0\] must be a string, got int"):
        encode([3])
    with pytest.raises(ValueError, match=r"texts\[2\] is empty or whitespace only"):
        encode(["a", "b", "   \n"])
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        encode(["a"], batch_size=0)


def test_an_unpaired_surrogate_is_refused_before_the_tokenizer(tiny_model: maxsim.ColBERT) -> None:
    with pytest.raises(ValueError, match=r"texts\[1\] holds an unpaired surrogate"):
        tiny_model.encode_documents(["fine", "broken \ud800 text"])
    with pytest.raises(ValueError, match="query holds an unpaired surrogate"):
        tiny_model.rerank("\udfff", DOCUMENTS)


def test_bad_rerank_and_explain_arguments(tiny_model: maxsim.ColBERT) -> None:
    with pytest.raises(ValueError, match="query is empty"):
        tiny_model.rerank("  ", DOCUMENTS)
    with pytest.raises(TypeError, match=r"documents\[0\] must be a string"):
        tiny_model.rerank("query", [None])
    with pytest.raises(ValueError, match="top_n must be at least 1"):
        tiny_model.rerank("query", DOCUMENTS, top_n=0)
    with pytest.raises(ValueError, match="document is empty"):
        tiny_model.explain("query", "")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dim": 0}, ValueError, "dim must be at least 1"),
        ({"dim": 129}, ValueError, r"dim must be an integer in 1\.\.128"),
        ({"dim": 64.0}, TypeError, "dim must be an integer"),
        ({"dtype": "int8"}, ValueError, "dtype must be one of float32, float16, bfloat16"),
        ({"query_length": 2}, ValueError, "query_length must be at least 4"),
        ({"document_length": "long"}, TypeError, "document_length must be an integer"),
        ({"attn_implementation": "fast"}, ValueError, "attn_implementation must be one of"),
        ({"max_batch_tokens": 0}, ValueError, "max_batch_tokens must be at least 1"),
    ],
)
def test_bad_load_arguments(
    tiny_checkpoint: str, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        maxsim.ColBERT.from_pretrained(tiny_checkpoint, **kwargs)  # type: ignore[arg-type]


def test_missing_folder_and_files(tiny_checkpoint: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        maxsim.ColBERT.from_pretrained(str(tmp_path / "no-such-folder"))
    source = Path(tiny_checkpoint)
    (tmp_path / "config.json").write_bytes((source / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="has no tokenizer"):
        maxsim.ColBERT.from_pretrained(str(tmp_path))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors"):
        maxsim.ColBERT.from_pretrained(str(tmp_path))


def test_corrupt_weights_name_the_file(tiny_checkpoint: str, tmp_path: Path) -> None:
    source = Path(tiny_checkpoint)
    for file in source.iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        maxsim.ColBERT.from_pretrained(str(tmp_path))


def test_token_budget_batches_cover_every_index_within_budget() -> None:
    lengths = [8192, 8192, 8192, 300, 500, 40, 32, 32, 32]
    batches = token_budget_batches(lengths, batch_size=32, max_tokens=16384)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 16384 or len(batch) == 1
    assert batches == [[0, 1], [2, 4], [3, 5, 6, 7, 8]]
    assert token_budget_batches([5] * 10, batch_size=4, max_tokens=10**6) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]


def test_document_chunks_cover_a_long_document(
    tiny_model: maxsim.ColBERT, tiny_checkpoint: str
) -> None:
    text = " ".join(f"word{i}" for i in range(60))
    content = len(tiny_model.tokenizer(text, add_special_tokens=False)["input_ids"])
    chunk_size, overlap = 24, 5
    window = chunk_size - 3
    [chunks] = tiny_model.encode_document_chunks(
        [text], chunk_size=chunk_size, chunk_overlap=overlap
    )
    assert len(chunks) == -(-(content - overlap) // (window - overlap))
    assert all(chunk.shape[0] <= chunk_size for chunk in chunks)
    truncated = maxsim.ColBERT.from_pretrained(tiny_checkpoint, document_length=chunk_size)
    np.testing.assert_allclose(chunks[0], truncated.encode_documents([text])[0], atol=1e-5)
    [[short]] = tiny_model.encode_document_chunks(["a short text"], chunk_size, overlap)
    np.testing.assert_allclose(short, tiny_model.encode_documents(["a short text"])[0], atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 9000}, "exceeds document_length=8192"),
        ({"chunk_size": 16, "chunk_overlap": 13}, r"chunk_overlap must be in 0\.\.12"),
        ({"chunk_size": 16, "chunk_overlap": -1}, "chunk_overlap must be at least 0"),
        ({"chunk_size": 4}, "leaves no room for text"),
        ({"chunk_size": 0}, "chunk_size must be at least 1"),
    ],
)
def test_bad_chunk_arguments(
    tiny_model: maxsim.ColBERT, kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.encode_document_chunks(["text"], **kwargs)
