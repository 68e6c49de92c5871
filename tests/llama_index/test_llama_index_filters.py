"""LlamaIndex MetadataFilters on ColBERTVectorStore against a brute-force reference."""

from __future__ import annotations

import random
from typing import Any

import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from llama_index.vector_stores.maxsim import ColBERTVectorStore, to_maxsim_filter
from llama_index.vector_stores.maxsim.filters import as_predicate
from maxsim.testing import FakeColBERT

F = MetadataFilter
Op = FilterOperator
MISSING = object()

# ------------------------------------------------------------------ reference


def _items(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


def _ordered(value: Any, target: Any) -> bool:
    if value is None or isinstance(value, bool) or isinstance(target, bool):
        return False
    if isinstance(value, (int, float)) and isinstance(target, (int, float)):
        return True
    return type(value) is type(target)


def reference_leaf(f: MetadataFilter, metadata: dict[str, Any]) -> bool:
    """The documented meaning of one filter, written out operator by operator."""
    v, x, op = metadata.get(f.key), f.value, f.operator
    xs = x if isinstance(x, list) else [x]
    if op == Op.EQ:
        return v is None if x is None else (v is not None and v == x)
    if op == Op.NE:
        return not reference_leaf(F(key=f.key, value=x, operator=Op.EQ), metadata)
    if op == Op.GT:
        return _ordered(v, x) and v > x
    if op == Op.GTE:
        return _ordered(v, x) and v >= x
    if op == Op.LT:
        return _ordered(v, x) and v < x
    if op == Op.LTE:
        return _ordered(v, x) and v <= x
    if op == Op.IN:
        return v is not None and any(v == item for item in xs)
    if op == Op.NIN:
        return not (v is not None and any(v == item for item in xs))
    if op in (Op.ANY, Op.ALL, Op.CONTAINS):
        items = _items(v)
        if items is None:
            return False
        if op == Op.ANY:
            return any(item in items for item in xs)
        return all(item in items for item in xs)
    if op == Op.TEXT_MATCH:
        return isinstance(v, str) and x in v
    if op == Op.TEXT_MATCH_INSENSITIVE:
        return isinstance(v, str) and x.lower() in v.lower()
    if op == Op.IS_EMPTY:
        return v is None or v == "" or v == []
    raise AssertionError(f"operator {op} has no reference")


def reference(filters: MetadataFilters, metadata: dict[str, Any]) -> bool:
    if not filters.filters:
        return True
    results = [
        reference(f, metadata) if isinstance(f, MetadataFilters) else reference_leaf(f, metadata)
        for f in filters.filters
    ]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return all(results)
    if condition == FilterCondition.OR:
        return any(results)
    return not any(results)


# ----------------------------------------------------------------------- data

LANGS = ["de", "en", "fr", "", None, MISSING, "DE"]
YEARS = [2018, 2019, 2020, 2021, 2022, 2023.5, "2020", True, None, MISSING]
TAGS = [["red"], ["red", "blue"], ["blue", "green"], [], "red", "", None, MISSING, [1, 2]]
TITLES = ["The Eiffel Tower", "eiffel tower facts", "Berlin", "", 42, None, MISSING]


def _dataset(seed: int = 7, size: int = 48) -> list[TextNode]:
    rng = random.Random(seed)
    nodes = []
    for i in range(size):
        metadata = {}
        for key, pool in (("lang", LANGS), ("year", YEARS), ("tags", TAGS), ("title", TITLES)):
            value = rng.choice(pool)
            if value is not MISSING:
                metadata[key] = value
        nodes.append(TextNode(id_=f"n{i}", text=f"document {i} about things", metadata=metadata))
    return nodes


LEAVES = [
    F(key="lang", value="de"),
    F(key="lang", value="de", operator=Op.NE),
    F(key="lang", value=None, operator=Op.EQ),
    F(key="lang", value=None, operator=Op.NE),
    F(key="year", value=2020),
    F(key="year", value=2020, operator=Op.GT),
    F(key="year", value=2020, operator=Op.GTE),
    F(key="year", value=2021.5, operator=Op.LT),
    F(key="year", value=2020, operator=Op.LTE),
    F(key="year", value="2019", operator=Op.GT),
    F(key="lang", value="e", operator=Op.GTE),
    F(key="lang", value=["de", "fr"], operator=Op.IN),
    F(key="lang", value="en", operator=Op.IN),
    F(key="year", value=[2019, 2022], operator=Op.IN),
    F(key="lang", value=["en"], operator=Op.NIN),
    F(key="lang", value=[], operator=Op.NIN),
    F(key="tags", value=["red", "green"], operator=Op.ANY),
    F(key="tags", value=["red", "blue"], operator=Op.ALL),
    F(key="tags", value="red", operator=Op.CONTAINS),
    F(key="tags", value=2, operator=Op.CONTAINS),
    F(key="title", value="Tower", operator=Op.TEXT_MATCH),
    F(key="title", value="EIFFEL", operator=Op.TEXT_MATCH_INSENSITIVE),
    F(key="tags", value=None, operator=Op.IS_EMPTY),
    F(key="lang", value=None, operator=Op.IS_EMPTY),
]
CONDITIONS = [FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT]


def test_every_operator_and_condition_is_covered() -> None:
    assert {leaf.operator for leaf in LEAVES} == set(FilterOperator)
    assert set(CONDITIONS) == set(FilterCondition)


def _random_tree(rng: random.Random, depth: int) -> MetadataFilters:
    children: list[MetadataFilter | MetadataFilters] = []
    for _ in range(rng.randint(0 if depth else 1, 3)):
        if depth < 2 and rng.random() < 0.35:
            children.append(_random_tree(rng, depth + 1))
        else:
            children.append(rng.choice(LEAVES))
    return MetadataFilters(filters=children, condition=rng.choice(CONDITIONS))


def _cases() -> list[MetadataFilters]:
    rng = random.Random(11)
    single = [
        MetadataFilters(filters=[leaf], condition=condition)
        for leaf in LEAVES
        for condition in CONDITIONS
    ]
    return single + [_random_tree(rng, 0) for _ in range(200)]


CASES = _cases()


@pytest.fixture(scope="module")
def populated() -> tuple[ColBERTVectorStore, list[TextNode]]:
    nodes = _dataset()
    vector_store = ColBERTVectorStore(model=FakeColBERT(dim=16))
    vector_store.add(nodes)
    return vector_store, nodes


def _expected(filters: MetadataFilters, nodes: list[TextNode]) -> set[str]:
    return {node.node_id for node in nodes if reference(filters, node.metadata)}


@pytest.mark.parametrize("index", range(len(CASES)))
def test_get_nodes_matches_reference(populated: Any, index: int) -> None:
    vector_store, nodes = populated
    filters = CASES[index]
    found = {node.node_id for node in vector_store.get_nodes(filters=filters)}
    assert found == _expected(filters, nodes)


@pytest.mark.parametrize("index", range(0, len(CASES), 3))
def test_query_filters_before_scoring(populated: Any, index: int) -> None:
    vector_store, nodes = populated
    filters = CASES[index]
    result = vector_store.query(
        VectorStoreQuery(query_str="document things", similarity_top_k=len(nodes), filters=filters)
    )
    assert set(result.ids) == _expected(filters, nodes)


def test_dict_where_the_grammar_allows() -> None:
    dict_operators = {Op.EQ, Op.NE, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.IN, Op.NIN, Op.IS_EMPTY}
    for leaf in LEAVES:
        for condition in (FilterCondition.AND, FilterCondition.OR):
            translated = to_maxsim_filter(MetadataFilters(filters=[leaf], condition=condition))
            assert isinstance(translated, dict) == (leaf.operator in dict_operators), leaf
    nested = MetadataFilters(
        filters=[
            F(key="lang", value="de"),
            MetadataFilters(
                filters=[F(key="year", value=[2020], operator=Op.IN), F(key="lang", value=None)],
                condition=FilterCondition.NOT,
            ),
        ],
        condition=FilterCondition.OR,
    )
    assert to_maxsim_filter(nested) == {
        "$or": [
            {"lang": {"$eq": "de"}},
            {
                "$and": [
                    {"year": {"$nin": [2020]}},
                    {"$and": [{"lang": {"$exists": True}}, {"lang": {"$ne": None}}]},
                ]
            },
        ]
    }
    # NOT over a range needs a callable: values of other types match neither side.
    negated_range = MetadataFilters(
        filters=[F(key="year", value=2020, operator=Op.GT)], condition=FilterCondition.NOT
    )
    assert callable(to_maxsim_filter(negated_range))
    assert to_maxsim_filter(None) is None
    assert to_maxsim_filter(MetadataFilters(filters=[])) is None


def test_agrees_with_llama_index_simple_store_where_both_define_it() -> None:
    """LlamaIndex's own in-memory filter, on data where its rules and ours coincide."""
    rng = random.Random(3)
    rows = []
    for _ in range(40):
        metadata: dict[str, Any] = {}
        if rng.random() < 0.8:
            metadata["lang"] = rng.choice(["de", "en", "fr"])
        if rng.random() < 0.8:
            metadata["year"] = rng.choice([2019, 2020, 2021, 2022])
        if rng.random() < 0.8:
            metadata["tags"] = rng.choice([[], ["red"], ["red", "blue"], ["green"]])
        if rng.random() < 0.8:
            metadata["title"] = rng.choice(["The Eiffel Tower", "eiffel facts", "Berlin"])
        rows.append(metadata)
    leaves = [
        leaf
        for leaf in LEAVES
        if leaf.value is not None
        and not (leaf.operator == Op.IN and not isinstance(leaf.value, list))
        and not (leaf.operator in (Op.GT, Op.GTE) and isinstance(leaf.value, str))
        and not (leaf.operator == Op.CONTAINS and leaf.value == 2)
    ] + [F(key="tags", value=None, operator=Op.IS_EMPTY)]
    for leaf in leaves:
        for other in leaves[::5]:
            for condition in CONDITIONS:
                filters = MetadataFilters(filters=[leaf, other], condition=condition)
                theirs = build_metadata_filter_fn(lambda i: rows[i], filters)
                match = as_predicate(to_maxsim_filter(filters))
                for i, metadata in enumerate(rows):
                    assert match(metadata) == theirs(i), (filters, metadata)


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (F(key="year", value=[2020, 2021], operator=Op.GT), "single number or string"),
        (F(key="year", value=None, operator=Op.LT), "single number or string"),
        (F(key="lang", value=None, operator=Op.IN), "list of values"),
        (F(key="tags", value=["a", "b"], operator=Op.CONTAINS), "ANY or ALL"),
        (F(key="title", value=3, operator=Op.TEXT_MATCH), "takes a string"),
    ],
)
def test_values_that_do_not_suit_the_operator(leaf: MetadataFilter, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_maxsim_filter(MetadataFilters(filters=[leaf]))


def test_filters_must_be_metadata_filters() -> None:
    with pytest.raises(TypeError, match="MetadataFilters"):
        to_maxsim_filter({"lang": "de"})  # type: ignore[arg-type]


# --------------------------------------------------------------------- qdrant

QDRANT_LEAVES = [
    F(key="lang", value="de"),
    F(key="lang", value="de", operator=Op.NE),
    F(key="year", value=2020, operator=Op.GT),
    F(key="year", value=2021.5, operator=Op.LTE),
    F(key="lang", value=["de", "fr"], operator=Op.IN),
    F(key="lang", value=["en"], operator=Op.NIN),
    F(key="tags", value=["red", "green"], operator=Op.ANY),
    F(key="tags", value=["red", "blue"], operator=Op.ALL),
    F(key="tags", value="red", operator=Op.CONTAINS),
    F(key="tags", value=None, operator=Op.IS_EMPTY),
    F(key="lang", value=None, operator=Op.IS_EMPTY),
]


@pytest.fixture(scope="module")
def qdrant_populated() -> tuple[ColBERTVectorStore, list[TextNode]]:
    pytest.importorskip("qdrant_client")
    from qdrant_client import QdrantClient

    from maxsim.stores import QdrantStore

    rng = random.Random(5)
    nodes = []
    for i in range(30):
        metadata: dict[str, Any] = {}
        for key, pool in (
            ("lang", ["de", "en", "fr", "", None, MISSING]),
            ("year", [2019, 2020, 2021, 2022.5, None, MISSING]),
            ("tags", [["red"], ["red", "blue"], ["green"], [], "red", "", None, MISSING]),
        ):
            value = rng.choice(pool)
            if value is not MISSING:
                metadata[key] = value
        nodes.append(TextNode(id_=f"q{i}", text=f"qdrant document {i}", metadata=metadata))
    store = QdrantStore(FakeColBERT(dim=16), QdrantClient(":memory:"), "llama-index-filters")
    vector_store = ColBERTVectorStore(store=store)
    vector_store.add(nodes)
    return vector_store, nodes


def test_qdrant_store_applies_the_same_filters(qdrant_populated: Any) -> None:
    vector_store, nodes = qdrant_populated
    rng = random.Random(2)
    cases = [MetadataFilters(filters=[leaf]) for leaf in QDRANT_LEAVES]
    cases += [
        MetadataFilters(
            filters=[leaf], condition=FilterCondition.NOT
        )  # NOT without ranges works on Qdrant
        for leaf in QDRANT_LEAVES
        if leaf.operator not in (Op.GT, Op.LTE)
    ]
    cases += [
        MetadataFilters(
            filters=[
                rng.choice(QDRANT_LEAVES),
                MetadataFilters(filters=rng.sample(QDRANT_LEAVES, 2), condition=condition),
            ],
            condition=rng.choice([FilterCondition.AND, FilterCondition.OR]),
        )
        for condition in (FilterCondition.AND, FilterCondition.OR)
        for _ in range(10)
    ]
    for filters in cases:
        result = vector_store.query(
            VectorStoreQuery(query_str="qdrant document", similarity_top_k=50, filters=filters)
        )
        assert set(result.ids) == _expected(filters, nodes), filters


def test_qdrant_store_refuses_what_needs_a_callable(qdrant_populated: Any) -> None:
    vector_store, _ = qdrant_populated
    for filters, message in [
        (MetadataFilters(filters=[F(key="lang", value="d", operator=Op.TEXT_MATCH)]), "Qdrant"),
        (
            MetadataFilters(
                filters=[F(key="year", value=2020, operator=Op.GT)],
                condition=FilterCondition.NOT,
            ),
            "opposite range",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            vector_store.query(VectorStoreQuery(query_str="document", filters=filters))
