"""Metadata filters as Qdrant payload filters, run by Qdrant on `metadata.<field>`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from maxsim.filters import MetadataFilter, compile_filter

if TYPE_CHECKING:
    from qdrant_client.http import models

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def qdrant_models() -> Any:
    """`qdrant_client.models`, imported on first use."""
    try:
        from qdrant_client import models
    except ImportError as error:
        raise ImportError(
            'QdrantStore needs the qdrant-client package: pip install "maxsim[qdrant]"'
        ) from error
    return models


def to_qdrant_filter(filter: MetadataFilter | None) -> models.Filter | None:
    """A `qdrant_client.models.Filter` on `metadata.<field>` for a maxsim dict filter.

    Example:
        >>> to_qdrant_filter({"year": {"$gte": 2020}}).must[0].range.gte
        2020.0

    Raises:
        TypeError: `filter` is a callable (it cannot run inside Qdrant) or not a dict.
        ValueError: an unknown operator (as `maxsim.filters`), a range on a non-number,
            equality with a list or dict, or a non-finite number.
    """
    if filter is None:
        return None
    compile_filter(filter)
    if not isinstance(filter, Mapping):
        raise TypeError(
            "QdrantStore cannot send a callable filter to Qdrant; use a dict filter "
            'such as {"lang": "de", "year": {"$gte": 2020}} (see maxsim.filters)'
        )
    if not filter:
        return None
    return _translate(filter, qdrant_models())


def _translate(filter: Mapping[str, Any], m: Any) -> models.Filter:
    return m.Filter(must=[_entry(key, condition, m) for key, condition in filter.items()])


def _entry(key: str, condition: Any, m: Any) -> Any:
    if key == "$and":
        return m.Filter(must=[_translate(part, m) for part in condition])
    if key == "$or":
        if not condition:
            return _nothing(m)
        return m.Filter(should=[_translate(part, m) for part in condition])
    if isinstance(condition, Mapping) and any(str(op).startswith("$") for op in condition):
        checks = [_comparison(key, op, target, m) for op, target in condition.items()]
        return checks[0] if len(checks) == 1 else m.Filter(must=checks)
    return _comparison(key, "$eq", condition, m)


def _comparison(key: str, operator: str, target: Any, m: Any) -> Any:
    path = _path(key)
    if operator == "$eq":
        return _equals(key, path, target, m)
    if operator == "$ne":
        return m.Filter(must_not=[_equals(key, path, target, m)])
    if operator == "$in":
        return _any_of(key, path, list(target), m)
    if operator == "$nin":
        return m.Filter(must_not=[_any_of(key, path, list(target), m)])
    if operator == "$exists":
        present = m.Filter(
            should=[
                m.IsNullCondition(is_null=m.PayloadField(key=path)),
                m.Filter(must_not=[m.IsEmptyCondition(is_empty=m.PayloadField(key=path))]),
            ]
        )
        return present if target else m.Filter(must_not=[present])
    if not _is_number(target):
        raise ValueError(
            f"filter on {key!r}: Qdrant applies {operator} to numbers only, got {target!r}"
        )
    _check_finite(key, target)
    return m.FieldCondition(key=path, range=m.Range(**{operator[1:]: target}))


def _equals(key: str, path: str, value: Any, m: Any) -> Any:
    if value is None:
        return m.IsNullCondition(is_null=m.PayloadField(key=path))
    if isinstance(value, (bool, int, str)):
        return m.FieldCondition(key=path, match=m.MatchValue(value=value))
    if isinstance(value, float):
        _check_finite(key, value)
        return m.FieldCondition(key=path, range=m.Range(gte=value, lte=value))
    raise ValueError(
        f"filter on {key!r}: Qdrant cannot compare with {type(value).__name__} {value!r}; "
        "use a str, int, float, bool or None (a list field matches when any element does)"
    )


def _any_of(key: str, path: str, values: list[Any], m: Any) -> Any:
    strings: list[str] = []
    integers: list[int] = []
    conditions: list[Any] = []
    for value in values:
        if isinstance(value, str):
            strings.append(value)
        elif _is_number(value) and isinstance(value, int):
            integers.append(value)
        else:
            conditions.append(_equals(key, path, value, m))
    conditions += [
        m.FieldCondition(key=path, match=m.MatchAny(any=group))
        for group in (strings, integers)
        if group
    ]
    if not conditions:
        return _nothing(m)
    return conditions[0] if len(conditions) == 1 else m.Filter(should=conditions)


def _nothing(m: Any) -> Any:
    """A condition no point meets (an empty filter meets every point)."""
    return m.Filter(must_not=[m.Filter()])


def _path(key: str) -> str:
    """The payload path of metadata field `key`, quoted when it holds other characters."""
    if _PLAIN_KEY.fullmatch(key):
        return f"metadata.{key}"
    if '"' in key:
        raise ValueError(f"filter on {key!r}: Qdrant cannot filter on a field name with '\"'")
    return f'metadata."{key}"'


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_finite(key: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"filter on {key!r}: Qdrant needs finite numbers, got {value!r}")
