"""LateInteractionStore: search against brute force, upserts, deletes, persistence, threads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import maxsim
from maxsim import scoring
from maxsim.stores import persistence
from maxsim.testing import FakeColBERT

WORDS = ["apple", "pear", "river", "stone", "cloud", "green", "red", "fast", "slow", "city"]
MODEL = FakeColBERT(dim=16)


def brute_force(model: FakeColBERT, documents: dict[str, str], query: str) -> dict[str, float]:
    [q] = model.encode_queries([query])
    ids = list(documents)
    if not ids:
        return {}
    row = maxsim.scores([q], model.encode_documents([documents[i] for i in ids]))[0]
    return dict(zip(ids, row.tolist(), strict=True))


def assert_matches_brute_force(
    store: maxsim.LateInteractionStore, documents: dict[str, str], query: str, k: int
) -> None:
    expected = brute_force(store.model, documents, query)
    hits = store.search(query, k=k)
    assert len(hits) == min(k, len(documents))
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.id], abs=2e-2)
    ranked = sorted(expected.values(), reverse=True)
    np.testing.assert_allclose([hit.score for hit in hits], ranked[: len(hits)], atol=2e-2)


def test_search_upsert_delete_get() -> None:
    store = maxsim.LateInteractionStore(MODEL)
    ids = store.add(
        ["red apple", "green pear", "red river"], metadatas=[{"n": 1}, {"n": 2}, {"n": 3}]
    )
    assert len(ids) == 3 and len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
    assert [hit.id for hit in store.search("pear", k=1)] == [ids[1]]
    store.add(["pear pear"], ids=[ids[0]])
    assert len(store) == 3
    assert store.get([ids[0]])[0].text == "pear pear"
    assert store.get([ids[0]])[0].metadata == {}
    assert store.delete([ids[1], "unknown", ids[1]]) == 1
    assert [r.id for r in store.get(["unknown", ids[2], ids[0]])] == [ids[2], ids[0]]
    assert [r.id for r in store] == [ids[2], ids[0]]
    store.clear()
    assert len(store) == 0 and store.search("pear") == []


def test_ties_keep_insertion_order_and_k_beyond_size() -> None:
    store = maxsim.LateInteractionStore(MODEL, dtype="float32")
    store.add(["same words", "other", "same words", "same words"], ids=["x", "y", "z", "w"])
    hits = store.search("same words", k=10)
    assert [hit.id for hit in hits] == ["x", "z", "w", "y"]
    assert hits[0].normalized_score == pytest.approx(hits[0].score / 2)
    store.add(["same words"], ids=["x"])
    assert [hit.id for hit in store.search("same words", k=3)] == ["z", "w", "x"]


def test_results_are_copies() -> None:
    store = maxsim.LateInteractionStore(MODEL)
    store.add(["red apple"], metadatas=[{"tags": ["a"]}], ids=["a"])
    store.search("apple")[0].metadata["tags"].append("changed")
    store.get(["a"])[0].metadata["tags"].append("changed")
    assert store.get(["a"])[0].metadata == {"tags": ["a"]}


FILTERS: list[Any] = [
    {"color": "red"},
    {"color": {"$eq": "red"}},
    {"color": {"$ne": "red"}},
    {"size": {"$gt": 2}},
    {"size": {"$gte": 2}},
    {"size": {"$lt": 3}},
    {"size": {"$lte": 3, "$gt": 1}},
    {"color": {"$in": ["red", "blue"]}},
    {"color": {"$nin": ["red"]}},
    {"rare": {"$exists": True}},
    {"rare": {"$exists": False}},
    {"$or": [{"color": "blue"}, {"size": {"$gte": 4}}]},
    {"$and": [{"color": "red"}, {"$or": [{"size": 1}, {"rare": {"$exists": True}}]}]},
    {"color": "red", "size": 3},
    lambda metadata: metadata.get("size", 0) % 2 == 0,
]


def expected_match(filter: Any, metadata: dict[str, Any]) -> bool:
    """A plain-Python reading of the filter grammar, written independently of maxsim.filters."""
    if callable(filter):
        return bool(filter(metadata))
    results = []
    for key, condition in filter.items():
        if key == "$and":
            results.append(all(expected_match(part, metadata) for part in condition))
        elif key == "$or":
            results.append(any(expected_match(part, metadata) for part in condition))
        elif isinstance(condition, dict):
            results.append(
                all(holds(op, key, target, metadata) for op, target in condition.items())
            )
        else:
            results.append(key in metadata and metadata[key] == condition)
    return all(results)


def holds(operator: str, key: str, target: Any, metadata: dict[str, Any]) -> bool:
    present, value = key in metadata, metadata.get(key)
    if operator == "$exists":
        return present == target
    if operator in ("$ne", "$nin"):
        return not present or (value != target if operator == "$ne" else value not in target)
    comparisons = {
        "$eq": lambda: value == target,
        "$gt": lambda: value > target,
        "$gte": lambda: value >= target,
        "$lt": lambda: value < target,
        "$lte": lambda: value <= target,
        "$in": lambda: value in target,
    }
    return present and comparisons[operator]()


@pytest.mark.parametrize("filter", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_filters_select_before_scoring(filter: Any) -> None:
    rng = np.random.default_rng(3)
    metadatas = [
        {"color": str(rng.choice(["red", "blue", "green"])), "size": int(rng.integers(1, 5))}
        | ({"rare": True} if i % 5 == 0 else {})
        for i in range(40)
    ]
    texts = [" ".join(rng.choice(WORDS, 4)) for _ in range(40)]
    store = maxsim.LateInteractionStore(MODEL)
    store.add(texts, metadatas=metadatas, ids=[str(i) for i in range(40)])
    wanted = {str(i) for i, m in enumerate(metadatas) if expected_match(filter, m)}
    hits = store.search("red apple river", k=100, filter=filter)
    assert {hit.id for hit in hits} == wanted
    top = store.search("red apple river", k=3, filter=filter)
    assert [hit.id for hit in top] == [hit.id for hit in hits[:3]]


@pytest.mark.parametrize(
    ("filter", "error", "message"),
    [
        ({"color": {"$regex": "r.*"}}, ValueError, r"unknown operator '\$regex'"),
        ({"$not": {"color": "red"}}, ValueError, r"unknown operator '\$not'"),
        ({"color": {"$in": "red"}}, ValueError, r"\$in takes a list"),
        ({"$or": {"color": "red"}}, ValueError, r"\$or takes a list"),
        (["color"], TypeError, "filter must be a dict or a callable"),
        ({1: "red"}, TypeError, "filter keys must be strings"),
    ],
)
def test_bad_filters(filter: Any, error: type[Exception], message: str) -> None:
    store = maxsim.LateInteractionStore(MODEL)
    with pytest.raises(error, match=message):
        store.search("apple", filter=filter)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.add(["a", "b"], ids=["1"]), ValueError, "ids has 1 items but there are 2"),
        (lambda s: s.add(["a", "b"], ids=["1", "1"]), ValueError, r"ids\[1\] repeats '1'"),
        (lambda s: s.add(["a"], metadatas=[{}, {}]), ValueError, "metadatas has 2 items"),
        (lambda s: s.add(["a"], metadatas=["x"]), TypeError, r"metadatas\[0\] must be a dict"),
        (
            lambda s: s.add(["a"], metadatas=[{"when": object()}]),
            ValueError,
            r"metadatas\[0\] cannot be stored as JSON",
        ),
        (
            lambda s: s.add(["a"], metadatas=[{1: "int key"}]),
            ValueError,
            r"metadatas\[0\] does not survive JSON",
        ),
        (
            lambda s: s.add(["a"], metadatas=[{"x": float("nan")}]),
            ValueError,
            "cannot be stored as JSON",
        ),
        (lambda s: s.add(["a", None]), TypeError, r"texts\[1\] must be a string"),
        (lambda s: s.add([""]), ValueError, r"texts\[0\] is empty"),
        (lambda s: s.add(["a"], ids=[3]), TypeError, r"ids\[0\] must be a string"),
        (lambda s: s.add(["a"], ids=[""]), ValueError, r"ids\[0\] is empty"),
        (
            lambda s: s.add_embeddings([np.ones((2, 8))]),
            ValueError,
            r"embeddings\[0\]\[0\] has dim 8 but the store's model has dim 16",
        ),
        (
            lambda s: s.add_embeddings([np.ones((0, 16))]),
            ValueError,
            r"embeddings\[0\]\[0\] has no rows",
        ),
        (lambda s: s.add_embeddings([np.full((1, 16), np.nan)]), ValueError, "NaN"),
        (
            lambda s: s.add_embeddings([np.ones((1, 16))], texts=["a", "b"]),
            ValueError,
            "texts has 2 items",
        ),
        (lambda s: s.delete("old"), TypeError, "wrap a single id in a list"),
        (lambda s: s.search("a", k=0), ValueError, "k must be at least 1"),
        (lambda s: s.search_embeddings([np.ones((2, 4))]), ValueError, r"queries\[0\] has dim 4"),
        (
            lambda s: s.search_embeddings([np.ones((2, 16)), np.full((2, 16), np.nan)]),
            ValueError,
            r"queries\[1\] contains NaN or infinite values",
        ),
        (
            lambda s: s.search_embeddings([np.full((1, 16), -np.inf)]),
            ValueError,
            r"queries\[0\] contains NaN or infinite values",
        ),
    ],
)
def test_bad_inputs_store_nothing(call: Any, error: type[Exception], message: str) -> None:
    store = maxsim.LateInteractionStore(MODEL)
    store.add(["kept document"], ids=["kept"])
    with pytest.raises(error, match=message):
        call(store)
    assert [r.id for r in store] == ["kept"]
    assert [hit.id for hit in store.search("kept document")] == ["kept"]


def test_bad_constructor_arguments() -> None:
    with pytest.raises(TypeError, match="model must be a maxsim encoder"):
        maxsim.LateInteractionStore("jinaai/jina-colbert-v2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dtype must be 'float16' or 'float32'"):
        maxsim.LateInteractionStore(MODEL, dtype="int8")
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        maxsim.LateInteractionStore(MODEL, chunk_size=0)
    with pytest.raises(ValueError, match=r"chunk_overlap must be in 0\.\.15 for chunk_size=16"):
        maxsim.LateInteractionStore(MODEL, chunk_size=16)
    with pytest.raises(ValueError, match="chunk_size=600 exceeds document_length=512"):
        maxsim.LateInteractionStore(MODEL, chunk_size=600)


def test_add_embeddings_and_search_embeddings() -> None:
    store = maxsim.LateInteractionStore(MODEL, dtype="float32")
    documents = MODEL.encode_documents(["red apple", "blue river"])
    store.add_embeddings(documents, ids=["a", "b"])
    assert store.get(["a"])[0].text is None
    [query] = MODEL.encode_queries(["river"])
    assert [hit.id for hit in store.search_embeddings([query], k=1)[0]] == ["b"]
    assert store.search_many(["apple", "river"], k=1)[0][0].id == "a"


def test_chunking_finds_a_needle_late_in_a_long_document() -> None:
    model = FakeColBERT(dim=32, query_length=4, document_length=64)
    filler = " ".join(WORDS[i % 5] for i in range(300))
    long_document = f"{filler} zebra migration"
    distractor = "zebra"
    plain = maxsim.LateInteractionStore(model)
    plain.add([long_document, distractor], ids=["long", "short"])
    chunked = maxsim.LateInteractionStore(model, chunk_size=64, chunk_overlap=8)
    chunked.add([long_document, distractor], ids=["long", "short"])
    assert plain.search("zebra migration", k=1)[0].id == "short"
    hit = chunked.search("zebra migration", k=1)[0]
    assert (
        hit.id == "long"
        and hit.chunk == len(model.encode_document_chunks([long_document], 64, 8)[0]) - 1
    )
    assert hit.text == long_document
    assert len(chunked) == 2


def test_memory_is_compact_and_does_not_grow_under_churn() -> None:
    store = maxsim.LateInteractionStore(MODEL)
    rng = np.random.default_rng(0)
    store.add([" ".join(rng.choice(WORDS, 6)) for _ in range(50)], ids=[str(i) for i in range(50)])
    usage = store.memory_usage()
    assert usage.tokens == 300 and usage.documents == 50
    assert usage.bytes_per_token <= 2 * MODEL.dim + 8
    for round_ in range(20):
        store.delete([str(i) for i in range(10)])
        store.add(
            [" ".join(rng.choice(WORDS, 6)) for _ in range(10)], ids=[str(i) for i in range(10)]
        )
        assert len(store) == 50, round_
    assert store.memory_usage().allocated_bytes <= 3 * usage.allocated_bytes


def test_save_load_round_trip(tmp_path: Path) -> None:
    store = maxsim.LateInteractionStore(MODEL, chunk_size=6, chunk_overlap=2)
    texts = ["red apple on a green stone by the river", "cloud city", "fast river stone"]
    store.add(texts, metadatas=[{"i": i, "tags": ["x"]} for i in range(3)], ids=["a", "b", "c"])
    store.delete(["b"])
    store.save(tmp_path / "store")
    loaded = maxsim.LateInteractionStore.load(tmp_path / "store", model=MODEL)
    assert [r.id for r in loaded] == ["a", "c"] and loaded.chunk_size == 6
    for query in ["river stone", "apple", "cloud"]:
        assert loaded.search(query) == store.search(query)
    store.save(tmp_path / "store")
    assert len(list((tmp_path / "store").glob("vectors-*.safetensors"))) == 1


def test_load_refuses_another_model_unless_forced(tmp_path: Path) -> None:
    store = maxsim.LateInteractionStore(MODEL)
    store.add(["red apple"], ids=["a"])
    store.save(tmp_path)
    with pytest.raises(ValueError, match="saved with model 'fake-colbert-16'"):
        maxsim.LateInteractionStore.load(tmp_path, model=FakeColBERT(dim=32))
    other = FakeColBERT(dim=16)
    other.name = "another-model"
    with pytest.raises(ValueError, match="pass force=True"):
        maxsim.LateInteractionStore.load(tmp_path, model=other)
    assert len(maxsim.LateInteractionStore.load(tmp_path, model=other, force=True)) == 1


def corrupt(folder: Path, how: str) -> None:
    manifest = folder / persistence.MANIFEST
    [vectors] = folder.glob("vectors-*.safetensors")
    if how == "truncated vectors":
        vectors.write_bytes(vectors.read_bytes()[:-50])
    elif how == "garbage vectors":
        vectors.write_bytes(b"\x00" * 64)
    elif how == "truncated manifest":
        manifest.write_text(manifest.read_text()[:40])
    elif how == "missing vectors":
        vectors.unlink()
    elif how == "inconsistent manifest":
        data = json.loads(manifest.read_text())
        data["records"].pop()
        manifest.write_text(json.dumps(data))
    elif how == "missing settings":
        data = json.loads(manifest.read_text())
        del data["settings"]["dtype"]
        manifest.write_text(json.dumps(data))
    elif how == "NaN in metadata":
        text = manifest.read_text()
        manifest.write_text(text.replace('"metadata": {}', '"metadata": {"x": NaN}', 1))
    elif how == "metadata not a dict":
        data = json.loads(manifest.read_text())
        data["records"][0]["metadata"] = ["x"]
        manifest.write_text(json.dumps(data))
    elif how == "future version":
        data = json.loads(manifest.read_text())
        data["format_version"] = 99
        manifest.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("how", "error", "message"),
    [
        ("truncated vectors", ValueError, r"vectors-.*\.safetensors is corrupt or truncated"),
        ("garbage vectors", ValueError, r"vectors-.*\.safetensors is corrupt or truncated"),
        ("truncated manifest", ValueError, r"store\.json is corrupt or truncated"),
        ("missing vectors", FileNotFoundError, r"vectors-.*\.safetensors named by .* is missing"),
        ("inconsistent manifest", ValueError, "a window belongs to no stored document"),
        ("future version", ValueError, "format version 99"),
        ("missing settings", ValueError, r"store\.json lacks settings \['dtype'\]"),
        ("NaN in metadata", ValueError, r"store\.json is corrupt or truncated: NaN"),
        ("metadata not a dict", ValueError, r"records\[0\]\.metadata is not a dict"),
    ],
)
def test_corrupt_files_raise_clear_errors(
    tmp_path: Path, how: str, error: type[Exception], message: str
) -> None:
    store = maxsim.LateInteractionStore(MODEL)
    store.add(["red apple", "blue river"], ids=["a", "b"])
    store.save(tmp_path)
    corrupt(tmp_path, how)
    with pytest.raises(error, match=message):
        maxsim.LateInteractionStore.load(tmp_path, model=MODEL)


def test_missing_store_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no saved store"):
        maxsim.LateInteractionStore.load(tmp_path, model=MODEL)


def test_interrupted_save_leaves_the_previous_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = maxsim.LateInteractionStore(MODEL)
    store.add(["red apple"], ids=["a"])
    store.save(tmp_path)
    store.add(["blue river"], ids=["b"])

    def crash(path: Path, text: str) -> None:
        raise KeyboardInterrupt("power cut before the manifest was replaced")

    monkeypatch.setattr(persistence, "write_atomically", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(tmp_path)
    monkeypatch.undo()
    loaded = maxsim.LateInteractionStore.load(tmp_path, model=MODEL)
    assert [r.id for r in loaded] == ["a"]
    store.save(tmp_path)
    assert [r.id for r in maxsim.LateInteractionStore.load(tmp_path, model=MODEL)] == ["a", "b"]


def test_searches_see_consistent_snapshots_while_writers_run(
    writer_and_readers: Callable[..., list],
) -> None:
    store = maxsim.LateInteractionStore(MODEL)
    rng = np.random.default_rng(1)
    texts = {f"d{i}": " ".join(rng.choice(WORDS, 5)) for i in range(200)}
    ever_stored: set[str] = set()

    def write() -> None:
        for step in range(60):
            batch = [f"d{(step * 7 + j) % 200}" for j in range(5)]
            ever_stored.update(batch)
            store.add([texts[i] for i in batch], ids=batch)
            store.delete([f"d{(step * 3) % 200}"])

    def read() -> None:
        hits = store.search("apple river stone", k=20)
        ids = [hit.id for hit in hits]
        assert len(ids) == len(set(ids))
        assert set(ids) <= ever_stored | set(texts)
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)
        assert len(list(store)) <= 200

    errors = writer_and_readers(write, read)
    assert not errors, errors
    assert len(store) == len({r.id for r in store})


class StoreMachine(RuleBasedStateMachine):
    """Random adds, upserts, deletes, searches and save/load against a plain dict."""

    def __init__(self) -> None:
        super().__init__()
        self.store = maxsim.LateInteractionStore(MODEL, dtype="float32")
        self.documents: dict[str, str] = {}
        self.folder = Path(__import__("tempfile").mkdtemp())

    @rule(
        ids=st.lists(
            st.sampled_from([f"id{i}" for i in range(12)]), min_size=1, max_size=4, unique=True
        ),
        words=st.lists(
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=6), min_size=4, max_size=4
        ),
    )
    def add(self, ids: list[str], words: list[list[str]]) -> None:
        texts = [" ".join(w) for w in words[: len(ids)]]
        self.store.add(texts, ids=ids)
        self.documents.update(zip(ids, texts, strict=True))

    @rule(ids=st.lists(st.sampled_from([f"id{i}" for i in range(14)]), max_size=4))
    def delete(self, ids: list[str]) -> None:
        removed = self.store.delete(ids)
        assert removed == len({i for i in ids if i in self.documents})
        for i in ids:
            self.documents.pop(i, None)

    @rule(query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), k=st.integers(1, 15))
    def search(self, query: list[str], k: int) -> None:
        assert_matches_brute_force(self.store, self.documents, " ".join(query), k)

    @rule()
    def save_and_load(self) -> None:
        self.store.save(self.folder)
        self.store = maxsim.LateInteractionStore.load(self.folder, model=MODEL)

    @invariant()
    def same_documents(self) -> None:
        assert len(self.store) == len(self.documents)
        assert {r.id: r.text for r in self.store} == self.documents


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_search_blocks_queries_and_scores_a_segment_longer_than_a_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    documents = [rng.standard_normal((rows, 16)).astype(np.float32) for rows in (100, 3, 7, 20)]
    queries = [rng.standard_normal((5, 16)).astype(np.float32) for _ in range(12)]
    store = maxsim.LateInteractionStore(MODEL, dtype="float32")
    store.add_embeddings(documents, ids=["long", "a", "b", "c"])
    monkeypatch.setattr(scoring, "QUERY_ROWS_PER_BLOCK", 8)
    monkeypatch.setattr(scoring, "SEGMENT_BLOCK_ROWS", 16)
    stacked_rows: list[int] = []
    stack = scoring._stack

    def recording_stack(items: list[Any], device: Any) -> Any:
        stacked_rows.append(sum(item.shape[0] for item in items))
        return stack(items, device)

    monkeypatch.setattr(scoring, "_stack", recording_stack)
    results = store.search_embeddings(queries, k=4)
    assert stacked_rows and max(stacked_rows) <= 8
    expected = maxsim.scores(queries, documents)
    ids = ["long", "a", "b", "c"]
    for row, hits in zip(expected, results, strict=True):
        assert {hit.id: hit.score for hit in hits} == pytest.approx(
            dict(zip(ids, row.tolist(), strict=True)), abs=1e-4
        )
