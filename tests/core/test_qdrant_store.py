"""QdrantStore on qdrant-client's embedded mode, checked against LateInteractionStore."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from maxsim.stores import Hit, LateInteractionStore, QdrantStore, Record
from maxsim.testing import FakeColBERT

VOCABULARY = [f"w{i}" for i in range(40)]
LANGS = ["de", "fr", "en", None, "missing"]


def make_corpus(
    count: int = 60, seed: int = 0
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(seed)
    texts, metadatas = [], []
    for i in range(count):
        words = rng.choice(VOCABULARY, size=int(rng.integers(4, 30)))
        texts.append(" ".join(words))
        metadata: dict[str, Any] = {
            "year": int(2005 + i % 17),
            "rating": round(float(rng.random()), 2),
            "draft": bool(i % 3 == 0),
            "x.y": i % 4,
        }
        lang = LANGS[i % len(LANGS)]
        if lang != "missing":
            metadata["lang"] = lang
        metadatas.append(metadata)
    metadatas[7]["rating"] = 0.25
    return texts, metadatas, [f"doc-{i}" for i in range(count)]


TEXTS, METADATAS, IDS = make_corpus()
ALL = 1000
QUERIES = ["w1 w2", "w3", "w5 w17 w30 w2", "w39 w0 w11"]

FILTERS: list[dict[str, Any]] = [
    {"lang": "de"},
    {"lang": {"$eq": "fr"}},
    {"lang": {"$ne": "de"}},
    {"lang": None},
    {"lang": {"$ne": None}},
    {"year": {"$gt": 2015}},
    {"year": {"$gte": 2015}},
    {"year": {"$lt": 2010}},
    {"year": {"$lte": 2010}},
    {"year": {"$gte": 2008, "$lt": 2012}},
    {"year": 2010},
    {"rating": {"$gte": 0.5}},
    {"rating": 0.25},
    {"rating": {"$lt": 1}},
    {"draft": True},
    {"draft": {"$ne": True}},
    {"lang": {"$in": ["de", "fr"]}},
    {"lang": {"$in": [None, "en"]}},
    {"year": {"$in": [2006, 2007, 2010]}},
    {"lang": {"$in": []}},
    {"lang": {"$nin": ["de"]}},
    {"lang": {"$nin": ["de", None]}},
    {"year": {"$nin": [2006, 2007]}},
    {"lang": {"$nin": []}},
    {"lang": {"$exists": True}},
    {"lang": {"$exists": False}},
    {"x.y": 2},
    {"lang": "de", "draft": False},
    {"$and": [{"lang": "de"}, {"year": {"$gte": 2012}}]},
    {"$or": [{"lang": "fr"}, {"draft": True}]},
    {
        "$or": [
            {"$and": [{"lang": {"$in": ["de", "en"]}}, {"year": {"$lt": 2012}}]},
            {"$and": [{"rating": {"$gt": 0.7}}, {"lang": {"$exists": False}}]},
        ]
    },
    {"$and": [{"$or": [{"draft": True}, {"year": 2020}]}, {"lang": {"$ne": "fr"}}]},
    {"$or": []},
    {"$and": []},
    {},
]


@pytest.fixture(scope="module")
def model() -> FakeColBERT:
    return FakeColBERT(dim=16)


@pytest.fixture(scope="module")
def memory(model: FakeColBERT) -> LateInteractionStore:
    store = LateInteractionStore(model, dtype="float32")
    store.add(TEXTS, METADATAS, IDS)
    return store


@pytest.fixture(scope="module")
def filled(model: FakeColBERT) -> QdrantStore:
    store = QdrantStore(model, QdrantClient(":memory:"), "corpus")
    store.add(TEXTS, METADATAS, IDS)
    return store


@pytest.fixture
def store(model: FakeColBERT) -> QdrantStore:
    return QdrantStore(model, QdrantClient(":memory:"), "docs")


def assert_same_hits(full: list[Hit], actual: list[Hit], k: int, tolerance: float = 1e-3) -> None:
    """`actual` is a top-k of the reference ranking `full` (every match, best first):
    the same scores rank by rank, each hit scored and described as the reference has
    it. Documents with equal scores may come in either order."""
    expected = full[:k]
    assert len(actual) == len(expected)
    assert len({hit.id for hit in actual}) == len(actual)
    reference = {hit.id: hit for hit in full}
    for want, got in zip(expected, actual, strict=True):
        assert got.score == pytest.approx(want.score, abs=tolerance)
        same = reference[got.id]
        assert got.score == pytest.approx(same.score, abs=tolerance)
        assert got.normalized_score == pytest.approx(same.normalized_score, abs=tolerance)
        assert (got.text, got.metadata, got.chunk) == (same.text, same.metadata, same.chunk)


def points(store: QdrantStore) -> int:
    return store.client.count(store.collection_name, exact=True).count


@pytest.mark.parametrize("k", [1, 5, 100])
def test_search_matches_the_memory_store(
    filled: QdrantStore, memory: LateInteractionStore, k: int
) -> None:
    for query in QUERIES:
        assert_same_hits(memory.search(query, ALL), filled.search(query, k), k)


def test_scores_match_the_float16_store_within_its_precision(
    model: FakeColBERT, filled: QdrantStore
) -> None:
    half = LateInteractionStore(model)
    half.add(TEXTS, METADATAS, IDS)
    for query in QUERIES:
        assert_same_hits(half.search(query, ALL), filled.search(query, 10), 10, 2e-2)


@pytest.mark.parametrize("filter", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_select_what_the_memory_store_selects(
    filled: QdrantStore, memory: LateInteractionStore, filter: dict[str, Any]
) -> None:
    for query in QUERIES[:2]:
        expected = memory.search(query, ALL, filter=filter)
        assert_same_hits(expected, filled.search(query, ALL, filter=filter), ALL)
        assert_same_hits(expected, filled.search(query, 3, filter=filter), 3)


def test_filters_are_not_trivial(memory: LateInteractionStore) -> None:
    counts = [len(memory.search("w1", ALL, filter=f)) for f in FILTERS]
    assert sum(0 < count < len(IDS) for count in counts) >= len(FILTERS) - 6


def test_list_fields_follow_qdrant_rules(store: QdrantStore) -> None:
    store.add(["a b", "a c", "a d"], [{"t": []}, {"t": None}, {"t": ["x", "y"]}], ["e", "n", "l"])
    found = lambda filter: sorted(hit.id for hit in store.search("a", filter=filter))  # noqa: E731
    assert found({"t": "x"}) == ["l"]
    assert found({"t": {"$in": ["y", "z"]}}) == ["l"]
    assert found({"t": {"$ne": "x"}}) == ["e", "n"]
    assert found({"t": {"$exists": True}}) == ["l", "n"]


def test_search_many_and_search_embeddings(
    model: FakeColBERT, filled: QdrantStore, memory: LateInteractionStore
) -> None:
    many = filled.search_many(QUERIES, k=4, filter={"draft": False})
    assert len(many) == len(QUERIES)
    for query, hits in zip(QUERIES, many, strict=True):
        assert_same_hits(memory.search(query, ALL, filter={"draft": False}), hits, 4)
    vectors = model.encode_queries(QUERIES)
    for expected, actual in zip(
        memory.search_embeddings(vectors, ALL), filled.search_embeddings(vectors, 4), strict=True
    ):
        assert_same_hits(expected, actual, 4)
    assert filled.search_many([]) == []
    assert filled.search_embeddings([]) == []


def test_add_embeddings_stores_vectors_as_given(
    model: FakeColBERT, store: QdrantStore, memory: LateInteractionStore
) -> None:
    vectors = model.encode_documents(TEXTS[:20])
    assert store.add_embeddings(vectors, texts=TEXTS[:20], ids=IDS[:20]) == IDS[:20]
    reference = LateInteractionStore(model, dtype="float32")
    reference.add_embeddings(vectors, texts=TEXTS[:20], ids=IDS[:20])
    for query in QUERIES:
        assert_same_hits(reference.search(query, ALL), store.search(query, 5), 5)
    store.add_embeddings([vectors[0] * 2], ids=["scaled"])
    assert store.get(["scaled"]) == [Record("scaled", None, {})]
    top = store.search_embeddings([vectors[0]], k=1)[0][0]
    assert top.id == "scaled"
    assert top.score == pytest.approx(2 * reference.search_embeddings([vectors[0]], 1)[0][0].score)


def test_upsert_replaces_a_document(store: QdrantStore) -> None:
    store.add(["red apples", "blue sky"], [{"n": 1}, {"n": 2}], ids=["a", "b"])
    store.add(["green pears"], [{"n": 3}], ids=["a"])
    assert len(store) == 2
    assert store.get(["a"]) == [Record("a", "green pears", {"n": 3})]
    assert [hit.id for hit in store.search("apples", filter={"n": 1})] == []
    top = store.search("pears", k=1)[0]
    assert (top.id, top.text, top.metadata) == ("a", "green pears", {"n": 3})


def test_delete_counts_documents_that_went(store: QdrantStore) -> None:
    store.add(["one", "two", "three"], ids=["a", "b", "c"])
    assert store.delete(["a", "unknown", "a"]) == 1
    assert store.delete([]) == 0
    assert store.delete(["a"]) == 0
    assert len(store) == 2
    assert {hit.id for hit in store.search("one two three")} == {"b", "c"}
    with pytest.raises(TypeError, match="wrap a single id"):
        store.delete("b")


def test_get_keeps_input_order_and_skips_unknown(store: QdrantStore) -> None:
    store.add(["one", "two", "three"], [{"i": 1}, {"i": 2}, {"i": 3}], ids=["a", "b", "c"])
    assert store.get(["c", "zz", "a", "c"]) == [
        Record("c", "three", {"i": 3}),
        Record("a", "one", {"i": 1}),
        Record("c", "three", {"i": 3}),
    ]
    assert store.get([]) == []


def test_len_iter_and_clear(filled: QdrantStore, memory: LateInteractionStore) -> None:
    assert len(filled) == len(memory) == len(IDS)
    key = lambda record: record.id  # noqa: E731
    assert sorted(filled, key=key) == sorted(memory, key=key)
    store = QdrantStore(filled.model, filled.client, "for-clearing")
    store.add(["one", "two"])
    store.clear()
    assert len(store) == 0
    assert list(store) == []
    assert store.search("one") == []
    assert len(filled) == len(IDS)


def test_ids_are_generated_when_missing(store: QdrantStore) -> None:
    ids = store.add(["one", "two"])
    assert len(set(ids)) == 2
    assert [record.text for record in store.get(ids)] == ["one", "two"]


NEEDLE_AT = 190


def long_document() -> str:
    words = [f"filler{i % 7}" for i in range(200)]
    words[NEEDLE_AT] = "zebra"
    return " ".join(words)


def test_chunked_documents_find_a_late_needle() -> None:
    model = FakeColBERT(dim=16, document_length=64)
    texts = [long_document(), "zebra crossing ahead", "plain words here"]
    ids = ["long", "short", "other"]
    truncated = QdrantStore(model, QdrantClient(":memory:"), "truncated")
    truncated.add(texts, ids=ids)
    scores = {hit.id: hit.score for hit in truncated.search("zebra")}
    assert scores["short"] == pytest.approx(1.0) and scores["long"] < 0.99

    chunked = QdrantStore(
        model, QdrantClient(":memory:"), "chunked", chunk_size=32, chunk_overlap=8
    )
    chunked.add(texts, ids=ids)
    reference = LateInteractionStore(model, dtype="float32", chunk_size=32, chunk_overlap=8)
    reference.add(texts, ids=ids)
    hits = chunked.search("zebra filler3", k=3)
    assert_same_hits(reference.search("zebra filler3", k=3), hits, 3)
    assert (hits[0].id, hits[0].chunk, hits[0].text) == ("long", 7, texts[0])
    assert len(chunked) == 3
    assert points(chunked) > 3
    needle = [hit for hit in chunked.search("zebra", filter={"x": {"$exists": False}})]
    assert {hit.id: (hit.chunk, round(hit.score, 4)) for hit in needle}["long"] == (7, 1.0)

    chunked.add(["short now"], ids=["long"])
    assert points(chunked) == 3
    assert chunked.get(["long"]) == [Record("long", "short now", {})]
    assert chunked.delete(["short", "long"]) == 2
    assert points(chunked) == 1


def test_a_path_client_persists(model: FakeColBERT, tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path))
    store = QdrantStore(model, client, "saved")
    store.add(TEXTS[:15], METADATAS[:15], IDS[:15])
    before = store.search_many(QUERIES, k=15, filter={"draft": False})
    client.close()

    client = QdrantClient(path=str(tmp_path))
    reopened = QdrantStore(model, client, "saved", create=False)
    assert len(reopened) == 15
    for k in (5, 15):
        after = reopened.search_many(QUERIES, k=k, filter={"draft": False})
        for full, hits in zip(before, after, strict=True):
            assert_same_hits(full, hits, k, tolerance=1e-6)
    with pytest.raises(ValueError, match=r"size 16.*dim 8"):
        QdrantStore(FakeColBERT(dim=8), client, "saved")
    client.close()


def test_collection_checks(model: FakeColBERT) -> None:
    from qdrant_client import models

    client = QdrantClient(":memory:")
    with pytest.raises(ValueError, match="does not exist"):
        QdrantStore(model, client, "absent", create=False)
    assert not client.collection_exists("absent")
    client.create_collection("flat", models.VectorParams(size=16, distance=models.Distance.DOT))
    with pytest.raises(ValueError, match="MAX_SIM"):
        QdrantStore(model, client, "flat")
    client.create_collection(
        "named", {"colbert": models.VectorParams(size=16, distance=models.Distance.DOT)}
    )
    with pytest.raises(ValueError, match="named vectors"):
        QdrantStore(model, client, "named")
    with pytest.raises(TypeError, match="maxsim encoder"):
        QdrantStore("model", client, "docs")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filter", "error", "message"),
    [
        (lambda metadata: True, TypeError, "dict filter"),
        ({"lang": {"$regex": "d"}}, ValueError, "unknown operator '\\$regex'"),
        ({"$not": {"lang": "de"}}, ValueError, "unknown operator"),
        ({"lang": {"$in": "de"}}, ValueError, "takes a list"),
        ({"lang": {"$gt": "d"}}, ValueError, "numbers only"),
        ({"tags": ["a", "b"]}, ValueError, "cannot compare"),
        ({"year": {"$lt": float("inf")}}, ValueError, "finite"),
        ({'a"b': 1}, ValueError, "field name"),
        ("lang", TypeError, "dict or a callable"),
    ],
)
def test_filters_qdrant_cannot_run_raise(
    filled: QdrantStore, filter: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        filled.search("w1", filter=filter)
    with pytest.raises(error, match=message):
        filled.search_embeddings([np.ones((1, 16), np.float32)], filter=filter)


def test_bad_inputs_store_nothing(model: FakeColBERT, store: QdrantStore) -> None:
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: store.add(["a", "b"], ids=["x", "x"]), ValueError, "repeats 'x'"),
        (lambda: store.add(["a", "b"], metadatas=[{}]), ValueError, "metadatas has 1"),
        (lambda: store.add(["a"], ids=["x", "y"]), ValueError, "ids has 2"),
        (lambda: store.add(["a", ""]), ValueError, "empty"),
        (lambda: store.add(["a"], metadatas=[{"v": {1, 2}}]), ValueError, "JSON"),
        (
            lambda: store.add_embeddings([np.ones((3, 8))]),
            ValueError,
            r"embeddings\[0\]\[0\] has dim 8 but the store's model has dim 16",
        ),
        (
            lambda: store.add_embeddings([np.ones((3, 16))], texts=["a", "b"]),
            ValueError,
            "texts has 2",
        ),
        (lambda: store.add_embeddings([np.full((2, 16), np.nan)]), ValueError, "NaN"),
        (lambda: store.search("a", k=0), ValueError, "k"),
        (lambda: store.search_embeddings([np.ones((2, 8))]), ValueError, "dim 8"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    assert len(store) == 0
    assert points(store) == 0


def test_missing_qdrant_client_names_the_extra(
    model: FakeColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    with pytest.raises(ImportError, match=r'pip install "maxsim\[qdrant\]"'):
        QdrantStore(model, None, "docs")  # type: ignore[arg-type]
