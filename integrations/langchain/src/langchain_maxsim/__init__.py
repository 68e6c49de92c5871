"""LangChain integration for maxsim: ColBERT late-interaction retrieval.

- `ColBERTRetriever`: a retriever over a `LateInteractionStore` or `QdrantStore`.
- `ColBERTReranker`: a document compressor that reranks by MaxSim.
- `ColBERTVectorStore`: LangChain's `VectorStore` interface on a maxsim store.
"""

from langchain_maxsim.rerankers import ColBERTReranker
from langchain_maxsim.retrievers import ColBERTRetriever
from langchain_maxsim.vectorstores import ColBERTVectorStore

__all__ = ["ColBERTReranker", "ColBERTRetriever", "ColBERTVectorStore"]
__version__ = "0.1.0"
