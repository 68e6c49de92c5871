"""LangChain integration for maxsim (work in progress)."""
