"""Request and response bodies of the Jina-compatible API (`/v1/multi-vector`, `/v1/rerank`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from maxsim.validation import check_text


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="The served model's name, e.g. jina-colbert-v2.")


class MultiVectorRequest(_Request):
    """`POST /v1/multi-vector`: token vectors for queries or documents."""

    input: str | list[str] = Field(description="One text or a list of texts.")
    input_type: Literal["query", "document"] = "document"
    dimensions: int | None = Field(
        default=None, strict=True, description="Matryoshka cut; default the model's dim."
    )
    embedding_type: Literal["float", "base64"] = Field(
        default="float", description="JSON numbers, or base64 of little-endian float32 rows."
    )

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> list[str]:
        return _texts(value, "input")


class RerankRequest(_Request):
    """`POST /v1/rerank`: documents ordered by MaxSim against a query."""

    query: str
    documents: list[str] = Field(description='Texts, or objects {"text": ...}.')
    top_n: int | None = Field(default=None, strict=True, ge=1, description="Default: all.")
    return_documents: bool = True

    @field_validator("query", mode="before")
    @classmethod
    def _query(cls, value: Any) -> str:
        return _text(value, "query")

    @field_validator("documents", mode="before")
    @classmethod
    def _documents(cls, value: Any) -> list[str]:
        if isinstance(value, list):
            for position, item in enumerate(value):
                if isinstance(item, dict) and not isinstance(item.get("text"), str):
                    raise ValueError(
                        f'documents[{position}] must be a string or an object {{"text": "..."}}'
                    )
            value = [item["text"] if isinstance(item, dict) else item for item in value]
        return _texts(value, "documents")


def _texts(value: Any, field: str) -> list[str]:
    """A list of non-empty strings (one string becomes a list of one)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{field} must be a string or a list of strings")
    if not value:
        raise ValueError(f"{field} is empty; send at least one text")
    for position, text in enumerate(value):
        _text(text, f"{field}[{position}]")
    return value


def _text(value: Any, field: str) -> str:
    """`check_text` with its TypeError as a ValueError, which pydantic reports as a 422."""
    try:
        return check_text(value, field)
    except TypeError as error:
        raise ValueError(str(error)) from None


class Usage(BaseModel):
    total_tokens: int
    prompt_tokens: int


class MultiVectorItem(BaseModel):
    object: Literal["embeddings"] = "embeddings"
    index: int
    embeddings: list[list[float]] | str


class MultiVectorResponse(BaseModel):
    model: str
    object: Literal["list"] = "list"
    usage: Usage
    data: list[MultiVectorItem]


class RerankDocument(BaseModel):
    text: str


class RerankItem(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    model: str
    usage: RerankUsage
    results: list[RerankItem]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "maxsim"
    dim: int
    query_length: int
    document_length: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
