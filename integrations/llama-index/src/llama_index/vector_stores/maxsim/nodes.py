"""Node helpers shared by the vector store and the reranker: scores and windows."""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import BaseNode, TextNode

from maxsim import Hit

RAW_SCORE_KEY = "maxsim_score"
DOCUMENT_ID_KEY = "document_id"
CHUNK_KEY = "chunk"
SPAN_KEY = "span"


def with_hidden_metadata(node: BaseNode, extra: dict[str, Any]) -> BaseNode:
    """A copy of `node` with `extra` in its metadata, left out of the embed and LLM text."""

    def hidden(keys: list[str]) -> list[str]:
        return [*keys, *(key for key in extra if key not in keys)]

    return node.model_copy(
        update={
            "metadata": {**node.metadata, **extra},
            "excluded_embed_metadata_keys": hidden(node.excluded_embed_metadata_keys),
            "excluded_llm_metadata_keys": hidden(node.excluded_llm_metadata_keys),
        }
    )


def hit_node(node: BaseNode, hit: Hit) -> BaseNode:
    """`node` as a search result, with the raw MaxSim in its metadata. For a hit on a
    window of a chunked document, the content is the part of the node's text in that
    window, and the metadata has the document id, window number and the window's
    character span in the node's text (None when the window held metadata only)."""
    extra: dict[str, Any] = {RAW_SCORE_KEY: hit.score}
    if hit.span is None or hit.text is None or not isinstance(node, TextNode):
        return with_hidden_metadata(node, extra)
    extra.update({DOCUMENT_ID_KEY: hit.id, CHUNK_KEY: hit.chunk, SPAN_KEY: None})
    offset = hit.text.rfind(node.text) if node.text else -1
    start = min(max(hit.span[0] - offset, 0), len(node.text))
    end = min(max(hit.span[1] - offset, start), len(node.text))
    if offset < 0 or start == end:
        return with_hidden_metadata(node, extra)
    extra[SPAN_KEY] = [start, end]
    return with_hidden_metadata(node.model_copy(update={"text": node.text[start:end]}), extra)
