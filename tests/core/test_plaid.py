"""PLAIDStore: exactness when nothing is pruned, small stores, training, filters, bad input,
threads, and persistence (round trips, memory-mapped loads, corrupt files, safe saves)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from safetensors.numpy import load_file, save_file

import maxsim
from maxsim.stores import persistence
from maxsim.stores.codec import ResidualCodec, centroid_count
from maxsim.testing import FakeColBERT

DIM = 16
MODEL = FakeColBERT(dim=DIM)
CENTRES = np.random.default_rng(123).standard_normal((40, DIM)).astype(np.float32)


def documents(seed: int, count: int, low: int = 4, high: int = 12) -> list[np.ndarray]:
    """Clustered token vectors: each row a noisy copy of one of 40 term centres."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        rows = CENTRES[rng.integers(0, len(CENTRES), int(rng.integers(low, high + 1)))]
        noisy = rows + 0.2 * rng.standard_normal(rows.shape).astype(np.float32)
        result.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    return result


def exhaustive(**options: object) -> maxsim.PLAIDStore:
    """A store that probes every centroid and prunes nothing once trained."""
    settings = {"nprobe": 10_000, "candidates": None, "rerank": None, "min_train_tokens": 300}
    return maxsim.PLAIDStore(MODEL, **{**settings, **options})  # type: ignore[arg-type]


def decompressed_exact(store: maxsim.PLAIDStore) -> maxsim.LateInteractionStore:
    """The exact store over `store`'s decompressed vectors, same ids and metadata."""
    records = list(store)
    vectors = store.get_vectors([record.id for record in records])
    exact = maxsim.LateInteractionStore(MODEL, dtype="float32")
    exact.add_embeddings(
        [vectors[record.id] for record in records],
        ids=[record.id for record in records],
        metadatas=[record.metadata for record in records],
    )
    return exact


def assert_same_hits(got: list[maxsim.Hit], expected: list[maxsim.Hit]) -> None:
    assert [hit.id for hit in got] == [hit.id for hit in expected]
    assert [hit.chunk for hit in got] == [hit.chunk for hit in expected]
    np.testing.assert_allclose(
        [hit.score for hit in got], [hit.score for hit in expected], rtol=1e-5, atol=1e-5
    )


def trained_store(count: int = 120, **options: object) -> maxsim.PLAIDStore:
    store = exhaustive(**options)
    store.add_embeddings(
        documents(0, count),
        ids=[f"d{i}" for i in range(count)],
        metadatas=[{"group": i % 5, "i": i} for i in range(count)],
    )
    assert store.trained
    return store


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_every_centroid_probed_equals_exact_maxsim_on_decompressed_vectors(nbits: int) -> None:
    store = trained_store(nbits=nbits)
    exact = decompressed_exact(store)
    queries = [document[:5] for document in documents(7, 6)]
    for got, expected in zip(
        store.search_embeddings(queries, k=7), exact.search_embeddings(queries, k=7), strict=True
    ):
        assert_same_hits(got, expected)
    for got, expected in zip(
        store.search_embeddings(queries, k=4, filter={"group": 2}),
        exact.search_embeddings(queries, k=4, filter={"group": 2}),
        strict=True,
    ):
        assert_same_hits(got, expected)


def test_chunk_windows_match_the_exact_store() -> None:
    words = [
        "red",
        "apple",
        "green",
        "river",
        "stone",
        "cloud",
        "fast",
        "city",
        "blue",
        "sky",
        "tall",
        "tree",
    ]
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(words, int(rng.integers(3, 25)))) for _ in range(60)]
    ids = [f"t{i}" for i in range(60)]
    exact = maxsim.LateInteractionStore(MODEL, dtype="float32", chunk_size=6, chunk_overlap=2)
    exact.add(texts, ids=ids)
    small = maxsim.PLAIDStore(MODEL, chunk_size=6, chunk_overlap=2)
    small.add(texts, ids=ids)
    assert not small.trained
    for query in ["apple river", "blue sky tree", "fast city"]:
        assert_same_hits(small.search(query, k=5), exact.search(query, k=5))
    store = exhaustive(chunk_size=6, chunk_overlap=2, min_train_tokens=200)
    store.add(texts, ids=ids)
    assert store.trained
    over_decompressed = maxsim.LateInteractionStore(MODEL, dtype="float32")
    vectors = store.get_vectors(ids)
    over_decompressed.add_embeddings([vectors[i] for i in ids], ids=ids)
    small_vectors = small.get_vectors(ids)
    assert [len(vectors[i]) for i in ids] == [len(small_vectors[i]) for i in ids]
    for query in ["apple river", "blue sky tree", "fast city"]:
        [encoded] = MODEL.encode_queries([query])
        expected = over_decompressed.search_embeddings([encoded], k=5)[0]
        assert_same_hits(store.search(query, k=5), expected)


