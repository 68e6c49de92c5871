"""Metadata filters: a callable, or a dict in the MongoDB-like subset that stores share.

`{"lang": "de"}` is equality; `{"year": {"$gte": 2020}}` applies an operator; several
keys must all hold; `{"$and": [...]}` / `{"$or": [...]}` combine filters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]
MetadataFilter = Mapping[str, Any] | Predicate

_MISSING = object()

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda value, target: value is not _MISSING and value == target,
    "$ne": lambda value, target: value is _MISSING or value != target,
    "$gt": lambda value, target: _ordered(value, target) and value > target,
    "$gte": lambda value, target: _ordered(value, target) and value >= target,
    "$lt": lambda value, target: _ordered(value, target) and value < target,
    "$lte": lambda value, target: _ordered(value, target) and value <= target,
    "$in": lambda value, target: value is not _MISSING and value in target,
    "$nin": lambda value, target: value is _MISSING or value not in target,
    "$exists": lambda value, target: (value is not _MISSING) == bool(target),
}
OPERATORS = (*COMPARISONS, "$and", "$or")


def compile_filter(filter: MetadataFilter | None) -> Predicate | None:
    """A predicate on a metadata dict, checked up front (unknown operators raise).

    Example:
        >>> match = compile_filter({"lang": {"$in": ["de", "fr"]}, "year": {"$gte": 2020}})
        >>> match({"lang": "de", "year": 2021}), match({"lang": "en", "year": 2021})
        (True, False)

    Raises:
        ValueError: an unknown operator, or an operand of the wrong kind.
        TypeError: `filter` is neither a dict nor a callable.
    """
    if filter is None:
        return None
    if callable(filter):
        return filter
    if not isinstance(filter, Mapping):
        raise TypeError(
            f"filter must be a dict or a callable on the metadata, got {type(filter).__name__}"
        )
    return _compile_mapping(filter)


def _compile_mapping(filter: Mapping[str, Any]) -> Predicate:
    predicates = [_compile_entry(key, condition) for key, condition in filter.items()]
    return lambda metadata: all(predicate(metadata) for predicate in predicates)


def _compile_entry(key: str, condition: Any) -> Predicate:
    if not isinstance(key, str):
        raise TypeError(f"filter keys must be strings (field names or operators), got {key!r}")
    if key in ("$and", "$or"):
        if not isinstance(condition, list) or not all(isinstance(c, Mapping) for c in condition):
            raise ValueError(f"filter: {key} takes a list of filters, got {condition!r}")
        parts = [_compile_mapping(part) for part in condition]
        combine = all if key == "$and" else any
        return lambda metadata: combine(part(metadata) for part in parts)
    if key.startswith("$"):
        raise ValueError(f"filter: unknown operator {key!r}; use one of {', '.join(OPERATORS)}")
    if isinstance(condition, Mapping) and any(str(op).startswith("$") for op in condition):
        checks = [_compile_comparison(key, op, target) for op, target in condition.items()]
        return lambda metadata: all(check(metadata) for check in checks)
    return _compile_comparison(key, "$eq", condition)


def _compile_comparison(key: str, operator: str, target: Any) -> Predicate:
    if operator not in COMPARISONS:
        raise ValueError(
            f"filter on {key!r}: unknown operator {operator!r}; use one of {', '.join(OPERATORS)}"
        )
    if operator in ("$in", "$nin") and not isinstance(target, (list, tuple, set, frozenset)):
        raise ValueError(f"filter on {key!r}: {operator} takes a list, got {target!r}")
    if operator in ("$in", "$nin"):
        target = list(target)
    compare = COMPARISONS[operator]
    return lambda metadata: compare(metadata.get(key, _MISSING), target)


def _ordered(value: Any, target: Any) -> bool:
    """True when `value` and `target` can be compared with < (numbers with numbers, etc.)."""
    if value is _MISSING or value is None:
        return False
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(target, numbers):
        return not isinstance(value, bool) and not isinstance(target, bool)
    return type(value) is type(target)
