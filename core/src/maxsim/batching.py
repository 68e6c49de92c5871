"""Group texts into batches by a token budget, longest first."""

from __future__ import annotations


def token_budget_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices of `lengths` grouped into batches, longest sequences first.

    A batch holds at most `batch_size` sequences and, padded to its longest member, at
    most `max_tokens` tokens (a single longer sequence still gets a batch of its own).

    Example:
        >>> token_budget_batches([3, 10, 4, 9], batch_size=8, max_tokens=20)
        [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if (
            current is not None
            and len(current) < batch_size
            and lengths[current[0]] * (len(current) + 1) <= max_tokens
        ):
            current.append(index)
        else:
            batches.append([index])
    return batches
