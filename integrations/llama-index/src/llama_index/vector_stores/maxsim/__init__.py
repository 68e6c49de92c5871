"""LlamaIndex vector store on maxsim: ColBERT MaxSim search of nodes, in memory or on Qdrant."""

from llama_index.vector_stores.maxsim.base import ColBERTVectorStore
from llama_index.vector_stores.maxsim.filters import to_maxsim_filter

__all__ = ["ColBERTVectorStore", "to_maxsim_filter"]
