"""int8 inference (`quantize="int8"`): closeness to float32, rankings, layers, bad options."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import maxsim
from maxsim.cache import DocumentVectorCache
from maxsim.cli import main
from maxsim.quantization import Int8Linear

PASSAGES = [
    "The Danube flows through ten countries before it reaches the Black Sea.",
    "Marie Curie won Nobel Prizes in both physics and chemistry.",
    "A violin has four strings tuned in perfect fifths.",
    "The Sahara is the largest hot desert on Earth.",
    "Penicillin was discovered by Alexander Fleming in 1928.",
    "The Great Wall of China stretches across northern China for thousands of kilometres.",
    "Honeybees communicate the direction of flowers with a waggle dance.",
    "The speed of light in a vacuum is about 300,000 kilometres per second.",
]
QUERIES = [
    "Which river ends in the Black Sea?",
    "Who received two Nobel Prizes in different sciences?",
    "How many strings does a violin have?",
    "What is the biggest hot desert?",
    "Who discovered penicillin?",
    "Where is the Great Wall?",
    "How do bees tell each other where flowers are?",
    "How fast does light travel?",
]


@pytest.fixture(scope="module")
def minilm_int8(minilm_path: Path) -> maxsim.ColBERT:
    return maxsim.ColBERT.from_pretrained(str(minilm_path), quantize="int8")


def token_cosines(first: list[np.ndarray], second: list[np.ndarray]) -> np.ndarray:
    for a, b in zip(first, second, strict=True):
        assert a.shape == b.shape
    return np.concatenate([(a * b).sum(axis=1) for a, b in zip(first, second, strict=True)])


def test_int8_vectors_stay_close_to_float32(
    minilm: maxsim.ColBERT, minilm_int8: maxsim.ColBERT
) -> None:
    documents = token_cosines(
        minilm.encode_documents(PASSAGES), minilm_int8.encode_documents(PASSAGES)
    )
    queries = token_cosines(minilm.encode_queries(QUERIES), minilm_int8.encode_queries(QUERIES))
    assert documents.min() >= 0.98 and queries.min() >= 0.98
    assert documents.max() < 1 - 1e-6  # int8 really ran
    for vectors in minilm_int8.encode_documents(PASSAGES[:2]):
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_rankings_agree_with_float32(
    minilm: maxsim.ColBERT, minilm_int8: maxsim.ColBERT
) -> None:
    expected = maxsim.scores(minilm.encode_queries(QUERIES), minilm.encode_documents(PASSAGES))
    actual = maxsim.scores(
        minilm_int8.encode_queries(QUERIES), minilm_int8.encode_documents(PASSAGES)
    )
    assert list(actual.argmax(axis=1)) == list(range(len(QUERIES)))
    for got, want in zip(actual, expected, strict=True):
        assert set(np.argsort(-got)[:3]) == set(np.argsort(-want)[:3])
    np.testing.assert_allclose(actual, expected, atol=0.05 * expected.max())


def test_only_the_backbone_linear_layers_are_quantized(minilm_int8: maxsim.ColBERT) -> None:
    backbone = minilm_int8._backbone.model
    swapped = [name for name, module in backbone.named_modules() if isinstance(module, Int8Linear)]
    assert len(swapped) == 6 * 6  # q, k, v, attention output, intermediate, output per layer
    assert isinstance(backbone.pooler.dense, nn.Linear)  # unused output, left alone
    assert backbone.embeddings.word_embeddings.weight.dtype == torch.float32
    norms = [m for m in backbone.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(norm.weight.dtype == torch.float32 for norm in norms)
    assert minilm_int8.quantize == "int8" and minilm_int8.dtype == torch.float32


def test_native_jina_backbone_keeps_the_golden_top_documents(
    tiny_checkpoint: str, golden: dict[str, Any], golden_arrays: dict[str, np.ndarray]
) -> None:
    model = maxsim.ColBERT.from_pretrained(tiny_checkpoint, quantize="int8")
    layers = model._backbone.encoder.layers
    assert all(isinstance(layer.mixer.Wqkv, Int8Linear) for layer in layers)
    assert isinstance(model._projection[0], nn.Linear)  # the projection stays float32
    scores = maxsim.scores(
        model.encode_queries(golden["queries"]), model.encode_documents(golden["documents"])
    )
    expected = golden_arrays["scores"]
    assert list(scores.argmax(axis=1)) == list(expected.argmax(axis=1))
    np.testing.assert_allclose(scores, expected, atol=0.2)


def test_the_cache_keeps_int8_and_float32_vectors_apart(
    minilm: maxsim.ColBERT, minilm_int8: maxsim.ColBERT
) -> None:
    cache = DocumentVectorCache()
    [exact] = cache.encode_documents(minilm, PASSAGES[:1])
    [quantized] = cache.encode_documents(minilm_int8, PASSAGES[:1])
    assert cache.info().misses == 2 and cache.info().entries == 2
    assert not np.array_equal(exact, quantized)
    [again] = cache.encode_documents(minilm_int8, PASSAGES[:1])
    np.testing.assert_array_equal(again, quantized)
    assert cache.info().hits == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quantize": "int4"}, "quantize must be 'int8' or None"),
        ({"quantize": True}, "quantize must be 'int8' or None"),
        ({"quantize": "int8", "device": "cuda"}, "runs on the CPU only"),
        ({"quantize": "int8", "dtype": torch.bfloat16}, "dtype=torch.bfloat16"),
        ({"quantize": "int8", "dtype": "float16"}, "dtype=torch.float16"),
    ],
)
def test_bad_combinations_are_refused_before_loading(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        maxsim.ColBERT.from_pretrained("/no/such/checkpoint", **options)


def test_cli_encodes_with_quantize_int8(
    minilm_path: Path,
    minilm_int8: maxsim.ColBERT,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "vectors.safetensors"
    command = ["encode", PASSAGES[0], "--model", str(minilm_path), "--quantize", "int8"]
    assert main([*command, "--json", "--output", str(output)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    expected = minilm_int8.encode_documents(PASSAGES[:1])[0]
    np.testing.assert_allclose(np.array(row["embeddings"]), expected, atol=1e-5)
    assert output.exists()


def test_missing_torchao_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"maxsim\[int8\]"):
        maxsim.ColBERT.from_pretrained("/no/such/checkpoint", quantize="int8")