def test_small_store_searches_exactly_until_it_trains_by_itself() -> None:
    store = maxsim.PLAIDStore(MODEL, min_train_tokens=400)
    exact = maxsim.LateInteractionStore(MODEL, dtype="float32")
    first = documents(1, 2)
    for target in (store, exact):
        target.add_embeddings(first, ids=["a", "b"])
    assert not store.trained and len(store) == 2
    assert_same_hits(store.search_embeddings([first[0]])[0], exact.search_embeddings([first[0]])[0])
    more = documents(2, 80)
    store.add_embeddings(more, ids=[f"m{i}" for i in range(80)])
    assert store.trained
    tokens = sum(len(d) for d in first + more)
    assert len(store._index.codec.centroids) == centroid_count(tokens)
    late = documents(3, 1)[0]
    store.add_embeddings([late], ids=["late"])
    assert store.search_embeddings([late], k=1)[0][0].id == "late"
    assert {record.id for record in store} == {"a", "b", "late", *(f"m{i}" for i in range(80))}


def test_store_rebuilds_once_grown_and_keeps_every_document() -> None:
    store = exhaustive(rebuild_factor=2.0)
    store.add_embeddings(documents(4, 60), ids=[f"a{i}" for i in range(60)])
    trained_for = store._index.trained_tokens
    store.add_embeddings(documents(5, 200), ids=[f"b{i}" for i in range(200)])
    assert store._index.trained_tokens >= 2 * trained_for
    assert len(store) == 260
    exact = decompressed_exact(store)
    query = documents(6, 1)[0]
    assert_same_hits(store.search_embeddings([query])[0], exact.search_embeddings([query])[0])


def test_failed_rebuild_leaves_the_store_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    store = trained_store()
    query = documents(8, 1)[0]
    before = store.search_embeddings([query])[0]

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("out of memory while training")

    monkeypatch.setattr(ResidualCodec, "train", broken)
    with pytest.raises(MemoryError):
        store.rebuild()
    assert store.search_embeddings([query])[0] == before
    store.rebuild_factor = 1.01
    store.add_embeddings(documents(9, 5), ids=[f"n{i}" for i in range(5)])
    assert len(store) == 125


def test_deletes_and_upserts_take_effect_at_once() -> None:
    store = trained_store(count=80)
    target = documents(0, 80)[10]
    assert store.search_embeddings([target], k=1)[0][0].id == "d10"
    assert store.delete(["d10", "missing"]) == 1
    assert "d10" not in [hit.id for hit in store.search_embeddings([target], k=80)[0]]
    replacement = documents(11, 1)[0]
    store.add_embeddings([replacement], ids=["d11"], metadatas=[{"new": True}])
    assert store.search_embeddings([replacement], k=1)[0][0].id == "d11"
    assert store.get(["d11"])[0].metadata == {"new": True}
    assert len(store) == 79
    for _ in range(3):
        store.delete([record.id for record in list(store)[:20]])
    assert len(store) == 19
    assert len(store.search_embeddings([target], k=50)[0]) == 19


@pytest.mark.parametrize(
    "filter_",
    [
        {"group": 3},
        {"i": {"$lt": 12}},
        {"$or": [{"group": 1}, {"i": {"$gte": 100}}]},
        lambda metadata: metadata["i"] % 7 == 0,
    ],
)
def test_filters_against_brute_force(filter_: object) -> None:
    store = trained_store(count=150, nprobe=1, candidates=8, rerank=4)
    exact = decompressed_exact(store)
    queries = [document[:4] for document in documents(12, 5)]
    for query in queries:
        got = store.search_embeddings([query], k=6, filter=filter_)[0]  # type: ignore[arg-type]
        expected = exact.search_embeddings([query], k=150, filter=filter_)[0]  # type: ignore[arg-type]
        allowed = {hit.id for hit in expected}
        assert len(got) == min(6, len(allowed))
        assert {hit.id for hit in got} <= allowed
        scores = {hit.id: hit.score for hit in expected}
        for hit in got:
            assert hit.score == pytest.approx(scores[hit.id], rel=1e-5, abs=1e-5)


