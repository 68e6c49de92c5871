"""maxsim: late-interaction (ColBERT) retrieval for RAG, built around jina-colbert-v2.

Example:
    >>> import maxsim
    >>> model = maxsim.ColBERT.from_pretrained("jinaai/jina-colbert-v2")  # doctest: +SKIP
    >>> Q = model.encode_queries(["What is late interaction?"])  # doctest: +SKIP
    >>> D = model.encode_documents(["ColBERT scores every query token."])  # doctest: +SKIP
    >>> maxsim.scores(Q, D)  # doctest: +SKIP
"""

from maxsim.encoder import ColBERT
from maxsim.late_interaction import (
    Explanation,
    LateInteractionEncoder,
    RerankResult,
    TokenizedEncoder,
    TokenMatch,
)
from maxsim.loading import load_encoder
from maxsim.remote import RemoteColBERT, RemoteError
from maxsim.scoring import scores
from maxsim.stores import Hit, LateInteractionStore, PLAIDStore, Record

__all__ = [
    "ColBERT",
    "Explanation",
    "Hit",
    "LateInteractionEncoder",
    "LateInteractionStore",
    "PLAIDStore",
    "Record",
    "RemoteColBERT",
    "RemoteError",
    "RerankResult",
    "TokenMatch",
    "TokenizedEncoder",
    "load_encoder",
    "scores",
]
__version__ = "0.1.0"
