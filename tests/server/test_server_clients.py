"""Clients nobody here wrote, against a real `maxsim serve`: LlamaIndex's own `JinaRerank`
in a query pipeline, the Jina docs' Qdrant recipe, and `RemoteColBERT` under the stores and
the LangChain retriever."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from langchain_core.documents import Document
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.postprocessor.jinaai_rerank import JinaRerank
from qdrant_client import QdrantClient, models

import maxsim
from langchain_maxsim import ColBERTRetriever as LangChainRetriever
from llama_index.retrievers.maxsim import ColBERTRetriever
from maxsim.testing import FakeColBERT

from .conftest import ANSWER, API_KEY, PASSAGES, QUERY, SERVED_NAME, Server


def _remote(server: Server, **options: Any) -> maxsim.RemoteColBERT:
    return maxsim.RemoteColBERT(
        server.base_url, api_key=API_KEY, model=SERVED_NAME, dim=384, **options
    )


def test_llama_index_jina_rerank_in_a_query_pipeline(
    server: Server, minilm: maxsim.ColBERT
) -> None:
    nodes = [TextNode(text=text, id_=f"p{i}") for i, text in enumerate(PASSAGES)]
    # A coarse first stage (4-dim fake vectors), then Jina's own reranker on our server.
    retriever = ColBERTRetriever.from_defaults(
        nodes=nodes, model=FakeColBERT(dim=4), similarity_top_k=len(nodes)
    )
    rerank = JinaRerank(base_url=server.base_url, api_key=API_KEY, model=SERVED_NAME, top_n=2)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), node_postprocessors=[rerank])

    response = engine.query(QUERY)

    assert response.source_nodes[0].node.node_id == f"p{ANSWER}"
    local = minilm.rerank(QUERY, PASSAGES, top_n=2)
    assert [hit.node.node_id for hit in response.source_nodes] == [f"p{h.index}" for h in local]
    assert [hit.score for hit in response.source_nodes] == pytest.approx(
        [hit.score for hit in local], abs=1e-4
    )
    assert "Everest" in str(response)  # MockLLM echoes the prompt with the reranked context


def test_jina_rerank_reports_our_detail_on_a_wrong_key(server: Server) -> None:
    rerank = JinaRerank(base_url=server.base_url, api_key="wrong", model=SERVED_NAME, top_n=1)
    with pytest.raises(RuntimeError, match="API key"):
        rerank.postprocess_nodes([_node("x")], query_str="q")


def _node(text: str) -> Any:
    from llama_index.core.schema import NodeWithScore

    return NodeWithScore(node=TextNode(text=text), score=1.0)


def _multi_vector(server: Server, texts: list[str], input_type: str) -> list[list[list[float]]]:
    body = {
        "model": SERVED_NAME,
        "dimensions": 128,
        "input_type": input_type,
        "embedding_type": "float",
        "input": texts,
    }
    reply = httpx.post(f"{server.base_url}/multi-vector", json=body, headers=server.headers)
    reply.raise_for_status()
    return [item["embeddings"] for item in reply.json()["data"]]


def test_the_docs_qdrant_recipe(server: Server) -> None:
    qdrant = QdrantClient(":memory:")
    qdrant.create_collection(
        "passages",
        vectors_config=models.VectorParams(
            size=128,
            distance=models.Distance.COSINE,
            multivector_config=models.MultiVectorConfig(
                comparator=models.MultiVectorComparator.MAX_SIM
            ),
        ),
    )
    vectors = _multi_vector(server, PASSAGES, "document")
    qdrant.upsert(
        "passages",
        points=[
            models.PointStruct(id=i, vector=rows, payload={"text": text})
            for i, (rows, text) in enumerate(zip(vectors, PASSAGES, strict=True))
        ],
    )
    [query] = _multi_vector(server, [QUERY], "query")
    hits = qdrant.query_points("passages", query=query, limit=3).points
    assert hits[0].id == ANSWER and hits[0].payload == {"text": PASSAGES[ANSWER]}
    assert hits[0].score > hits[1].score


def test_remote_encoding_matches_local_to_float32_noise(
    server: Server, minilm: maxsim.ColBERT
) -> None:
    texts = [f"{text} ({i})" for i, text in enumerate(PASSAGES * 8)]
    with _remote(server, texts_per_request=16) as remote:
        documents = remote.encode_documents(texts, batch_size=8)
        [query] = remote.encode_queries([QUERY], as_tensor=True)
    for ours, local in zip(documents, minilm.encode_documents(texts), strict=True):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, local, atol=2e-5)
    np.testing.assert_allclose(query.numpy(), minilm.encode_queries([QUERY])[0], atol=2e-5)


def test_remote_matryoshka_cut_matches_a_local_cut(
    server: Server, minilm_path: Any, minilm: maxsim.ColBERT
) -> None:
    local = maxsim.ColBERT.from_pretrained(str(minilm_path), dim=128)
    with maxsim.RemoteColBERT(
        server.base_url, api_key=API_KEY, model=SERVED_NAME, dim=128, embedding_type="float"
    ) as remote:
        [ours] = remote.encode_documents(PASSAGES[:1])
    np.testing.assert_allclose(ours, local.encode_documents(PASSAGES[:1])[0], atol=2e-5)


def test_remote_drives_a_store_and_matches_the_local_one(
    server: Server, minilm: maxsim.ColBERT
) -> None:
    ids = [f"p{i}" for i in range(len(PASSAGES))]
    with _remote(server) as remote:
        store = maxsim.LateInteractionStore(remote)
        store.add(PASSAGES, ids=ids)
        hits = store.search(QUERY, k=3)
        assert remote.rerank(QUERY, PASSAGES, top_n=1)[0].index == ANSWER
    local = maxsim.LateInteractionStore(minilm)
    local.add(PASSAGES, ids=ids)
    expected = local.search(QUERY, k=3)
    assert [hit.id for hit in hits] == [hit.id for hit in expected] and hits[0].id == f"p{ANSWER}"
    assert [hit.score for hit in hits] == pytest.approx([hit.score for hit in expected], abs=1e-4)


def test_remote_drives_the_langchain_retriever(server: Server) -> None:
    documents = [Document(page_content=text, metadata={"n": i}) for i, text in enumerate(PASSAGES)]
    retriever = LangChainRetriever.from_documents(documents, _remote(server), k=2)
    [best, _] = retriever.invoke(QUERY)
    assert best.page_content == PASSAGES[ANSWER] and best.metadata["n"] == ANSWER


def test_load_encoder_with_a_url_is_remote(server: Server) -> None:
    remote = maxsim.load_encoder(server.base_url, api_key=API_KEY, model=SERVED_NAME, dim=384)
    assert isinstance(remote, maxsim.RemoteColBERT)
    assert remote.rerank(QUERY, PASSAGES, top_n=1)[0].index == ANSWER


def test_remote_errors_are_clear(server: Server) -> None:
    with (
        maxsim.RemoteColBERT(server.base_url, api_key="wrong", model=SERVED_NAME, dim=384) as bad,
        pytest.raises(maxsim.RemoteError, match=r"refused the API key.*JINA_API_KEY") as refused,
    ):
        bad.encode_queries(["q"])
    assert refused.value.status_code == 401
    with (
        _remote(server, texts_per_request=1000) as remote,
        pytest.raises(maxsim.RemoteError, match=r"413.*--max-inputs"),
    ):
        remote.encode_documents(["t"] * 65, batch_size=65)
    with _remote(server) as remote, pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        remote.encode_documents(["ok", " "])
    with (
        maxsim.RemoteColBERT(server.base_url, api_key=API_KEY, model="other", dim=384) as other,
        pytest.raises(maxsim.RemoteError, match="use model='jina-colbert-v2'"),
    ):
        other.encode_queries(["q"])


def test_remote_retries_429_5xx_and_network_errors(server: Server) -> None:
    real = httpx.Client(timeout=60)
    failures: list[Any] = [
        httpx.Response(429, headers={"retry-after": "0"}),
        httpx.Response(503, json={"detail": "busy"}),
        httpx.ReadTimeout("slow"),
    ]

    def flaky(request: httpx.Request) -> httpx.Response:
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        forwarded = real.send(
            real.build_request(
                request.method, request.url, content=request.content, headers=request.headers
            )
        )
        return httpx.Response(
            forwarded.status_code, content=forwarded.content, headers=forwarded.headers
        )

    remote = _remote(server, backoff=0, max_retries=3)
    remote._client = httpx.Client(
        transport=httpx.MockTransport(flaky), headers=remote._client.headers
    )
    [vectors] = remote.encode_documents([PASSAGES[0]])
    assert vectors.shape[1] == 384 and not failures

    failures.extend([httpx.Response(502)] * 2)
    remote.max_retries = 1
    with pytest.raises(maxsim.RemoteError, match="502") as exhausted:
        remote.encode_documents([PASSAGES[0]])
    assert exhausted.value.status_code == 502
    real.close()