def test_few_matching_documents_are_scored_exactly() -> None:
    store = trained_store(count=150, nprobe=1, candidates=4, rerank=16)
    exact = decompressed_exact(store)
    query = documents(13, 1)[0]
    few = {"i": {"$in": [3, 50, 77, 101, 140]}}
    assert_same_hits(
        store.search_embeddings([query], k=5, filter=few)[0],
        exact.search_embeddings([query], k=5, filter=few)[0],
    )


def test_decoded_vectors_are_unit_length_when_the_trained_ones_were() -> None:
    unit = np.concatenate(documents(70, 60))
    codec = ResidualCodec.train(torch.from_numpy(unit), centroids=32, nbits=2)
    decoded = codec.decode(*codec.encode(torch.from_numpy(unit[:50])))
    assert codec.normalized
    np.testing.assert_allclose(decoded.norm(dim=1).numpy(), 1.0, atol=1e-5)
    longer = ResidualCodec.train(torch.from_numpy(unit * 3), centroids=32, nbits=2)
    assert not longer.normalized
    assert (
        abs(
            float(longer.decode(*longer.encode(torch.from_numpy(unit[:50] * 3))).norm(dim=1).mean())
            - 3
        )
        < 0.3
    )


def test_memory_usage_counts_codes_residuals_and_index() -> None:
    store = trained_store()
    usage = store.memory_usage()
    tokens = sum(len(d) for d in documents(0, 120))
    assert usage.documents == 120 and usage.tokens == tokens
    assert usage.vector_bytes == tokens * (2 + DIM * 2 // 8)
    assert usage.index_bytes > 0 and usage.allocated_bytes >= usage.vector_bytes
    exact_usage = maxsim.LateInteractionStore(MODEL)
    exact_usage.add_embeddings(documents(0, 120))
    assert usage.vector_bytes < exact_usage.memory_usage().vector_bytes / 4


def test_get_vectors_returns_each_window_decompressed() -> None:
    store = trained_store()
    vectors = store.get_vectors(["d0", "unknown", "d5"])
    assert list(vectors) == ["d0", "d5"]
    original = documents(0, 6)
    for name, index in (("d0", 0), ("d5", 5)):
        [window] = vectors[name]
        assert window.dtype == np.float32 and window.shape == original[index].shape
        assert np.abs(window - original[index]).max() < 0.5


def test_one_writer_and_three_readers(writer_and_readers: Callable[..., list]) -> None:
    store = maxsim.PLAIDStore(MODEL, min_train_tokens=300, rebuild_factor=2.0)
    batches = [documents(100 + step, 10) for step in range(30)]
    deleted: list[str] = []
    query = documents(99, 1)[0]

    def write() -> None:
        for step, batch in enumerate(batches):
            store.add_embeddings(batch, ids=[f"w{step}-{i}" for i in range(10)])
            store.delete([f"w{step}-0"])
            deleted.append(f"w{step}-0")
            if step % 10 == 9:
                store.rebuild()

    def read() -> None:
        gone = set(deleted)  # deletes that finished before this search began
        hits = store.search_embeddings([query], k=15)[0]
        ids = [hit.id for hit in hits]
        assert len(ids) == len(set(ids)) and not gone.intersection(ids)
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)
        assert len(list(store)) <= 300

    errors = writer_and_readers(write, read)
    assert not errors, errors
    assert store.trained and len(store) == 270
    assert len(store.search_embeddings([query], k=20)[0]) == 20


@pytest.mark.parametrize("nbits", [0, 3, 8, "2", True, None])
def test_nbits_must_be_1_2_or_4(nbits: object) -> None:
    with pytest.raises(ValueError, match="nbits must be 1, 2 or 4"):
        maxsim.PLAIDStore(MODEL, nbits=nbits)  # type: ignore[arg-type]


