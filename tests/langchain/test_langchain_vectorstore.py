"""ColBERTVectorStore beyond the standard suite: scores, relevance, MMR, retrievers, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

import maxsim
from langchain_maxsim import ColBERTVectorStore
from maxsim.testing import FakeColBERT


@pytest.fixture
def vectorstore(fake: FakeColBERT, passages: dict[str, str]) -> ColBERTVectorStore:
    vectorstore = ColBERTVectorStore(model=fake)
    vectorstore.add_texts(
        list(passages.values()),
        [{"key": key, "year": 2020 + i} for i, key in enumerate(passages)],
        ids=list(passages),
    )
    return vectorstore


def test_embeddings_is_none_and_the_model_is_the_stores(
    vectorstore: ColBERTVectorStore, fake: FakeColBERT
) -> None:
    assert vectorstore.embeddings is None
    assert vectorstore.model is fake
    assert isinstance(vectorstore.store, maxsim.LateInteractionStore)


def test_scores_are_raw_maxsim(vectorstore: ColBERTVectorStore, fake: FakeColBERT) -> None:
    query = "capital of France"
    results = vectorstore.similarity_search_with_score(query, k=5)
    texts = [document.page_content for document, _ in results]
    expected = maxsim.scores(fake.encode_queries([query]), fake.encode_documents(texts))[0]
    assert [score for _, score in results] == pytest.approx(expected.tolist(), abs=2e-2)
    assert results[0][0].id == "paris"
    assert results[0][0].metadata == {"key": "paris", "year": 2023}  # no scores added


def test_relevance_scores_are_the_normalized_score_mapped_to_0_1(
    vectorstore: ColBERTVectorStore,
) -> None:
    hits = {hit.id: hit for hit in vectorstore.store.search("capital of France", k=5)}
    results = vectorstore.similarity_search_with_relevance_scores("capital of France", k=5)
    assert len(results) == 5
    for document, relevance in results:
        assert 0.0 <= relevance <= 1.0
        expected = (hits[str(document.id)].normalized_score + 1) / 2
        assert relevance == pytest.approx(min(1.0, expected))  # float16 vectors overshoot
    relevance_fn = vectorstore._select_relevance_score_fn()
    assert [relevance_fn(x) for x in (-3.0, -1.0, 0.0, 1.0, 2.5)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    strict = vectorstore.similarity_search_with_relevance_scores(
        "capital of France", k=5, score_threshold=results[1][1]
    )
    assert [document.id for document, _ in strict] == [document.id for document, _ in results[:2]]


def test_filter_passes_through(vectorstore: ColBERTVectorStore) -> None:
    found = vectorstore.similarity_search("capital", k=5, filter={"year": {"$gte": 2023}})
    assert {document.id for document in found} == {"paris", "rhine"}
    scored = vectorstore.similarity_search_with_relevance_scores(
        "capital", k=5, filter={"key": "bread"}
    )
    assert [document.id for document, _ in scored] == ["bread"]
    mmr = vectorstore.max_marginal_relevance_search("capital", k=5, filter={"key": "rhine"})
    assert [document.id for document in mmr] == ["rhine"]


def test_as_retriever_search_types(vectorstore: ColBERTVectorStore) -> None:
    similarity = vectorstore.as_retriever(search_kwargs={"k": 2}).invoke("capital of Germany")
    assert similarity[0].id == "berlin"
    assert len(similarity) == 2
    threshold = vectorstore.similarity_search_with_relevance_scores("capital of Germany", k=5)[1][1]
    above = vectorstore.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"score_threshold": threshold, "k": 5},
    ).invoke("capital of Germany")
    assert len(above) == 2
    mmr = vectorstore.as_retriever(
        search_type="mmr", search_kwargs={"k": 3, "fetch_k": 5, "lambda_mult": 0.5}
    ).invoke("capital of Germany")
    assert len(mmr) == 3
    assert mmr[0].id == "berlin"
    assert len({document.id for document in mmr}) == 3
    everything = vectorstore.as_retriever(search_kwargs={"filter": {"key": "bread"}})
    assert [document.id for document in everything.invoke("x")] == ["bread"]


@pytest.fixture
def duplicates(fake: FakeColBERT) -> ColBERTVectorStore:
    vectorstore = ColBERTVectorStore(model=fake)
    vectorstore.add_texts(
        [
            "red apple pie with cream",
            "red apple pie with cream",
            "red apple pie with cream and sugar",
            "green pear crumble",
        ],
        ids=["pie1", "pie2", "pie3", "crumble"],
    )
    return vectorstore


def test_mmr_trades_relevance_for_diversity(duplicates: ColBERTVectorStore) -> None:
    query = "red apple pie with cream"
    plain = [document.id for document in duplicates.similarity_search(query, k=2)]
    assert set(plain) == {"pie1", "pie2"}
    no_diversity = duplicates.max_marginal_relevance_search(query, k=4, lambda_mult=1.0)
    assert [document.id for document in no_diversity] == [
        document.id for document in duplicates.similarity_search(query, k=4)
    ]
    diverse = duplicates.max_marginal_relevance_search(query, k=2, fetch_k=4, lambda_mult=0.3)
    assert diverse[0].id == "pie1"
    assert diverse[1].id == "crumble"  # the exact duplicate pie2 is the least useful
    assert diverse[0].metadata == {}


class CountingColBERT(FakeColBERT):
    """FakeColBERT that counts the documents it encodes."""

    encoded = 0

    def encode_documents(self, texts: Any, *args: Any, **kwargs: Any) -> Any:
        self.encoded += len(texts)
        return super().encode_documents(texts, *args, **kwargs)

    def encode_document_chunks(self, texts: Any, *args: Any, **kwargs: Any) -> Any:
        self.encoded += len(texts)
        return super().encode_document_chunks(texts, *args, **kwargs)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_mmr_reads_stored_vectors_instead_of_encoding(
    make_store: Any, chunk_size: int | None
) -> None:
    model = CountingColBERT()
    store = make_store(model, chunk_size=chunk_size, chunk_overlap=1)
    vectorstore = ColBERTVectorStore(store=store)
    vectorstore.add_texts(
        ["red apple pie with cream"] * 2 + ["green pear crumble"], ids=list("abc")
    )
    before = model.encoded
    diverse = vectorstore.max_marginal_relevance_search("red apple pie", k=2, lambda_mult=0.3)
    assert model.encoded == before
    assert {document.id for document in diverse} in ({"a", "c"}, {"b", "c"})


def test_mmr_fetch_k_below_k_still_returns_k(duplicates: ColBERTVectorStore) -> None:
    assert len(duplicates.max_marginal_relevance_search("apple", k=3, fetch_k=1)) == 3


def test_mmr_matches_a_brute_force_selection(duplicates: ColBERTVectorStore) -> None:
    query, k, lambda_mult = "apple pie", 3, 0.6
    hits = duplicates.store.search(query, k=4)
    vectors = duplicates.model.encode_documents([str(hit.text) for hit in hits])
    pairwise = maxsim.scores(vectors, vectors, normalize=True)
    pairwise = (pairwise + pairwise.T) / 2
    relevance = [hit.normalized_score for hit in hits]
    picked = [0]
    while len(picked) < k:
        rest = [i for i in range(len(hits)) if i not in picked]
        picked.append(
            max(
                rest,
                key=lambda i: (
                    lambda_mult * relevance[i]
                    - (1 - lambda_mult) * max(pairwise[i, j] for j in picked)
                ),
            )
        )
    found = duplicates.max_marginal_relevance_search(query, k=k, fetch_k=4, lambda_mult=lambda_mult)
    assert [document.id for document in found] == [hits[i].id for i in picked]


def test_mmr_on_a_chunked_store_uses_the_matched_window(fake: FakeColBERT) -> None:
    vectorstore = ColBERTVectorStore(model=fake, chunk_size=8, chunk_overlap=2)
    long_text = " ".join(f"w{i}" for i in range(30)) + " apple pie"
    vectorstore.add_texts([long_text, "apple pie", "pear tart"], ids=["long", "short", "tart"])
    found = vectorstore.max_marginal_relevance_search("apple pie", k=3, lambda_mult=0.5)
    assert {document.id for document in found} == {"long", "short", "tart"}
    window = next(d for d in found if d.id == "long")
    start, end = window.metadata["span"]
    assert window.page_content == long_text[start:end] and window.page_content.endswith("pie")


def test_mmr_with_documents_stored_without_text(fake: FakeColBERT) -> None:
    vectorstore = ColBERTVectorStore(model=fake)
    vectorstore.store.add_embeddings(fake.encode_documents(["apple pie"]), ids=["vectors"])
    vectorstore.add_texts(["apple pie", "apple tart"], ids=["pie", "tart"])
    found = vectorstore.max_marginal_relevance_search("apple pie", k=3)
    assert {document.id for document in found} == {"vectors", "pie", "tart"}
    assert next(d for d in found if d.id == "vectors").page_content == ""


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"k": 0}, ValueError, "k must be at least 1"),
        ({"fetch_k": -1}, ValueError, "fetch_k must be at least 1"),
        ({"lambda_mult": 1.5}, ValueError, "lambda_mult must be between 0 and 1"),
        ({"lambda_mult": "0.5"}, TypeError, "lambda_mult must be a number"),
        ({"top_k": 3}, TypeError, "unexpected keyword argument 'top_k'"),
    ],
)
def test_mmr_refuses_bad_arguments(
    vectorstore: ColBERTVectorStore, options: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        vectorstore.max_marginal_relevance_search("capital", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("k", "error"),
    [(0, ValueError), (-3, ValueError), ("2", TypeError), (2.5, TypeError), (True, TypeError)],
)
def test_search_refuses_a_wrong_k(vectorstore: ColBERTVectorStore, k: object, error: type) -> None:
    with pytest.raises(error, match="k must be"):
        vectorstore.similarity_search("capital", k=k)  # type: ignore[arg-type]
    with pytest.raises(error, match="k must be"):
        vectorstore.similarity_search_with_relevance_scores("capital", k=k)  # type: ignore[arg-type]


def test_search_refuses_unknown_options(vectorstore: ColBERTVectorStore) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'where'"):
        vectorstore.similarity_search("capital", where={"key": "paris"})


def test_add_texts_fills_missing_ids_and_upserts(vectorstore: ColBERTVectorStore) -> None:
    ids = vectorstore.add_texts(["alpha", "beta"], [{"a": 1}, None], ids=["paris", None])  # type: ignore[list-item]
    assert ids[0] == "paris" and ids[1] and ids[1] != "paris"
    assert len(vectorstore.store) == 6
    [paris] = vectorstore.get_by_ids(["paris"])
    assert (paris.page_content, paris.metadata) == ("alpha", {"a": 1})
    assert vectorstore.add_texts([]) == []


def test_add_documents_prefers_ids_argument(vectorstore: ColBERTVectorStore) -> None:
    documents = [Document("x", id="from-document"), Document("y")]
    assert vectorstore.add_documents(documents, ids=["a", "b"]) == ["a", "b"]
    ids = vectorstore.add_documents(documents)
    assert ids[0] == "from-document" and ids[1] not in ("a", "b", None)
    assert documents[1].id is None


def test_add_refuses_bad_inputs(vectorstore: ColBERTVectorStore) -> None:
    with pytest.raises(ValueError, match="ids has 1 items but there are 2 texts"):
        vectorstore.add_texts(["a", "b"], ids=["only-one"])
    with pytest.raises(TypeError, match="wrap a single id in a list"):
        vectorstore.add_texts(["a"], ids="a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wrap a single id in a list"):
        vectorstore.delete("paris")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        vectorstore.add_texts(["a"], [{"when": object()}])
    with pytest.raises(ValueError, match="repeats"):
        vectorstore.add_texts(["a", "b"], ids=["same", "same"])
    with pytest.raises(ValueError, match="empty"):
        vectorstore.add_documents([Document("")])
    with pytest.raises(TypeError, match="unexpected keyword argument 'embeddings'"):
        vectorstore.add_texts(["a"], embeddings=[[0.0]])
    assert len(vectorstore.store) == 5  # nothing was stored


def test_delete_and_get_by_ids(vectorstore: ColBERTVectorStore) -> None:
    assert vectorstore.delete(["paris", "missing"]) is True
    assert vectorstore.get_by_ids(["paris", "missing"]) == []
    assert [document.id for document in vectorstore.get_by_ids(["rhine", "berlin"])] == [
        "rhine",
        "berlin",
    ]
    assert len(vectorstore.store) == 4
    assert vectorstore.delete() is True  # ids=None: every document, as LangChain defines it
    assert len(vectorstore.store) == 0


def test_vector_searches_are_not_supported(vectorstore: ColBERTVectorStore) -> None:
    with pytest.raises(NotImplementedError, match="token vectors"):
        vectorstore.similarity_search_by_vector([0.0] * 16)
    with pytest.raises(NotImplementedError, match="token vectors"):
        vectorstore.max_marginal_relevance_search_by_vector([0.0] * 16)


def test_from_texts_needs_a_model(fake: FakeColBERT) -> None:
    with pytest.raises(ValueError, match="needs model="):
        ColBERTVectorStore.from_texts(["a"])
    with pytest.raises(ValueError, match="needs model="):
        ColBERTVectorStore.from_documents([Document("a")], embedding=None)
    with pytest.raises(TypeError, match="does not use LangChain Embeddings"):
        ColBERTVectorStore.from_texts(["a"], DeterministicFakeEmbedding(size=4), model=fake)
    with pytest.raises(ValueError, match=r"needs model= .* or store="):
        ColBERTVectorStore()


def test_from_texts_and_from_documents(fake: FakeColBERT) -> None:
    vectorstore = ColBERTVectorStore.from_texts(
        ["red apple", "blue sky"],
        metadatas=[{"c": "red"}, {"c": "blue"}],
        ids=["r", "b"],
        model=fake,
        dtype="float32",
        batch_size=1,
    )
    assert vectorstore.store.dtype == maxsim.stores.base.DTYPES["float32"]  # type: ignore[attr-defined]
    assert vectorstore.similarity_search("sky", k=1)[0].id == "b"
    positional = ColBERTVectorStore.from_documents([Document("x y", id="xy")], fake)
    assert positional.get_by_ids(["xy"])[0].page_content == "x y"
    existing = maxsim.LateInteractionStore(fake)
    filled = ColBERTVectorStore.from_texts(["z"], ids=["z"], store=existing)
    assert filled.store is existing and len(existing) == 1


def test_constructor_checks_store_and_model(fake: FakeColBERT) -> None:
    store = maxsim.LateInteractionStore(fake)
    assert ColBERTVectorStore(model=fake, store=store).store is store
    assert ColBERTVectorStore(model=FakeColBERT(dim=fake.dim), store=store).model is fake
    with pytest.raises(ValueError, match="model differs"):
        ColBERTVectorStore(model=FakeColBERT(dim=fake.dim + 1), store=store)
    with pytest.raises(TypeError, match="apply to a new store only"):
        ColBERTVectorStore(store=store, chunk_size=64)
    with pytest.raises(TypeError, match="must be a maxsim store"):
        ColBERTVectorStore(store=[])  # type: ignore[arg-type]


def test_on_qdrant_scores_match_memory(fake: FakeColBERT, passages: dict[str, str]) -> None:
    qdrant_client = pytest.importorskip("qdrant_client")
    from maxsim.stores import QdrantStore

    client = qdrant_client.QdrantClient(":memory:")
    on_qdrant = ColBERTVectorStore(store=QdrantStore(fake, client, "vs"))
    in_memory = ColBERTVectorStore(model=fake)
    for vectorstore in (on_qdrant, in_memory):
        vectorstore.add_texts(list(passages.values()), ids=list(passages))
    query = "capital of Germany"
    a = on_qdrant.similarity_search_with_relevance_scores(query, k=5)
    b = in_memory.similarity_search_with_relevance_scores(query, k=5)
    assert [d.id for d, _ in a] == [d.id for d, _ in b]
    assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-2)
    mmr_a = on_qdrant.max_marginal_relevance_search(query, k=3)
    mmr_b = in_memory.max_marginal_relevance_search(query, k=3)
    assert [d.id for d in mmr_a] == [d.id for d in mmr_b]
    client.close()
