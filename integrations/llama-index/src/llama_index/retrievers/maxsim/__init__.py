"""LlamaIndex retriever on maxsim: ColBERT MaxSim search over nodes, saved without pickle."""

from llama_index.retrievers.maxsim.base import ColBERTRetriever

__all__ = ["ColBERTRetriever"]
