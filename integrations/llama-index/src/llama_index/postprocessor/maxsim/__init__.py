"""LlamaIndex node postprocessor that reranks retrieved nodes with ColBERT MaxSim (maxsim)."""

from llama_index.postprocessor.maxsim.base import ColBERTRerank

__all__ = ["ColBERTRerank"]
