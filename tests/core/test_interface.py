"""The encoder interface split: what stores need (`LateInteractionEncoder`) versus what
needs a tokenizer (`TokenizedEncoder`), and `load_encoder`'s three kinds of model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

import maxsim
from maxsim.testing import FakeColBERT


class VectorsOnly(maxsim.LateInteractionEncoder):
    """An encoder with only the small interface (as a remote one has): no token ids."""

    name = "vectors-only"
    dim = 16

    def __init__(self) -> None:
        self._inner = FakeColBERT(dim=16)

    @property
    def query_length(self) -> int:
        return 8

    @property
    def document_length(self) -> int:
        return 512

    def encode_queries(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        return self._inner.encode_queries(texts, batch_size, as_tensor=as_tensor)

    def encode_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        as_tensor: bool = False,
    ) -> list[Any]:
        return self._inner.encode_documents(texts, batch_size, as_tensor=as_tensor)


def test_local_encoders_are_tokenized_and_can_chunk(tiny_model: maxsim.ColBERT) -> None:
    for model in (tiny_model, FakeColBERT()):
        assert isinstance(model, maxsim.TokenizedEncoder)
        assert model.supports_chunking
    assert not VectorsOnly.supports_chunking
    assert not maxsim.RemoteColBERT.supports_chunking
    assert not hasattr(VectorsOnly(), "explain")


def test_interface_rerank_matches_the_tokenized_one() -> None:
    documents = ["a red apple", "blue sky", "red sky at night"]
    ours = VectorsOnly().rerank("red apple", documents, top_n=2)
    theirs = FakeColBERT(dim=16).rerank("red apple", documents, top_n=2)
    assert ours == theirs and [result.index for result in ours] == [0, 2]
    with pytest.raises(ValueError, match="top_n"):
        VectorsOnly().rerank("red apple", documents, top_n=0)


def test_store_runs_on_the_small_interface() -> None:
    store = maxsim.LateInteractionStore(VectorsOnly())
    store.add(["a red apple", "blue sky"], ids=["apple", "sky"])
    assert [hit.id for hit in store.search("red apple", k=1)] == ["apple"]


@pytest.mark.parametrize(
    "model", [VectorsOnly(), maxsim.RemoteColBERT("http://127.0.0.1:9/v1", dim=16)]
)
def test_chunked_store_refuses_an_encoder_without_a_tokenizer(
    model: maxsim.LateInteractionEncoder,
) -> None:
    with pytest.raises(ValueError, match=r"chunk_size=64 .*no tokenizer.*chunk_size=None"):
        maxsim.LateInteractionStore(model, chunk_size=64, chunk_overlap=8)
    with pytest.raises(ValueError, match="supports_chunking is False"):
        model.encode_document_chunks(["text"], 64)


def test_load_encoder_resolves_an_encoder_a_folder_and_a_url(tiny_checkpoint: str) -> None:
    fake = FakeColBERT()
    assert maxsim.load_encoder(fake) is fake
    local = maxsim.load_encoder(tiny_checkpoint, dim=64)
    assert isinstance(local, maxsim.ColBERT) and local.dim == 64
    remote = maxsim.load_encoder("https://example.invalid/v1/", dim=96, api_key="key")
    assert isinstance(remote, maxsim.RemoteColBERT)
    assert (remote.base_url, remote.dim, remote.name) == (
        "https://example.invalid/v1",
        96,
        "jina-colbert-v2",
    )
    with pytest.raises(TypeError, match="http"):
        maxsim.load_encoder(3)  # type: ignore[arg-type]


def test_tensors_and_arrays_agree_through_the_interface() -> None:
    [array] = VectorsOnly().encode_documents(["red apple"])
    [tensor] = VectorsOnly().encode_documents(["red apple"], as_tensor=True)
    assert isinstance(tensor, torch.Tensor)
    np.testing.assert_array_equal(array, tensor.numpy())
