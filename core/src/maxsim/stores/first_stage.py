"""First-stage vectors for `QdrantStore`: one cheap vector per point that finds candidates.

Qdrant searches this vector with its HNSW index (`prefetch`), then reranks the candidates
by MaxSim over the stored token vectors. Two kinds:

- `MeanPooling`: the mean of the token vectors, compared by cosine. `dim` floats, almost
  free to compute. The default: on XQuAD-R with all-MiniLM-L6-v2 it kept more of the
  exact top-10 than MUVERA at every candidates limit measured (BENCHMARKS.md).
- `Muvera`: a MUVERA fixed-dimensional encoding (Dhulipala et al., 2024), computed by
  fastembed's `fastembed.postprocess.Muvera` (Qdrant's own implementation; no model is
  downloaded; `pip install "maxsim[muvera]"`). Its dot product approximates MaxSim
  (Chamfer similarity). Bigger (`r_reps * 2**k_sim * dim_proj` floats) and slower to
  compute: fastembed loops over tokens in Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from maxsim.validation import check_positive_int


class FirstStage(ABC):
    """How a point's single first-stage vector is made from its token vectors."""

    kind: ClassVar[str]
    distance: ClassVar[str]

    @abstractmethod
    def size(self, dim: int) -> int:
        """The first-stage vector's length for token vectors of `dim`."""

    @abstractmethod
    def document(self, vectors: np.ndarray) -> np.ndarray:
        """The vector of one stored window ([rows, dim] float32 in, [size] float32 out)."""

    @abstractmethod
    def query(self, vectors: np.ndarray) -> np.ndarray:
        """The vector of one query ([rows, dim] float32 in, [size] float32 out)."""

    def settings(self) -> dict[str, Any]:
        """What `from_settings` needs to rebuild this first stage (JSON)."""
        return {"kind": self.kind}


@dataclass(frozen=True)
class MeanPooling(FirstStage):
    """The mean of a window's token vectors (cosine); the query's mean on the query side.

    Example:
        >>> import numpy as np
        >>> MeanPooling().document(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)).tolist()
        [0.5, 0.5]
    """

    kind: ClassVar[str] = "mean"
    distance: ClassVar[str] = "Cosine"

    def size(self, dim: int) -> int:
        return dim

    def document(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, np.float32).mean(axis=0)

    def query(self, vectors: np.ndarray) -> np.ndarray:
        return self.document(vectors)


@dataclass(frozen=True)
class Muvera(FirstStage):
    """A MUVERA fixed-dimensional encoding from fastembed (`pip install "maxsim[muvera]"`).

    Args:
        k_sim: SimHash planes per repetition (2**k_sim buckets).
        dim_proj: each bucket's centre is projected to this many dimensions (<= the
            model's dim).
        r_reps: independent repetitions, concatenated.
        seed: the random planes and projections; documents and queries must share it.

    The defaults give 10 * 2**3 * 64 = 5,120 floats per point (for dim >= 64); on
    XQuAD-R they beat fastembed's own defaults at the same size (BENCHMARKS.md).

    Example:
        >>> import numpy as np
        >>> muvera = Muvera(k_sim=2, dim_proj=2, r_reps=3)
        >>> muvera.size(4), muvera.document(np.ones((5, 4), np.float32)).shape
        (24, (24,))
    """

    kind: ClassVar[str] = "muvera"
    distance: ClassVar[str] = "Dot"
    k_sim: int = 3
    dim_proj: int = 64
    r_reps: int = 10
    seed: int = 42
    _encoders: dict[int, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        for name in ("k_sim", "dim_proj", "r_reps"):
            check_positive_int(getattr(self, name), name)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed must be an int, got {self.seed!r}")

    def size(self, dim: int) -> int:
        return self.r_reps * 2**self.k_sim * min(self.dim_proj, dim)

    def document(self, vectors: np.ndarray) -> np.ndarray:
        encoded = self._encoder(vectors.shape[1]).process_document(np.asarray(vectors))
        return np.asarray(encoded, np.float32)

    def query(self, vectors: np.ndarray) -> np.ndarray:
        encoded = self._encoder(vectors.shape[1]).process_query(np.asarray(vectors))
        return np.asarray(encoded, np.float32)

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "k_sim": self.k_sim,
            "dim_proj": self.dim_proj,
            "r_reps": self.r_reps,
            "seed": self.seed,
        }

    def _encoder(self, dim: int) -> Any:
        """fastembed's encoder for token vectors of `dim` (built once per dim)."""
        if dim not in self._encoders:
            try:
                from fastembed.postprocess import Muvera as FastembedMuvera
            except ImportError as error:
                raise ImportError(
                    'first_stage="muvera" needs fastembed: pip install "maxsim[muvera]"'
                ) from error
            self._encoders[dim] = FastembedMuvera(
                dim,
                k_sim=self.k_sim,
                dim_proj=min(self.dim_proj, dim),
                r_reps=self.r_reps,
                random_seed=self.seed,
            )
        return self._encoders[dim]


KINDS: dict[str, type[FirstStage]] = {"muvera": Muvera, "mean": MeanPooling}


def as_first_stage(value: Any) -> FirstStage | None:
    """`first_stage=` as an object: None, "muvera", "mean", or a `FirstStage`.

    Raises:
        ValueError / TypeError naming `first_stage` and the accepted values.
    """
    if value is None or isinstance(value, FirstStage):
        return value
    if isinstance(value, str) and value in KINDS:
        return KINDS[value]()
    raise ValueError(
        f"first_stage must be 'muvera', 'mean', None (single stage) or a "
        f"maxsim.stores.first_stage.Muvera / MeanPooling, got {value!r}"
    )


def from_settings(settings: Mapping[str, Any] | None) -> FirstStage | None:
    """The first stage `FirstStage.settings()` described (None for single stage)."""
    if settings is None:
        return None
    options = dict(settings)
    kind = options.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(f"unknown first stage {kind!r}; this maxsim knows {sorted(KINDS)}")
    return KINDS[kind](**options)