def test_bad_input_is_refused_and_nothing_is_lost() -> None:
    store = trained_store(count=60)
    query = documents(20, 1)[0]
    before = store.search_embeddings([query])[0]
    with pytest.raises(ValueError, match="dim 8 but the store's model has dim 16"):
        store.add_embeddings([np.ones((3, 8), np.float32)], ids=["d1"])
    poisoned = documents(21, 1)[0].copy()
    poisoned[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        store.add_embeddings([poisoned], ids=["d2"])
    poisoned[1, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        store.search_embeddings([poisoned])
    with pytest.raises(ValueError, match="k must be at least 1"):
        store.search_embeddings([query], k=0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        store.search("apple", k=-1)
    with pytest.raises(ValueError, match=r"sample\[0\] has dim 4"):
        store.train(np.ones((50, 4), np.float32))
    with pytest.raises(ValueError, match="rebuild_factor must be above 1"):
        maxsim.PLAIDStore(MODEL, rebuild_factor=1)
    with pytest.raises(ValueError, match="nprobe must be at least 1"):
        maxsim.PLAIDStore(MODEL, nprobe=0)
    assert len(store) == 60 and store.search_embeddings([query])[0] == before


def test_train_on_a_sample_before_adding() -> None:
    store = exhaustive()
    sample = np.concatenate(documents(30, 100))
    store.train(sample, tokens=50_000)
    assert store.trained and store._index.trained_tokens == 50_000
    store.add_embeddings(documents(31, 40), ids=[f"s{i}" for i in range(40)])
    exact = decompressed_exact(store)
    query = documents(32, 1)[0]
    assert_same_hits(store.search_embeddings([query])[0], exact.search_embeddings([query])[0])


def test_lists_extended_with_new_tokens_equal_lists_built_afresh() -> None:
    store = trained_store()
    for batch in range(3):
        store.add_embeddings(documents(60 + batch, 30), ids=[f"x{batch}-{i}" for i in range(30)])
        store.delete([f"d{batch}"])
        index = store._index
        assert index.listed < index.tokens  # below the relisting threshold: scanned directly
        extended = index.relisted()
        afresh = dataclasses.replace(
            index, listed=0, list_offsets=np.zeros(1, np.int64), list_windows=np.zeros(0, np.int32)
        ).relisted()
        np.testing.assert_array_equal(extended.list_offsets, afresh.list_offsets)
        np.testing.assert_array_equal(extended.list_windows, afresh.list_windows)
        store._index = extended


def filled(trained: bool) -> maxsim.PLAIDStore:
    store = exhaustive(min_train_tokens=300 if trained else 10**6)
    store.add_embeddings(
        documents(40, 90), ids=[f"p{i}" for i in range(90)], metadatas=[{"i": i} for i in range(90)]
    )
    store.delete(["p3"])
    assert store.trained == trained
    return store


@pytest.mark.parametrize("trained", [True, False])
def test_round_trip_keeps_documents_settings_and_results(tmp_path: Path, trained: bool) -> None:
    store = filled(trained)
    store.save(tmp_path)
    loaded = maxsim.PLAIDStore.load(tmp_path, MODEL)
    assert [r.id for r in loaded] == [r.id for r in store] and loaded.trained == trained
    assert (loaded.nprobe, loaded.candidates, loaded.rerank) == (10_000, None, None)
    queries = [document[:5] for document in documents(41, 4)]
    assert loaded.search_embeddings(queries) == store.search_embeddings(queries)
    assert loaded.memory_usage().tokens == store.memory_usage().tokens
    loaded.add_embeddings(documents(42, 3), ids=["p0", "new1", "new2"])
    assert loaded.delete(["p5"]) == 1 and len(loaded) == 90
    loaded.save(tmp_path)
    [arrays_file] = tmp_path.glob("vectors-*.safetensors")
    written = load_file(str(arrays_file))  # safetensors' own reader
    np.testing.assert_array_equal(written["owners"], loaded._index.owners[: len(written["owners"])])
    assert written["codes" if trained else "vectors"].shape[0] == loaded.memory_usage().tokens
    again = maxsim.PLAIDStore.load(tmp_path, MODEL, nprobe=2, rerank=8)
    assert (again.nprobe, again.rerank) == (2, 8) and len(again) == 90
    assert (
        again.search_embeddings(queries, k=3)[0][0].id == store.search_embeddings(queries)[0][0].id
    )


def test_loaded_arrays_are_memory_mapped(tmp_path: Path) -> None:
    filled(True).save(tmp_path)
    index = maxsim.PLAIDStore.load(tmp_path, MODEL)._index
    assert not index.residuals.flags.writeable and not index.codes.flags.writeable


def test_load_refuses_another_model_or_store_class(tmp_path: Path) -> None:
    filled(True).save(tmp_path)
    with pytest.raises(ValueError, match=r"saved with model 'fake-colbert-16' \(dim 16\)"):
        maxsim.PLAIDStore.load(tmp_path, FakeColBERT(dim=32))
    renamed = FakeColBERT(dim=16)
    renamed.name = "other"
    with pytest.raises(ValueError, match="pass force=True"):
        maxsim.PLAIDStore.load(tmp_path, renamed)
    assert len(maxsim.PLAIDStore.load(tmp_path, renamed, force=True)) == 89
    with pytest.raises(ValueError, match=r"holds a 'maxsim\.PLAIDStore' store"):
        maxsim.LateInteractionStore.load(tmp_path, MODEL)
    with pytest.raises(TypeError, match="unknown options"):
        maxsim.PLAIDStore.load(tmp_path, MODEL, dtype="float16")


def rewrite_arrays(folder: Path, change: dict[str, np.ndarray]) -> None:
    [path] = folder.glob("vectors-*.safetensors")
    arrays = dict(load_file(str(path)))
    arrays.update(change)
    save_file(arrays, str(path))


def rewrite_manifest(folder: Path, change: dict) -> None:
    path = folder / persistence.MANIFEST
    manifest = json.loads(path.read_text())
    for key, value in change.items():
        if key == "settings":
            manifest["settings"].update(value)
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))


def corrupt(folder: Path, how: str) -> None:
    [path] = folder.glob("vectors-*.safetensors")
    arrays = load_file(str(path))
    manifest = json.loads((folder / persistence.MANIFEST).read_text())
    if how == "truncated arrays":
        path.write_bytes(path.read_bytes()[:-100])
    elif how == "garbage arrays":
        path.write_bytes(b"\xff" * 200)
    elif how == "trailing bytes":
        path.write_bytes(path.read_bytes() + b"\x00" * 16)
    elif how == "truncated manifest":
        (folder / persistence.MANIFEST).write_text(json.dumps(manifest)[:60])
    elif how == "codes past the centroids":
        codes = arrays["codes"].copy()
        codes[0] = len(arrays["centroids"])
        rewrite_arrays(folder, {"codes": codes})
    elif how == "wrong dtype":
        rewrite_arrays(folder, {"owners": arrays["owners"].astype(np.int64)})
    elif how == "wrong shape":
        rewrite_arrays(folder, {"residuals": arrays["residuals"][:, :2].copy()})
    elif how == "broken lists":
        rewrite_arrays(folder, {"list_offsets": arrays["list_offsets"][::-1].copy()})
    elif how == "missing array":
        del arrays["cutoffs"]
        save_file(dict(arrays), str(path))
    elif how == "missing record":
        rewrite_manifest(folder, {"records": manifest["records"][:-1]})
    elif how == "setting of the wrong type":
        rewrite_manifest(folder, {"settings": {"nprobe": "4"}})
    elif how == "missing setting":
        del manifest["settings"]["nbits"]
        (folder / persistence.MANIFEST).write_text(json.dumps(manifest))
    elif how == "record of the wrong type":
        manifest["records"][0]["metadata"] = ["not", "a", "dict"]
        (folder / persistence.MANIFEST).write_text(json.dumps(manifest))
    elif how == "arrays outside the folder":
        rewrite_manifest(folder, {"vectors_file": "vectors-/../../elsewhere.safetensors"})
    elif how == "future version":
        rewrite_manifest(folder, {"format_version": 7})


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated arrays", r"vectors-\w+\.safetensors is corrupt or truncated"),
        ("garbage arrays", r"vectors-\w+\.safetensors is corrupt or truncated"),
        ("trailing bytes", r"vectors-\w+\.safetensors is corrupt or truncated"),
        ("truncated manifest", r"store\.json is corrupt or truncated"),
        ("codes past the centroids", r"safetensors is inconsistent .* centroid that does not"),
        ("wrong dtype", r"safetensors: array 'owners' is int64"),
        ("wrong shape", r"safetensors is inconsistent .* residuals do not fit dim 16"),
        ("broken lists", r"safetensors is inconsistent .* inverted list offsets"),
        ("missing array", r"safetensors lacks arrays \['cutoffs'\]"),
        ("missing record", r"safetensors is inconsistent .* a window belongs to no stored"),
        ("setting of the wrong type", r"store\.json: setting 'nprobe' has the wrong type"),
        ("missing setting", r"store\.json lacks settings \['nbits'\]"),
        ("record of the wrong type", r"store\.json has malformed records"),
        ("arrays outside the folder", r"store\.json names arrays file 'vectors-/\.\./\.\./"),
        ("future version", r"store\.json has format version 7"),
    ],
)
def test_corrupt_files_are_rejected_naming_the_file(tmp_path: Path, how: str, message: str) -> None:
    filled(True).save(tmp_path)
    corrupt(tmp_path, how)
    with pytest.raises(ValueError, match=message):
        maxsim.PLAIDStore.load(tmp_path, MODEL)


