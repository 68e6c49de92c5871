"""QdrantStore on qdrant-client's embedded mode, checked against LateInteractionStore."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from maxsim.stores import Hit, LateInteractionStore, QdrantStore, Record
from maxsim.stores.first_stage import MeanPooling, Muvera
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


def assert_same_hits(
    full: list[Hit], actual: list[Hit], k: int, tolerance: float = 1e-3, chunks: bool = True
) -> None:
    """`actual` is a top-k of the reference ranking `full` (every match, best first):
    the same scores rank by rank, each hit scored and described as the reference has
    it. Documents with equal scores may come in either order (and windows with equal
    scores when `chunks` is false)."""
    expected = full[:k]
    assert len(actual) == len(expected)
    assert len({hit.id for hit in actual}) == len(actual)
    reference = {hit.id: hit for hit in full}
    for want, got in zip(expected, actual, strict=True):
        assert got.score == pytest.approx(want.score, abs=tolerance)
        same = reference[got.id]
        assert got.score == pytest.approx(same.score, abs=tolerance)
        assert got.normalized_score == pytest.approx(same.normalized_score, abs=tolerance)
        assert (got.text, got.metadata) == (same.text, same.metadata)
        assert got.chunk == same.chunk or not chunks


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
    with pytest.raises(ValueError, match=r"dim 16.*dim 8"):
        QdrantStore(FakeColBERT(dim=8), client, "saved")
    client.close()


def test_collection_checks(model: FakeColBERT) -> None:
    from qdrant_client import models

    client = QdrantClient(":memory:")
    with pytest.raises(ValueError, match="does not exist"):
        QdrantStore(model, client, "absent", create=False)
    assert not client.collection_exists("absent")
    client.create_collection("flat", models.VectorParams(size=16, distance=models.Distance.DOT))
    with pytest.raises(ValueError, match=r"single vectors.*not a QdrantStore collection"):
        QdrantStore(model, client, "flat")
    client.create_collection(
        "named", {"colbert": models.VectorParams(size=16, distance=models.Distance.DOT)}
    )
    with pytest.raises(ValueError, match="not made by this QdrantStore"):
        QdrantStore(model, client, "named")
    QdrantStore(model, client, "muvera", first_stage="muvera")
    with pytest.raises(ValueError, match=r"first_stage=Muvera\(k_sim=3, dim_proj=64"):
        QdrantStore(model, client, "muvera")
    QdrantStore(model, client, "single", first_stage=None)
    with pytest.raises(ValueError, match="first_stage=None"):
        QdrantStore(model, client, "single")
    with pytest.raises(ValueError, match="dim_proj must be at least 1"):
        Muvera(dim_proj=0)
    with pytest.raises(TypeError, match="maxsim encoder"):
        QdrantStore("model", client, "docs")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"first_stage": "pooled"}, ValueError, "first_stage must be 'muvera', 'mean', None"),
        ({"candidates": 0}, ValueError, "candidates must be at least 1"),
        ({"dtype": "int8"}, ValueError, "dtype must be 'float32' or 'float16'"),
        ({"collection_options": {"vectors_config": {}}}, ValueError, "cannot set"),
    ],
)
def test_bad_options_are_refused(
    model: FakeColBERT, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    client = QdrantClient(":memory:")
    with pytest.raises(error, match=message):
        QdrantStore(model, client, "docs", **options)
    assert not client.collection_exists("docs")


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


FIRST_STAGES = ["muvera", "mean", None]


@pytest.fixture(scope="module", params=FIRST_STAGES)
def staged(request: pytest.FixtureRequest, model: FakeColBERT) -> QdrantStore:
    store = QdrantStore(
        model, QdrantClient(":memory:"), "staged", first_stage=request.param, candidates=len(IDS)
    )
    store.add(TEXTS, METADATAS, IDS)
    return store


def test_all_candidates_give_the_exact_ranking(
    staged: QdrantStore, memory: LateInteractionStore
) -> None:
    for query in QUERIES:
        expected = memory.search(query, ALL)
        assert_same_hits(expected, staged.search(query, 10), 10)
    for filter in FILTERS[::4]:
        expected = memory.search(QUERIES[0], ALL, filter=filter)
        assert_same_hits(expected, staged.search(QUERIES[0], 5, filter=filter), 5)


@pytest.mark.parametrize("first_stage", ["muvera", "mean"])
def test_filters_hold_in_both_stages(
    model: FakeColBERT, memory: LateInteractionStore, first_stage: str
) -> None:
    store = QdrantStore(
        model, QdrantClient(":memory:"), "few", first_stage=first_stage, candidates=4
    )
    store.add(TEXTS, METADATAS, IDS)
    for filter in ({"lang": "de"}, {"year": {"$lt": 2010}}, {"draft": True, "lang": "fr"}):
        matching = {hit.id for hit in memory.search("w1", ALL, filter=filter)}
        hits = store.search("w1", k=4, filter=filter)
        # The first stage kept only matching points: 4 candidates still give 4 hits.
        assert len(hits) == min(4, len(matching))
        assert {hit.id for hit in hits} <= matching


def test_collection_layout(model: FakeColBERT) -> None:
    from qdrant_client import models

    client = QdrantClient(":memory:")
    sizes = {"muvera": 10 * 2**3 * 16, "mean": 16}
    for first_stage in ["muvera", "mean", None]:
        name = f"layout-{first_stage}"
        QdrantStore(model, client, name, first_stage=first_stage)
        config = client.get_collection(name).config
        vectors = config.params.vectors
        assert isinstance(vectors, dict)
        tokens = vectors["tokens"]
        assert tokens.multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
        assert tokens.hnsw_config is not None and tokens.hnsw_config.m == 0
        assert (tokens.size, tokens.distance) == (16, models.Distance.DOT)
        assert set(vectors) == {"tokens"} | ({first_stage} if first_stage else set())
        if first_stage:
            assert vectors[first_stage].size == sizes[first_stage]
            assert vectors[first_stage].multivector_config is None
            assert vectors[first_stage].hnsw_config is None
        assert config.metadata["maxsim"]["first_stage"] == (
            None
            if first_stage is None
            else {"muvera": Muvera(), "mean": MeanPooling()}[first_stage].settings()
        )
    QdrantStore(model, client, "half", dtype="float16", on_disk=True)
    tokens = client.get_collection("half").config.params.vectors["tokens"]
    assert (tokens.datatype, tokens.on_disk) == (models.Datatype.FLOAT16, True)


@pytest.mark.parametrize("first_stage", FIRST_STAGES)
def test_windows_group_by_document_whatever_the_chunk_size(
    model: FakeColBERT, first_stage: str | None
) -> None:
    rng = np.random.default_rng(3)
    query = rng.normal(size=(2, 16)).astype(np.float32)
    near = np.repeat(query[:1], 3, axis=0) + rng.normal(scale=0.01, size=(3, 16))
    windows = {
        "a": [near.astype(np.float32), (near * 0.9).astype(np.float32)],
        "b": [(near * 0.5).astype(np.float32)],
        "c": [(near * -1).astype(np.float32)],
    }
    store = QdrantStore(model, QdrantClient(":memory:"), "windows", first_stage=first_stage)
    store.add_embeddings(list(windows.values()), ids=list(windows))
    reference = LateInteractionStore(model, dtype="float32")
    reference.add_embeddings(list(windows.values()), ids=list(windows))
    hits = store.search_embeddings([query], k=2)[0]
    assert [hit.id for hit in hits] == ["a", "b"]
    assert_same_hits(reference.search_embeddings([query], ALL)[0], hits, 2)
    assert len(store) == 3
    assert store.get_vectors(["c", "zz", "a"]).keys() == {"c", "a"}


class FailingClient:
    """A QdrantClient that fails the `fail_on`-th upsert, after running `before_failing`."""

    def __init__(self, client: QdrantClient, fail_on: int, before_failing: Any) -> None:
        self._client = client
        self.fail_on = fail_on
        self.before_failing = before_failing
        self.upserts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        self.upserts += 1
        if self.upserts == self.fail_on:
            self.before_failing()
            raise ConnectionError("Qdrant went away")
        return self._client.upsert(*args, **kwargs)


def test_a_failed_update_leaves_the_old_version_whole(
    model: FakeColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    import maxsim.stores.qdrant as qdrant_module

    old_texts = ["w1 w2 w3 w4", "w5 w6 w7 w8", "w9 w10 w11 w12"]
    new_texts = ["w20 w21 w22", "w23 w24 w25", "w26 w27 w28"]
    ids = ["a", "b", "c"]
    client = FailingClient(QdrantClient(":memory:"), fail_on=0, before_failing=None)
    store = QdrantStore(model, client, "versions", chunk_size=4, chunk_overlap=1)  # type: ignore[arg-type]
    store.add(old_texts, [{"v": 1}] * 3, ids)
    old_vectors = store.get_vectors(ids)
    stored = points(store)
    seen: list[list[Hit]] = []

    def read_midway() -> None:
        seen.append(store.search("w21 w1 w24 w5", k=3))
        seen.append(store.search("w21 w1 w24 w5", k=3, filter={"v": 2}))

    monkeypatch.setattr(qdrant_module, "UPSERT_ROWS", 4)
    client.fail_on, client.before_failing, client.upserts = 2, read_midway, 0
    with pytest.raises(ConnectionError):
        store.add(new_texts, [{"v": 2}] * 3, ids)
    assert client.upserts == 2
    midway, midway_new = seen
    assert {hit.id for hit in midway} == set(ids) and midway_new == []
    for hit in midway + store.search("w21 w1 w24 w5", k=3):
        assert hit.metadata == {"v": 1} and hit.text in old_texts
    assert store.search("w21 w24", filter={"v": 2}) == []
    assert store.get(ids) == [Record(i, t, {"v": 1}) for i, t in zip(ids, old_texts, strict=True)]
    after = store.get_vectors(ids)
    for value in ids:
        assert len(after[value]) == len(old_vectors[value])
        for window, old in zip(after[value], old_vectors[value], strict=True):
            np.testing.assert_array_equal(window, old)
    assert points(store) == stored

    client.fail_on = 0
    store.add(new_texts, [{"v": 2}] * 3, ids)
    assert store.get(ids) == [Record(i, t, {"v": 2}) for i, t in zip(ids, new_texts, strict=True)]
    assert all(hit.metadata == {"v": 2} for hit in store.search("w21 w1 w24 w5", k=3))
    assert points(store) == sum(len(w) for w in store.get_vectors(ids).values())


def write_legacy_collection(client: QdrantClient, model: FakeColBERT, name: str) -> None:
    """A collection as QdrantStore wrote it before first stages and versions."""
    import uuid

    from qdrant_client import models

    client.create_collection(
        name,
        vectors_config=models.VectorParams(
            size=model.dim,
            distance=models.Distance.DOT,
            multivector_config=models.MultiVectorConfig(
                comparator=models.MultiVectorComparator.MAX_SIM
            ),
        ),
    )
    windows = model.encode_document_chunks(TEXTS[:20], 8, 2)
    namespace = uuid.uuid5(uuid.NAMESPACE_DNS, "maxsim.stores.qdrant")
    points = []
    for document_id, text, metadata, document in zip(
        IDS[:20], TEXTS[:20], METADATAS[:20], windows, strict=True
    ):
        for chunk, vectors in enumerate(document):
            payload = {"document_id": document_id, "chunk": chunk, "metadata": metadata}
            if chunk == 0:
                payload["text"] = text
            points.append(
                models.PointStruct(
                    id=str(uuid.uuid5(namespace, f"{document_id}#{chunk}")),
                    vector=vectors.tolist(),
                    payload=payload,
                )
            )
    client.upsert(name, points)


def test_old_collections_are_detected_and_migrated(model: FakeColBERT) -> None:
    client = QdrantClient(":memory:")
    write_legacy_collection(client, model, "old")
    with pytest.raises(ValueError, match=r"older QdrantStore.*QdrantStore.migrate\("):
        QdrantStore(model, client, "old")
    store = QdrantStore.migrate(model, client, "old", "new", first_stage="mean", candidates=ALL)
    reference = LateInteractionStore(model, dtype="float32", chunk_size=8, chunk_overlap=2)
    reference.add(TEXTS[:20], METADATAS[:20], IDS[:20])
    assert len(store) == 20 and client.collection_exists("old")
    for query in QUERIES:
        assert_same_hits(reference.search(query, ALL), store.search(query, 5), 5, chunks=False)
    with pytest.raises(ValueError, match="not an older QdrantStore collection"):
        QdrantStore.migrate(model, client, "new", "newer")


def test_save_and_load_reconnect(model: FakeColBERT, tmp_path: Path) -> None:
    import json

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    store = QdrantStore(
        model, client, "kept", first_stage="mean", candidates=200, chunk_size=8, chunk_overlap=2
    )
    store.add(TEXTS[:15], METADATAS[:15], IDS[:15])
    before = store.search_many(QUERIES, k=15)
    store.save(tmp_path / "saved")
    manifest = json.loads((tmp_path / "saved" / "store.json").read_text())
    assert manifest["format"] == "maxsim.QdrantStore" and manifest["format_version"] == 1
    assert manifest["collection_name"] == "kept"
    assert manifest["connection"]["path"] == str((tmp_path / "qdrant").resolve())
    loaded = QdrantStore.load(tmp_path / "saved", model, client=client)
    assert (loaded.candidates, loaded.chunk_size, loaded.first_stage) == (200, 8, MeanPooling())
    client.close()

    loaded = QdrantStore.load(tmp_path / "saved", model)
    assert len(loaded) == 15
    for expected, hits in zip(before, loaded.search_many(QUERIES, k=5), strict=True):
        assert_same_hits(expected, hits, 5, tolerance=1e-6, chunks=False)
    other = FakeColBERT(dim=16)
    other.name = "another-model"
    with pytest.raises(ValueError, match="force=True"):
        QdrantStore.load(tmp_path / "saved", other, client=loaded.client)
    assert QdrantStore.load(tmp_path / "saved", other, force=True, client=loaded.client)
    with pytest.raises(ValueError, match="dim 16"):
        QdrantStore.load(tmp_path / "saved", FakeColBERT(dim=8), force=True)
    with pytest.raises(TypeError, match="pass one"):
        QdrantStore.load(tmp_path / "saved", model, client=loaded.client, timeout=3)
    with pytest.raises(ValueError, match=r"use a Qdrant server.*path="):
        QdrantStore(model, QdrantClient(":memory:"), "gone").save(tmp_path / "memory")
    assert not (tmp_path / "memory" / "store.json").exists()
    LateInteractionStore(model).save(tmp_path / "exact")
    with pytest.raises(
        ValueError, match=r"'maxsim\.LateInteractionStore' store, not 'maxsim\.QdrantStore'"
    ):
        QdrantStore.load(tmp_path / "exact", model)
    with pytest.raises(FileNotFoundError, match=r"store\.json is missing"):
        QdrantStore.load(tmp_path / "nothing", model)
    loaded.client.close()


LIST_FILTERS: list[dict[str, Any]] = [
    {"t": "x"},
    {"t": {"$in": ["y", "z"]}},
    {"t": {"$ne": "x"}},
    {"t": {"$nin": ["x"]}},
    {"t": {"$exists": True}},
    {"t": {"$exists": False}},
    {"n": {"$gte": 2}},
]


def test_get_where_and_delete_where_follow_search(model: FakeColBERT) -> None:
    texts = ["a b", "a c", "a d", "a e", "a f"]
    metadatas: list[dict[str, Any]] = [
        {"t": []},
        {"t": None},
        {"t": ["x", "y"]},
        {"t": "x", "n": 3},
        {"n": [1, 2]},
    ]
    ids = ["empty", "null", "list", "plain", "numbers"]
    client = QdrantClient(":memory:")
    store = QdrantStore(model, client, "where", first_stage="mean", chunk_size=4, chunk_overlap=1)
    store.add([t + " g h i j k" for t in texts], metadatas, ids)
    assert {record.id for record in store.get_where(None)} == set(ids)
    for number, filter in enumerate(LIST_FILTERS):
        searched = sorted(hit.id for hit in store.search("a", ALL, filter=filter))
        assert 0 < len(searched) < len(ids), filter
        records = store.get_where(filter)
        assert sorted(record.id for record in records) == searched, filter
        assert records == store.get([record.id for record in records])
        copy = QdrantStore(model, client, f"copy-{number}", first_stage="mean")
        copy.add(texts, metadatas, ids)
        assert copy.delete_where(filter) == len(searched)
        assert sorted(record.id for record in copy) == sorted(set(ids) - set(searched)), filter
        assert copy.search("a", ALL, filter=filter) == []
    with pytest.raises(ValueError, match="clear"):
        store.delete_where(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict filter"):
        store.get_where(lambda metadata: True)
    assert store.delete_where({"t": "nothing-has-this"}) == 0
    assert len(store) == len(ids)


def test_get_vectors_returns_the_stored_windows(model: FakeColBERT, store: QdrantStore) -> None:
    vectors = model.encode_document_chunks(TEXTS[:5], 4, 1)
    store.add_embeddings(vectors, ids=IDS[:5])
    found = store.get_vectors([IDS[3], "unknown", IDS[0]])
    assert list(found) == [IDS[3], IDS[0]]
    for value, position in ((IDS[3], 3), (IDS[0], 0)):
        assert len(found[value]) == len(vectors[position]) > 1
        for window, expected in zip(found[value], vectors[position], strict=True):
            assert window.dtype == np.float32
            np.testing.assert_allclose(window, expected, atol=1e-6)
    assert store.get_vectors([]) == {}
