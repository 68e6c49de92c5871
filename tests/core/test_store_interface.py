"""What every store class offers adapters and the command line, run on each kind:
filter reads and deletes with the store's own rules, stored vectors, save and load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from maxsim.stores import DocumentStore, load_store
from maxsim.stores.loading import STORE_CLASSES, store_class
from maxsim.testing import FakeColBERT

TEXTS = [
    "red apples grow on trees",
    "blue sky over the sea",
    "green apples and red cherries",
    "the sea is deep and blue",
]
METADATAS: list[dict[str, Any]] = [
    {"tags": ["fruit", "red"], "year": 2024},
    {"tags": ["sky"], "year": 2020},
    {"tags": ["fruit"], "year": 2022},
    {"tags": "sea", "year": 2021},
]
IDS = ["apples", "sky", "cherries", "sea"]


@pytest.fixture
def store(make_store: Any) -> DocumentStore:
    filled: DocumentStore = make_store(FakeColBERT(), chunk_size=3, chunk_overlap=1)
    filled.add(TEXTS, METADATAS, IDS)
    return filled


def test_every_format_names_its_class() -> None:
    for name in STORE_CLASSES:
        if name != "maxsim.PLAIDStore" or _has_plaid():
            assert store_class(name).format == name


def _has_plaid() -> bool:
    try:
        import maxsim.stores.plaid  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("filter", [{"year": {"$gte": 2022}}, {"tags": "sea"}, {"tags": "fruit"}])
def test_get_and_delete_where_follow_search(store: DocumentStore, filter: dict[str, Any]) -> None:
    found = {hit.id for hit in store.search("apples sea sky", k=10, filter=filter)}
    assert {record.id for record in store.get_where(filter)} == found
    assert store.delete_where(filter) == len(found)
    assert {record.id for record in store} == set(IDS) - found
    assert store.search("apples sea sky", k=10, filter=filter) == []


def test_list_fields_follow_the_stores_rules(store: DocumentStore) -> None:
    """In memory a value equals a whole list only; on Qdrant a list matches when any
    item does."""
    matching = {record.id for record in store.get_where({"tags": "fruit"})}
    expected = set() if store.supports_callable_filters else {"apples", "cherries"}
    assert matching == expected
    if store.supports_callable_filters:
        assert {record.id for record in store.get_where({"tags": ["fruit"]})} == {"cherries"}
    else:
        with pytest.raises(ValueError, match="any element"):
            store.get_where({"tags": ["fruit"]})


def test_get_where_without_filter_and_delete_where_refuses_none(store: DocumentStore) -> None:
    assert sorted(record.id for record in store.get_where()) == sorted(IDS)
    with pytest.raises(ValueError, match="clear"):
        store.delete_where(None)  # type: ignore[arg-type]
    assert len(store) == len(IDS)


def test_callable_filters_where_supported(store: DocumentStore) -> None:
    def recent(metadata: Any) -> bool:
        return bool(metadata["year"] > 2021)

    if store.supports_callable_filters:
        assert {record.id for record in store.get_where(recent)} == {"apples", "cherries"}
    else:
        with pytest.raises(TypeError):
            store.get_where(recent)


def test_get_vectors_returns_the_stored_windows(store: DocumentStore) -> None:
    model = store.model
    expected = model.encode_document_chunks([TEXTS[0]], 3, 1)[0]
    vectors = store.get_vectors(["apples", "unknown", "sky"])
    assert list(vectors) == ["apples", "sky"]
    assert len(vectors["apples"]) == len(expected) > 1
    for stored, encoded in zip(vectors["apples"], expected, strict=True):
        assert stored.dtype == np.float32
        np.testing.assert_allclose(stored, encoded, atol=2e-3)
    assert store.get_vectors([]) == {}


def test_save_and_load_store_pick_the_class(store: DocumentStore, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    store.save(folder)
    expected = [(hit.id, round(hit.score, 3)) for hit in store.search("red apples", k=3)]
    if not store.supports_callable_filters:
        store.client.close()  # type: ignore[attr-defined]  # the local folder allows one client
    loaded = load_store(folder, store.model)
    assert type(loaded) is type(store)
    assert [(hit.id, round(hit.score, 3)) for hit in loaded.search("red apples", k=3)] == expected
    assert (loaded.chunk_size, loaded.chunk_overlap) == (3, 1)
    with pytest.raises(ValueError, match="saved with model"):
        load_store(folder, FakeColBERT(dim=8))


def test_load_store_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no saved store"):
        load_store(tmp_path, FakeColBERT())
    (tmp_path / "store.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="corrupt"):
        load_store(tmp_path, FakeColBERT())
    (tmp_path / "store.json").write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(ValueError, match="names store format 'other'"):
        load_store(tmp_path, FakeColBERT())


def test_qdrant_in_memory_mode_cannot_be_saved(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    from maxsim.stores import QdrantStore

    client = QdrantClient(":memory:")
    store = QdrantStore(FakeColBERT(), client, "docs")
    with pytest.raises(ValueError, match="path="):
        store.save(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere" / "store.json").exists()
    client.close()