@pytest.mark.parametrize("store_class", [maxsim.PLAIDStore, maxsim.LateInteractionStore])
def test_save_deletes_only_plain_generation_files(tmp_path: Path, store_class: type) -> None:
    folder = tmp_path / "inner" / "store"
    folder.mkdir(parents=True)
    victim = tmp_path / "x"
    victim.write_text("keep me")
    (folder / persistence.MANIFEST).write_text(json.dumps({"vectors_file": "vectors-/../../../x"}))
    store = store_class(MODEL)
    store.add_embeddings(documents(43, 3), ids=["a", "b", "c"])
    store.save(folder)
    assert victim.read_text() == "keep me"
    assert [r.id for r in store_class.load(folder, MODEL)] == ["a", "b", "c"]


def test_missing_folder_and_missing_arrays(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no saved store"):
        maxsim.PLAIDStore.load(tmp_path, MODEL)
    filled(False).save(tmp_path)
    [path] = tmp_path.glob("vectors-*.safetensors")
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"vectors-\w+\.safetensors named by .* is missing"):
        maxsim.PLAIDStore.load(tmp_path, MODEL)


class PLAIDMachine(RuleBasedStateMachine):
    """Adds, upserts, deletes, saves, loads and rebuilds against a dict of id -> vectors.

    The store probes every centroid and prunes nothing, so each search must equal exact
    MaxSim over the decompressed vectors of exactly the documents the dict holds.
    """

    def __init__(self) -> None:
        super().__init__()
        self.store = exhaustive(min_train_tokens=60, rebuild_factor=3.0)
        self.model: dict[str, dict] = {}
        self.folder = Path(tempfile.mkdtemp(prefix="plaid-machine-"))
        self.seed = 0

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def next_documents(self, count: int) -> list[np.ndarray]:
        self.seed += 1
        return documents(1000 + self.seed, count)

    @rule(count=st.integers(1, 12), upsert=st.booleans())
    def add(self, count: int, upsert: bool) -> None:
        known = sorted(self.model)
        ids = [known[i] if upsert and i < len(known) else f"n{self.seed}-{i}" for i in range(count)]
        metadata = [{"seed": self.seed, "even": i % 2 == 0} for i in range(count)]
        self.store.add_embeddings(self.next_documents(count), ids=ids, metadatas=metadata)
        self.model.update(zip(ids, metadata, strict=True))

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.model) or ["none"]), max_size=5))
        expected = len(set(chosen) & set(self.model))
        assert self.store.delete(chosen) == expected
        for value in chosen:
            self.model.pop(value, None)

    @rule(k=st.integers(1, 8), filtered=st.booleans())
    def search(self, k: int, filtered: bool) -> None:
        query = self.next_documents(1)[0][:4]
        where = {"even": True} if filtered else None
        hits = self.store.search_embeddings([query], k=k, filter=where)[0]
        exact = decompressed_exact(self.store)
        assert_same_hits(hits, exact.search_embeddings([query], k=k, filter=where)[0])
        matching = [i for i, m in self.model.items() if not filtered or m["even"]]
        assert len(hits) == min(k, len(matching))

    @rule()
    def save_and_load(self) -> None:
        self.store.save(self.folder)
        self.store = maxsim.PLAIDStore.load(self.folder, MODEL)

    @rule()
    def rebuild(self) -> None:
        self.store.rebuild()

    @invariant()
    def same_documents(self) -> None:
        assert len(self.store) == len(self.model)
        assert {r.id: r.metadata for r in self.store} == self.model


TestPLAIDMachine = PLAIDMachine.TestCase
TestPLAIDMachine.settings = settings(
    max_examples=12, stateful_step_count=10, deadline=None, derandomize=True
)
