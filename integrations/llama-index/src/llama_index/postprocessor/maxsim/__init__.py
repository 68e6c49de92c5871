"""LlamaIndex reranking with maxsim (work in progress)."""
