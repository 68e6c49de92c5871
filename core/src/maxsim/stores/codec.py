"""ColBERTv2 residual compression: a centroid id per token plus its residual in `nbits` per dim.

Centroids come from two-level k-means (faiss): coarse groups first, then centroids inside
each group in proportion to its size, so 2^16 centroids train in seconds on a sample.
A vector is assigned by scoring the coarse groups, then only the centroids of its
`ASSIGN_PROBES` best groups (a few matrix products instead of one against every centroid).
Residuals are quantized per dimension with bucket cutoffs and weights taken from the
quantiles of the training residuals. When the training vectors have unit length (every
ColBERT model's do), decoded vectors are normalized again, as ColBERTv2 does: that undoes
part of the quantization error.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

NBITS = (1, 2, 4)
ASSIGN_PROBES = 4
ASSIGN_BLOCK = 131_072
NEAREST_BLOCK_SCORES = 1 << 25
KMEANS_ITERATIONS = 10
SAMPLE_PER_CENTROID = 24
QUANTILE_VALUES = 1 << 20
MIN_CENTROIDS = 16
COMPARED_CUTOFFS = 3
UNIT_LENGTH_TOLERANCE = 1e-2
CENTROID_ARRAYS = ("centroids", "coarse", "groups", "cutoffs", "weights")


def check_nbits(nbits: object) -> int:
    """`nbits` if it is 1, 2 or 4."""
    if isinstance(nbits, bool) or nbits not in NBITS:
        raise ValueError(f"nbits must be 1, 2 or 4 (bits per dimension), got {nbits!r}")
    return int(nbits)


def centroid_count(tokens: int) -> int:
    """PLAID's 16 x sqrt(tokens) rounded down to a power of two, at most tokens / 8."""
    wanted = 16 * math.sqrt(max(tokens, 1))
    ceiling = max(tokens // 8, MIN_CENTROIDS)
    return 1 << int(math.log2(max(min(wanted, ceiling), MIN_CENTROIDS)))


def sample_size(centroids: int) -> int:
    """How many vectors k-means trains on for `centroids` centroids."""
    return centroids * SAMPLE_PER_CENTROID


@dataclass(frozen=True)
class ResidualCodec:
    """Trained centroids and residual buckets; encodes vectors and decodes them back.

    `centroids` are ordered by coarse group: group g owns rows groups[g]:groups[g + 1].
    `normalized`: whether decoded vectors are scaled to unit length.

    Example:
        >>> import torch
        >>> seeded = torch.Generator().manual_seed(0)
        >>> points = torch.nn.functional.normalize(torch.randn(2048, 16, generator=seeded), dim=1)
        >>> codec = ResidualCodec.train(points, centroids=64, nbits=2)
        >>> codes, packed = codec.encode(points[:3])
        >>> packed.shape, codec.decode(codes, packed).shape
        ((3, 4), torch.Size([3, 16]))
    """

    centroids: torch.Tensor
    coarse: torch.Tensor
    groups: np.ndarray
    cutoffs: torch.Tensor
    weights: torch.Tensor
    nbits: int
    normalized: bool

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def packed_bytes(self) -> int:
        """Bytes of one packed residual: dim x nbits / 8, rounded up."""
        return math.ceil(self.dim * self.nbits / 8)

    @property
    def code_dtype(self) -> type:
        return np.uint16 if len(self.centroids) <= 1 << 16 else np.int32

    @classmethod
    def train(
        cls, sample: torch.Tensor, centroids: int, nbits: int, seed: int = 0
    ) -> ResidualCodec:
        """k-means (two levels) on `sample` [n, dim] float32, then the residual buckets."""
        points = np.ascontiguousarray(sample.float().numpy())
        centroids = min(centroids, len(points))
        group_count = min(1 << (int(math.log2(centroids)) // 2), centroids)
        coarse = _kmeans(points, group_count, seed)
        labels = _nearest(torch.from_numpy(points), torch.from_numpy(coarse))
        sizes = np.bincount(labels.numpy(), minlength=group_count)
        shares = _shares(sizes, centroids)
        parts, groups = [], [0]
        for group in range(group_count):
            members = points[labels.numpy() == group]
            if shares[group]:
                parts.append(_kmeans(members, shares[group], seed + group + 1))
            groups.append(groups[-1] + shares[group])
        codec = cls(
            centroids=torch.from_numpy(np.concatenate(parts)),
            coarse=torch.from_numpy(coarse),
            groups=np.array(groups, dtype=np.int64),
            cutoffs=torch.zeros(0),
            weights=torch.zeros(0),
            nbits=nbits,
            normalized=False,
        )
        residuals = sample.float() - codec.centroids[codec.assign(sample.float())]
        values = residuals.flatten()
        if len(values) > QUANTILE_VALUES:
            chosen = torch.randperm(len(values), generator=torch.Generator().manual_seed(seed))
            values = values[chosen[:QUANTILE_VALUES]]
        levels = 1 << nbits
        cutoffs = torch.quantile(values, torch.arange(1, levels) / levels)
        weights = torch.quantile(values, (torch.arange(levels) + 0.5) / levels)
        lengths = sample.float().norm(dim=1)
        normalized = bool(((lengths - 1).abs() < UNIT_LENGTH_TOLERANCE).all())
        return replace(codec, cutoffs=cutoffs, weights=weights, normalized=normalized)

    def assign(self, vectors: torch.Tensor) -> torch.Tensor:
        """The (approximately) nearest centroid of each vector, as int64 ids."""
        result = torch.empty(len(vectors), dtype=torch.int64)
        negative_half_norms = self.centroids.square().sum(1) / -2
        coarse_negative_half_norms = self.coarse.square().sum(1) / -2
        probes = min(ASSIGN_PROBES, len(self.coarse))
        for start in range(0, len(vectors), ASSIGN_BLOCK):
            block = vectors[start : start + ASSIGN_BLOCK].float()
            coarse_scores = torch.addmm(coarse_negative_half_norms, block, self.coarse.T)
            top = coarse_scores.topk(probes, dim=1).indices
            result[start : start + len(block)] = self._assign_within(
                block, top, negative_half_norms
            )
        return result

    def _assign_within(
        self, block: torch.Tensor, top: torch.Tensor, negative_half_norms: torch.Tensor
    ) -> torch.Tensor:
        """Best centroid among the centroids of each row's probed groups (scored as
        x . c - |c|^2 / 2, which orders centroids as L2 distance does)."""
        rows = torch.arange(len(block)).repeat_interleave(top.shape[1])
        groups = top.flatten()
        order = torch.argsort(groups, stable=True)
        rows, groups = rows[order], groups[order]
        bounds = np.concatenate(
            [[0], np.cumsum(np.bincount(groups.numpy(), minlength=len(self.coarse)))]
        )
        best = torch.full((len(block),), -math.inf)
        codes = torch.zeros(len(block), dtype=torch.int64)
        for group in np.flatnonzero(np.diff(bounds)):
            members = rows[bounds[group] : bounds[group + 1]]
            low, high = int(self.groups[group]), int(self.groups[group + 1])
            if low == high:
                continue
            scores = torch.addmm(
                negative_half_norms[low:high], block[members], self.centroids[low:high].T
            )
            indices = _best_columns(scores)
            values = scores.gather(1, indices[:, None])[:, 0]
            better = values > best[members]
            best[members[better]] = values[better]
            codes[members[better]] = indices[better] + low
        return codes

    def encode(self, vectors: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Centroid ids [n] and packed residual buckets [n, packed_bytes] uint8."""
        vectors = vectors.float()
        codes = self.assign(vectors)
        residuals = vectors - self.centroids.index_select(0, codes)
        if len(self.cutoffs) <= COMPARED_CUTOFFS:
            buckets = torch.zeros(residuals.shape, dtype=torch.uint8)
            for cutoff in self.cutoffs:
                buckets += residuals > cutoff
        else:
            buckets = torch.bucketize(residuals, self.cutoffs).to(torch.uint8)
        per_byte = 8 // self.nbits
        width = self.packed_bytes * per_byte
        if width != self.dim:
            buckets = torch.nn.functional.pad(buckets, (0, width - self.dim))
        buckets = buckets.view(len(vectors), self.packed_bytes, per_byte)
        packed = buckets[:, :, 0] << (8 - self.nbits)
        for position in range(1, per_byte):
            packed |= buckets[:, :, position] << (8 - self.nbits * (position + 1))
        return codes.numpy().astype(self.code_dtype), packed.numpy()

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> torch.Tensor:
        """Vectors [n, dim] float32 from centroid ids and packed residuals."""
        indices = torch.from_numpy(np.asarray(packed, dtype=np.uint8)).long()
        residuals = self.table.index_select(0, indices.flatten()).view(len(codes), -1)
        centroid_ids = torch.from_numpy(np.asarray(codes, dtype=np.int64))
        vectors = self.centroids.index_select(0, centroid_ids) + residuals[:, : self.dim]
        return torch.nn.functional.normalize(vectors, dim=1) if self.normalized else vectors

    @functools.cached_property
    def table(self) -> torch.Tensor:
        """The bucket weights each possible byte decodes to: [256, 8 / nbits]."""
        per_byte = 8 // self.nbits
        values = torch.arange(256)
        shifts = torch.tensor([8 - self.nbits * (p + 1) for p in range(per_byte)])
        buckets = (values[:, None] >> shifts) & ((1 << self.nbits) - 1)
        return self.weights[buckets]

    def arrays(self) -> dict[str, np.ndarray]:
        """The codec as named arrays for saving."""
        return {
            "centroids": self.centroids.numpy(),
            "coarse": self.coarse.numpy(),
            "groups": self.groups,
            "cutoffs": self.cutoffs.numpy(),
            "weights": self.weights.numpy(),
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], nbits: int, normalized: bool
    ) -> ResidualCodec:
        return cls(
            centroids=torch.from_numpy(np.array(arrays["centroids"])),
            coarse=torch.from_numpy(np.array(arrays["coarse"])),
            groups=np.array(arrays["groups"]),
            cutoffs=torch.from_numpy(np.array(arrays["cutoffs"])),
            weights=torch.from_numpy(np.array(arrays["weights"])),
            nbits=nbits,
            normalized=normalized,
        )

    def problems(self) -> list[str]:
        """What makes these arrays unusable as a codec (for checking loaded files)."""
        problems = []
        groups, count = self.groups, len(self.centroids)
        if len(self.cutoffs) != (1 << self.nbits) - 1 or len(self.weights) != 1 << self.nbits:
            problems.append(f"bucket arrays do not fit nbits {self.nbits}")
        if self.coarse.shape[1:] != self.centroids.shape[1:] or not len(self.coarse):
            problems.append("coarse centroids do not match the centroids")
        elif len(groups) != len(self.coarse) + 1 or groups[0] != 0 or groups[-1] != count:
            problems.append("centroid groups do not cover the centroids")
        elif bool((np.diff(groups) < 0).any()):
            problems.append("centroid groups are out of order")
        tensors = (self.centroids, self.coarse, self.cutoffs, self.weights)
        if not all(bool(torch.isfinite(tensor).all()) for tensor in tensors):
            problems.append("the codec holds NaN or infinite values")
        return problems


def _kmeans(points: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` k-means centroids of `points` (faiss)."""
    if count >= len(points):
        return points[:count].copy()
    import faiss

    kmeans = faiss.Kmeans(
        points.shape[1],
        count,
        niter=KMEANS_ITERATIONS,
        seed=seed,
        min_points_per_centroid=1,
        max_points_per_centroid=1 << 30,
    )
    kmeans.train(points)
    return np.asarray(kmeans.centroids, dtype=np.float32)


def _nearest(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Exact nearest centroid (L2) of each point, scoring at most `NEAREST_BLOCK_SCORES`
    point-centroid pairs at a time."""
    negative_half_norms = centroids.square().sum(1) / -2
    rows = max(NEAREST_BLOCK_SCORES // max(len(centroids), 1), 1)
    return torch.cat(
        [
            _best_columns(torch.addmm(negative_half_norms, block, centroids.T))
            for block in points.split(rows)
        ]
    )


def _best_columns(scores: torch.Tensor) -> torch.Tensor:
    """Each row's highest-scoring column (numpy's argmax: several times faster than
    torch's max with indices on these shapes)."""
    return torch.from_numpy(np.argmax(scores.numpy(), axis=1))


def _shares(sizes: np.ndarray, total: int) -> np.ndarray:
    """`total` centroids split over groups in proportion to `sizes`, at most a group's size."""
    exact = sizes / max(sizes.sum(), 1) * total
    shares = np.minimum(np.floor(exact).astype(np.int64), sizes)
    shares[(shares == 0) & (sizes > 0)] = 1
    while shares.sum() > total:
        shares[np.argmax(shares)] -= 1
    remainder = exact - shares
    for group in np.argsort(-remainder):
        if shares.sum() >= total:
            break
        if shares[group] < sizes[group]:
            shares[group] += 1
    return shares
