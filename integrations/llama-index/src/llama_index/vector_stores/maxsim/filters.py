"""LlamaIndex `MetadataFilters` as maxsim filters (a dict where possible, else a callable).

Every `FilterOperator` and `FilterCondition` of llama-index-core 0.14 is supported, at
any depth of nesting. On a store that takes callable filters (`LateInteractionStore`,
`PLAIDStore`: dialect "memory") a filter becomes a maxsim filter dict (see
`maxsim.filters`) when the dict grammar can say it, else a callable on the metadata;
both give the same answers. A store that takes dicts only (`QdrantStore`: dialect
"qdrant", chosen by `DocumentStore.supports_callable_filters`) applies its engine's
rules; the few filters that need a callable there raise `ValueError` saying so.

What a filter matches, with `v` the node's metadata value (missing counts as None):

| operator | matches |
| --- | --- |
| EQ x / NE x | `v == x` / not that (`EQ None`: v is missing or None) |
| GT GTE LT LTE x | v and x are both numbers (bools excluded) or both strings, and `v > x` ... |
| IN xs / NIN xs | `v in xs` / not that (a single value counts as a one-item list) |
| ANY xs / ALL xs | v, or any / every item of a list v, equals one of xs / each of xs |
| CONTAINS x | v equals x, or v is a list holding x |
| TEXT_MATCH s | v is a string containing s (`TEXT_MATCH_INSENSITIVE`: ignoring case) |
| IS_EMPTY | v is missing, None, "" or [] |

`FilterCondition.AND` / `OR` need all / any of the filters, `NOT` needs none of them; an
empty `MetadataFilters` matches everything. On Qdrant, Qdrant's rules apply on top: a
list field matches EQ / IN when any item does, and ranges compare numbers only.

Example:
    >>> from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
    >>> from llama_index.vector_stores.maxsim.filters import to_maxsim_filter
    >>> filters = MetadataFilters(
    ...     filters=[
    ...         MetadataFilter(key="lang", value=["de", "fr"], operator="in"),
    ...         MetadataFilter(key="year", value=2020, operator=">="),
    ...     ]
    ... )
    >>> to_maxsim_filter(filters)
    {'$and': [{'lang': {'$in': ['de', 'fr']}}, {'year': {'$gte': 2020}}]}
    >>> match = to_maxsim_filter(
    ...     MetadataFilters(filters=[MetadataFilter(key="tags", value="red", operator="contains")])
    ... )
    >>> match({"tags": ["red", "blue"]}), match({"tags": ["green"]})
    (True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from maxsim.filters import compile_filter

Predicate = Callable[[Mapping[str, Any]], bool]
MaxsimFilter = dict[str, Any] | Predicate
Dialect = Literal["memory", "qdrant"]

_EVERYTHING: dict[str, Any] = {}
_NOTHING: dict[str, Any] = {"$or": []}
_RANGES = {
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
}


def to_maxsim_filter(
    filters: MetadataFilters | None, *, dialect: Dialect = "memory"
) -> MaxsimFilter | None:
    """The maxsim filter (dict, or callable on the metadata) for LlamaIndex `filters`.

    Args:
        filters: LlamaIndex filters; None or an empty `MetadataFilters` gives None.
        dialect: "memory" (a store whose `supports_callable_filters` is true) or "qdrant"
            (dicts only, with Qdrant's list-item matching used for ANY / ALL / CONTAINS).

    Raises:
        ValueError: a value that does not suit its operator (a list for GT, a number for
            TEXT_MATCH, ...), an unknown operator or condition, or (dialect "qdrant") a
            filter that only a callable can express: TEXT_MATCH, or a range under NOT.
        TypeError: `filters` is not a `MetadataFilters`.
    """
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise TypeError(
            f"filters must be llama_index MetadataFilters, got {type(filters).__name__}"
        )
    if not filters.filters:
        return None
    result = _group(filters, False, dialect)
    if isinstance(result, dict):
        compile_filter(result)  # a malformed dict fails here, not at search time
    return result


def as_predicate(filter: MaxsimFilter | None) -> Predicate:
    """A callable on the metadata for a maxsim filter (None matches everything)."""
    predicate = compile_filter(filter)
    return predicate if predicate is not None else _always


def combine(parts: list[MaxsimFilter | None]) -> MaxsimFilter | None:
    """All of `parts` (None parts are dropped): a dict when every part is one."""
    present = [part for part in parts if part is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return _join("$and", present)


def _always(metadata: Mapping[str, Any]) -> bool:
    return True


def _group(filters: MetadataFilters, negate: bool, dialect: Dialect) -> MaxsimFilter:
    if not filters.filters:
        return _NOTHING if negate else _EVERYTHING
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        parts, operator = [_part(f, negate, dialect) for f in filters.filters], "$and"
    elif condition == FilterCondition.OR:
        parts, operator = [_part(f, negate, dialect) for f in filters.filters], "$or"
    elif condition == FilterCondition.NOT:
        # NOT: none of the filters holds, i.e. all of their negations.
        parts, operator = [_part(f, not negate, dialect) for f in filters.filters], "$and"
    else:  # pragma: no cover - a condition added to LlamaIndex after 0.14
        raise ValueError(f"unsupported filter condition {condition!r}")
    if negate:  # De Morgan: the negated parts combine the other way
        operator = "$or" if operator == "$and" else "$and"
    return _join(operator, parts)


def _part(item: MetadataFilter | MetadataFilters, negate: bool, dialect: Dialect) -> MaxsimFilter:
    if isinstance(item, MetadataFilters):
        return _group(item, negate, dialect)
    return _leaf(item, negate, dialect)


def _join(operator: str, parts: list[MaxsimFilter]) -> MaxsimFilter:
    dicts = [part for part in parts if isinstance(part, dict)]
    if len(dicts) == len(parts):
        return {operator: dicts}
    predicates = [as_predicate(part) for part in parts]
    if operator == "$and":
        return lambda metadata: all(predicate(metadata) for predicate in predicates)
    return lambda metadata: any(predicate(metadata) for predicate in predicates)


def _negated(predicate: Predicate) -> Predicate:
    return lambda metadata: not predicate(metadata)


def _leaf(item: MetadataFilter, negate: bool, dialect: Dialect) -> MaxsimFilter:
    key, value, operator = item.key, item.value, item.operator
    if operator in (FilterOperator.EQ, FilterOperator.NE):
        return _equality(key, value, negate != (operator == FilterOperator.NE))
    if operator in _RANGES:
        _check_scalar(key, operator, value)
        positive = {key: {_RANGES[operator]: value}}
        if not negate:
            return positive
        if dialect == "qdrant":
            raise ValueError(
                f"filter on {key!r}: a {operator.name} filter under FilterCondition.NOT cannot "
                "be sent to Qdrant; write the opposite range instead"
            )
        return _negated(as_predicate(positive))
    if operator in (FilterOperator.IN, FilterOperator.NIN):
        values = _values(key, operator, value)
        within = negate != (operator == FilterOperator.IN)
        return {key: {"$in" if within else "$nin": values}}
    if operator == FilterOperator.IS_EMPTY:
        return _is_empty(key, negate, dialect)
    if operator in (FilterOperator.ANY, FilterOperator.ALL, FilterOperator.CONTAINS):
        return _items(key, operator, value, negate, dialect)
    if operator in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        return _text_match(key, operator, value, negate, dialect)
    raise ValueError(f"filter on {key!r}: unsupported operator {operator!r}")


def _equality(key: str, value: Any, negate: bool) -> dict[str, Any]:
    if value is None:  # EQ None: missing or None
        if negate:
            return {"$and": [{key: {"$exists": True}}, {key: {"$ne": None}}]}
        return {"$or": [{key: {"$exists": False}}, {key: {"$eq": None}}]}
    return {key: {"$ne" if negate else "$eq": value}}


def _is_empty(key: str, negate: bool, dialect: Dialect) -> dict[str, Any]:
    # Qdrant's "$exists": False already covers [] (and cannot compare with a list).
    empties: list[Any] = [None, ""] if dialect == "qdrant" else [None, "", []]
    if negate:
        return {"$and": [{key: {"$exists": True}}, *({key: {"$ne": e}} for e in empties)]}
    return {"$or": [{key: {"$exists": False}}, *({key: {"$eq": e}} for e in empties)]}


def _items(
    key: str, operator: FilterOperator, value: Any, negate: bool, dialect: Dialect
) -> MaxsimFilter:
    if operator == FilterOperator.CONTAINS:
        _check_scalar(key, operator, value)
        wanted = [value]
    else:
        wanted = _values(key, operator, value)
    if dialect == "qdrant":  # Qdrant matches a list field when any item matches
        if operator == FilterOperator.ANY:
            return {key: {"$nin" if negate else "$in": wanted}}
        if negate:
            return {"$or": [{key: {"$ne": x}} for x in wanted]}
        return {"$and": [{key: {"$eq": x}} for x in wanted]}
    combine_items = any if operator == FilterOperator.ANY else all

    def predicate(metadata: Mapping[str, Any]) -> bool:
        items = _as_items(metadata.get(key))
        return items is not None and combine_items(x in items for x in wanted)

    return _negated(predicate) if negate else predicate


def _text_match(
    key: str, operator: FilterOperator, value: Any, negate: bool, dialect: Dialect
) -> Predicate:
    if not isinstance(value, str):
        raise ValueError(f"filter on {key!r}: {operator.name} takes a string, got {value!r}")
    if dialect == "qdrant":
        raise ValueError(
            f"filter on {key!r}: {operator.name} cannot be sent to Qdrant through maxsim "
            "filters; use EQ / IN, or a LateInteractionStore"
        )
    fold = operator == FilterOperator.TEXT_MATCH_INSENSITIVE
    needle = value.lower() if fold else value

    def predicate(metadata: Mapping[str, Any]) -> bool:
        text = metadata.get(key)
        if not isinstance(text, str):
            return False
        return needle in (text.lower() if fold else text)

    return _negated(predicate) if negate else predicate


def _as_items(value: Any) -> list[Any] | None:
    """A list value as it is, a single value as a one-item list, None when missing."""
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _values(key: str, operator: FilterOperator, value: Any) -> list[Any]:
    if value is None:
        raise ValueError(f"filter on {key!r}: {operator.name} takes a list of values, got None")
    return list(value) if isinstance(value, list) else [value]


def _check_scalar(key: str, operator: FilterOperator, value: Any) -> None:
    if value is None or isinstance(value, list):
        hint = "; use ANY or ALL for several values" if isinstance(value, list) else ""
        raise ValueError(
            f"filter on {key!r}: {operator.name} takes a single number or string, "
            f"got {value!r}{hint}"
        )
