"""Tests for thorn.filters: Q objects over plain objects and dicts."""

from __future__ import annotations

import operator
import pickle
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thorn.filters import MISSING, Q, compile_filters

N = SimpleNamespace

# opcode, rhs, a value that matches, a value that does not
OPERATOR_CASES: list[tuple[str, Any, Any, Any]] = [
    ("eq", "PUBLISHED", "PUBLISHED", "DRAFT"),
    ("ne", "DRAFT", "PUBLISHED", "DRAFT"),
    ("gt", 3, 4, 3),
    ("gte", 3, 3, 2),
    ("lt", 3, 2, 3),
    ("lte", 3, 3, 4),
    ("is", None, None, 0),
    ("is_not", None, 0, None),
    ("in", {"a", "b"}, "a", "c"),
    ("not_in", {"a", "b"}, "c", "a"),
    ("contains", "b", ["a", "b"], ["a"]),
    ("startswith", "The", "The End", "An End"),
    ("endswith", "End", "The End", "The Start"),
]
OPCODES = [case[0] for case in OPERATOR_CASES]


class DjangoLikeQ:
    """The shape of django.db.models.Q, without Django."""

    def __init__(
        self,
        *children: object,
        connector: str = "AND",
        negated: bool = False,
        **kwargs: object,
    ) -> None:
        self.children = [*children, *sorted(kwargs.items())]
        self.connector = connector
        self.negated = negated


def leaf(opcode: str, rhs: Any, *, now: bool = False) -> Q:
    prefix = "now_" if now else ""
    return Q(**{f"value__{prefix}{opcode}": rhs})


# -- every operator --------------------------------------------------------------


def test_the_operator_table_lists_every_operator_of_the_manual() -> None:
    assert set(Q.operators) == set(OPCODES)


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_operator_matches_a_value_that_satisfies_it(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    assert leaf(opcode, rhs)(N(value=yes)) is True


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_operator_does_not_match_a_value_that_fails_it(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    assert leaf(opcode, rhs)(N(value=no)) is False


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_operator_does_not_match_a_missing_attribute(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    assert leaf(opcode, rhs)(N()) is False
    assert leaf(opcode, rhs, now=True)(N(), N(value=no)) is False


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_plain_operator_ignores_the_previous_version(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    assert leaf(opcode, rhs)(N(value=yes), N(value=yes)) is True


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_now_operator_matches_the_transition(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    assert leaf(opcode, rhs, now=True)(N(value=yes), N(value=no)) is True


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_now_operator_does_not_match_when_it_already_held(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    assert leaf(opcode, rhs, now=True)(N(value=yes), N(value=yes)) is False


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_now_operator_does_not_match_when_it_does_not_hold_now(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    q = leaf(opcode, rhs, now=True)
    assert q(N(value=no), N(value=no)) is False
    assert q(N(value=no), N(value=yes)) is False
    assert q(N(value=no)) is False


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_now_operator_without_a_previous_version_counts_as_a_transition(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    q = leaf(opcode, rhs, now=True)
    assert q(N(value=yes)) is True
    assert q(N(value=yes), None) is True


@pytest.mark.parametrize(("opcode", "rhs", "yes", "no"), OPERATOR_CASES, ids=OPCODES)
def test_now_operator_counts_a_previous_version_without_the_field_as_was_not(
    opcode: str, rhs: Any, yes: Any, no: Any
) -> None:
    assert leaf(opcode, rhs, now=True)(N(value=yes), N()) is True


def test_now_eq_matches_only_the_transition() -> None:
    published = Q(state__now_eq="PUBLISHED")
    assert published(N(state="PUBLISHED"), N(state="DRAFT"))
    assert not published(N(state="PUBLISHED"), N(state="PUBLISHED"))
    assert not published(N(state="DRAFT"), N(state="PUBLISHED"))


def test_now_eq_matches_a_brand_new_object() -> None:
    assert Q(state__now_eq="PUBLISHED")(N(state="PUBLISHED"), None)


def test_now_ne_matches_leaving_a_value() -> None:
    q = Q(state__now_ne="DRAFT")
    assert q(N(state="PUBLISHED"), N(state="DRAFT"))
    assert not q(N(state="PUBLISHED"), N(state="PREVIEW"))


def test_now_gt_matches_when_previously_equal_to_the_bound() -> None:
    q = Q(score__now_gt=10)
    assert q(N(score=11), N(score=10))
    assert q(N(score=11), N(score=3))
    assert not q(N(score=12), N(score=11))


def test_now_gt_matches_when_previous_value_was_none() -> None:
    assert Q(score__now_gt=10)(N(score=11), N(score=None))


def test_now_gte_does_not_match_staying_on_the_bound() -> None:
    q = Q(score__now_gte=10)
    assert not q(N(score=10), N(score=10))
    assert q(N(score=10), N(score=9))


def test_now_lt_and_now_lte_match_crossing_downwards() -> None:
    assert Q(score__now_lt=10)(N(score=9), N(score=10))
    assert not Q(score__now_lt=10)(N(score=8), N(score=9))
    assert Q(score__now_lte=10)(N(score=10), N(score=11))
    assert not Q(score__now_lte=10)(N(score=10), N(score=10))


def test_now_is_and_now_is_not_use_identity() -> None:
    marker = object()
    assert Q(ref__now_is=marker)(N(ref=marker), N(ref=object()))
    assert not Q(ref__now_is=marker)(N(ref=marker), N(ref=marker))
    assert Q(ref__now_is_not=marker)(N(ref=object()), N(ref=marker))
    assert not Q(ref__now_is_not=marker)(N(ref=object()), N(ref=object()))


def test_now_contains_matches_an_added_element() -> None:
    q = Q(tags__now_contains="urgent")
    assert q(N(tags={"urgent", "x"}), N(tags={"x"}))
    assert not q(N(tags={"urgent"}), N(tags={"urgent"}))


# -- truth tests -------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, 1, "x", [0], 0.5, object()])
def test_eq_true_matches_any_truthy_value(value: object) -> None:
    assert Q(flag__eq=True)(N(flag=value))
    assert not Q(flag__eq=False)(N(flag=value))


@pytest.mark.parametrize("value", [False, 0, "", [], None, 0.0])
def test_eq_false_matches_any_falsy_value(value: object) -> None:
    assert Q(flag__eq=False)(N(flag=value))
    assert not Q(flag__eq=True)(N(flag=value))


def test_ne_true_means_not_a_and_ne_false_means_a() -> None:
    assert Q(flag__ne=True)(N(flag=0))
    assert not Q(flag__ne=True)(N(flag=2))
    assert Q(flag__ne=False)(N(flag=2))
    assert not Q(flag__ne=False)(N(flag=""))


def test_truth_tests_treat_a_missing_field_as_falsy() -> None:
    assert Q(flag__eq=False)(N())
    assert Q(flag__ne=True)(N())
    assert not Q(flag__eq=True)(N())
    assert not Q(flag__ne=False)(N())
    assert Q(a__b__eq=False)({"a": {}})


def test_eq_with_an_integer_is_not_a_truth_test() -> None:
    assert not Q(flag__eq=1)(N(flag=2))
    assert not Q(flag__eq=0)(N(flag=None))
    assert Q(flag__eq=1)(N(flag=1.0))


def test_now_eq_true_matches_becoming_truthy() -> None:
    q = Q(is_staff__now_eq=True)
    assert q(N(is_staff=True), N(is_staff=False))
    assert q(N(is_staff=1), N())
    assert not q(N(is_staff=True), N(is_staff="yes"))


def test_now_eq_false_matches_becoming_falsy() -> None:
    q = Q(active__now_eq=False)
    assert q(N(active=False), N(active=True))
    assert not q(N(active=False), N(active=None))
    assert q(N(active=0))


# -- operator edge cases ---------------------------------------------------------


def test_is_none_tests_for_none_but_not_for_a_missing_field() -> None:
    assert Q(parent__is=None)(N(parent=None))
    assert not Q(parent__is=None)(N(parent=0))
    assert not Q(parent__is=None)(N())


@pytest.mark.parametrize("opcode", ["gt", "gte", "lt", "lte"])
@pytest.mark.parametrize("value", [None, "4", object(), [1]])
def test_ordering_with_none_or_incomparable_values_does_not_match(
    opcode: str, value: object
) -> None:
    assert leaf(opcode, 3)(N(value=value)) is False


@pytest.mark.parametrize("opcode", ["gt", "gte", "lt", "lte"])
def test_ordering_against_none_is_rejected_when_building(opcode: str) -> None:
    with pytest.raises(ValueError, match="value__is=None"):
        leaf(opcode, None)


def test_ordering_compares_strings_and_dates() -> None:
    assert Q(name__gt="b")(N(name="c"))
    assert Q(when__lt=(2024, 1))(N(when=(2023, 12)))


def test_in_with_unhashable_value_does_not_raise() -> None:
    assert Q(value__in={1, 2})(N(value=[1])) is False
    assert Q(value__not_in={1, 2})(N(value=[1])) is False
    assert Q(value__in=[[1], [2]])(N(value=[1])) is True


def test_in_accepts_strings_lists_tuples_and_dicts() -> None:
    assert Q(x__in="abc")(N(x="b"))
    assert Q(x__in=[1, 2])(N(x=2))
    assert Q(x__in=(1, 2))(N(x=1))
    assert Q(x__in={"k": 1})(N(x="k"))


@pytest.mark.parametrize("rhs", [3, None, (i for i in range(3))])
def test_in_needs_a_collection(rhs: object) -> None:
    with pytest.raises(ValueError, match="collection"):
        Q(x__in=rhs)
    with pytest.raises(ValueError, match="collection"):
        Q(x__now_not_in=rhs)


@pytest.mark.parametrize(
    ("container", "element"),
    [("abc", "b"), ([1, 2], 2), ((1, 2), 1), ({1, 2}, 1), ({"k": 1}, "k")],
)
def test_contains_works_with_any_container(container: object, element: object) -> None:
    assert Q(x__contains=element)(N(x=container))


@pytest.mark.parametrize("value", [5, None, "abc"])
def test_contains_on_a_non_container_or_wrong_type_does_not_match(
    value: object,
) -> None:
    assert Q(x__contains=1)(N(x=value)) is False


def test_startswith_and_endswith_accept_a_tuple_of_prefixes() -> None:
    assert Q(x__startswith=("A", "The"))(N(x="The End"))
    assert Q(x__endswith=("End", "Start"))(N(x="The Start"))


@pytest.mark.parametrize("value", [b"The End", 7, None, ["The"]])
def test_startswith_and_endswith_do_not_match_non_strings(value: object) -> None:
    assert Q(x__startswith="The")(N(x=value)) is False
    assert Q(x__endswith="End")(N(x=value)) is False


@pytest.mark.parametrize("rhs", [1, None, b"x", ("a", 1)])
def test_startswith_needs_a_string(rhs: object) -> None:
    with pytest.raises(ValueError, match="needs a str"):
        Q(x__startswith=rhs)


# -- keys ------------------------------------------------------------------------


def test_key_without_operator_raises_and_suggests_eq() -> None:
    with pytest.raises(ValueError, match=r"state=.*state__eq="):
        Q(state="PUBLISHED")


def test_nested_key_without_operator_suggests_eq_on_the_full_path() -> None:
    with pytest.raises(ValueError, match="author__last_name__eq"):
        Q(author__last_name="Benes")


def test_unknown_operator_raises_and_lists_the_operators() -> None:
    with pytest.raises(ValueError, match="startswith"):
        Q(state__equals="x")
    with pytest.raises(ValueError, match="has no operator"):
        Q(state__now_equals="x")


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("state__exact", "state__eq="),
        ("state__now_exact", "state__now_eq="),
        ("author__name__iexact", "author__name__eq="),
        ("title__icontains", "title__contains="),
        ("title__istartswith", "title__startswith="),
        ("title__iendswith", "title__endswith="),
        ("author__isnull", "author__is=None"),
        ("author__isnull", "author__is_not=None"),
        ("age__range", "age__gte="),
        ("title__regex", "title__contains="),
        ("title__iregex", "no regular-expression operator"),
    ],
)
def test_a_django_lookup_is_refused_with_the_thorn_operator_to_use(
    key: str, hint: str
) -> None:
    with pytest.raises(ValueError) as info:
        Q(**{key: "x"})
    message = str(info.value)
    assert "Django" in message
    assert "not supported" in message
    assert hint in message
    assert f"{key}__eq" not in message  # state__exact__eq would not work either


def test_a_case_insensitive_django_lookup_says_thorn_compares_case() -> None:
    with pytest.raises(ValueError, match="case-sensitive"):
        Q(title__iexact="x")


def test_key_without_field_name_raises() -> None:
    with pytest.raises(ValueError, match="no field name"):
        Q(eq=1)
    with pytest.raises(ValueError, match="no field name"):
        Q(now_eq=1)


def test_key_with_an_empty_path_segment_raises() -> None:
    with pytest.raises(ValueError, match="empty field name"):
        Q(a____eq=1)


def test_a_field_named_like_an_operator_is_allowed_before_the_operator() -> None:
    assert Q(eq__eq=1)(N(eq=1))
    assert Q(is__is=None)({"is": None})


# -- paths -------------------------------------------------------------------------


def test_nested_attributes_are_read_on_objects() -> None:
    article = N(author=N(account=N(is_staff=True, name="Elaine")))
    assert Q(author__account__is_staff__eq=True)(article)
    assert Q(author__account__name__startswith="El")(article)


def test_nested_keys_are_read_on_dicts() -> None:
    payload = {"author": {"account": {"is_staff": True}}}
    assert Q(author__account__is_staff__eq=True)(payload)


def test_paths_can_mix_objects_and_mappings() -> None:
    obj = N(data={"author": N(name="Kramer")})
    assert Q(data__author__name__eq="Kramer")(obj)
    assert Q(data__author__name__eq="Kramer")(MappingProxyType({"data": obj.data}))


def test_mappings_use_item_access_not_attributes() -> None:
    assert not Q(items__is_not=None)({"a": 1})
    assert Q(items__eq=2)({"items": 2})


def test_missing_attribute_along_the_path_does_not_match() -> None:
    assert not Q(author__account__name__eq="x")(N(author=None))
    assert not Q(author__account__name__eq="x")(N(author=N()))
    assert not Q(author__account__name__ne="x")({"author": {}})


def test_getter_reports_missing_as_a_falsy_sentinel() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"


# -- combination -------------------------------------------------------------------


def test_several_keyword_conditions_must_all_match() -> None:
    q = Q(state__eq="PUBLISHED", title__startswith="The")
    assert q(N(state="PUBLISHED", title="The End"))
    assert not q(N(state="PUBLISHED", title="An End"))


def test_or_matches_when_either_side_matches() -> None:
    q = Q(state__eq="PUBLISHED") | Q(state__eq="PREVIEW")
    assert q(N(state="PREVIEW"))
    assert q(N(state="PUBLISHED"))
    assert not q(N(state="DRAFT"))


def test_and_matches_when_both_sides_match() -> None:
    q = Q(a__eq=1) & Q(b__eq=2)
    assert q(N(a=1, b=2))
    assert not q(N(a=1, b=3))


def test_invert_negates_the_query() -> None:
    q = ~Q(title__startswith="The")
    assert q(N(title="An End"))
    assert not q(N(title="The End"))
    assert q(N())


def test_xor_matches_when_exactly_one_side_matches() -> None:
    q = Q(a__eq=1) ^ Q(b__eq=1)
    assert q(N(a=1, b=0))
    assert not q(N(a=1, b=1))
    assert not q(N(a=0, b=0))


def test_manual_example_combines_or_and_and_negation() -> None:
    q = Q(state__eq="PUBLISHED") | Q(state__eq="PREVIEW") & ~Q(title__startswith="The")
    assert q(N(state="PUBLISHED", title="The End"))
    assert q(N(state="PREVIEW", title="An End"))
    assert not q(N(state="PREVIEW", title="The End"))
    assert not q(N(state="DRAFT", title="An End"))


def test_deep_nesting_evaluates_like_python_booleans() -> None:
    q = ~(Q(a__eq=1) | ~(Q(b__eq=2) & (Q(c__eq=3) | Q(d__eq=4))))
    for a in (0, 1):
        for b in (0, 2):
            for c in (0, 3):
                for d in (0, 4):
                    expected = not (a == 1 or not (b == 2 and (c == 3 or d == 4)))
                    assert q(N(a=a, b=b, c=c, d=d)) is expected


def test_positional_q_objects_are_anded_with_keywords() -> None:
    q = Q(Q(a__eq=1) | Q(a__eq=2), b__eq=3)
    assert q(N(a=2, b=3))
    assert not q(N(a=2, b=4))


def test_positional_key_value_tuples_are_conditions() -> None:
    assert Q(("a__eq", 1))(N(a=1))


def test_positional_argument_of_another_type_raises() -> None:
    with pytest.raises(TypeError, match="Q objects"):
        Q(42)


def test_combining_with_a_non_q_raises() -> None:
    with pytest.raises(TypeError, match="wrap the condition"):
        Q(a__eq=1) & 5  # type: ignore[operator]


def test_empty_q_matches_everything() -> None:
    assert Q()(N())
    assert Q()(None)


def test_negated_empty_q_still_matches_everything_like_django() -> None:
    assert (~Q())(N())


def test_empty_q_is_ignored_when_combined() -> None:
    q = Q(a__eq=1)
    assert (Q() & q) == q
    assert (q | Q()) == q
    assert (Q() | q)(N(a=2)) is False


def test_transitions_pass_the_previous_version_through_the_tree() -> None:
    q = Q(state__now_eq="PUBLISHED") & ~Q(title__now_startswith="Draft")
    assert q(N(state="PUBLISHED", title="x"), N(state="DRAFT", title="y"))
    assert not q(N(state="PUBLISHED", title="Draft 2"), N(state="DRAFT", title="Other"))


# -- Django-shaped Q objects ---------------------------------------------------------


def test_a_django_shaped_q_is_accepted_as_positional_argument() -> None:
    q = Q(DjangoLikeQ(state__eq="PUBLISHED"))
    assert q(N(state="PUBLISHED"))
    assert not q(N(state="DRAFT"))


def test_a_django_shaped_q_keeps_connector_negation_and_nesting() -> None:
    django_q = DjangoLikeQ(
        DjangoLikeQ(a__eq=1, negated=True),
        ("b__gt", 5),
        connector="OR",
    )
    q = Q(django_q)
    assert q(N(a=2, b=0))
    assert q(N(a=1, b=6))
    assert not q(N(a=1, b=5))
    assert q == (~Q(a__eq=1) | Q(b__gt=5))


def test_a_django_shaped_q_can_be_combined_with_a_thorn_q() -> None:
    q = Q(a__eq=1) & DjangoLikeQ(b__eq=2)
    assert q(N(a=1, b=2))
    assert not q(N(a=1, b=3))
    assert compile_filters(DjangoLikeQ(b__eq=2))(N(b=2))


def test_a_django_shaped_q_with_a_key_without_operator_raises() -> None:
    with pytest.raises(ValueError, match="state__eq"):
        Q(DjangoLikeQ(state="PUBLISHED"))


def test_a_django_shaped_q_with_an_unknown_connector_raises() -> None:
    with pytest.raises(ValueError, match="connector"):
        Q(DjangoLikeQ(a__eq=1, b__eq=2, connector="NAND"))


@pytest.mark.parametrize(
    ("combine", "expected"),
    [
        (lambda a, b: a & b, Q(a__eq=1) & Q(b__eq=2)),
        (lambda a, b: a | b, Q(a__eq=1) | Q(b__eq=2)),
        (lambda a, b: a ^ b, Q(a__eq=1) ^ Q(b__eq=2)),
    ],
)
def test_a_django_shaped_q_on_the_left_is_combined_when_it_lets_thorn(
    combine: Any, expected: Q
) -> None:
    # DjangoLikeQ has no operators, so Python asks Thorn's Q (__rand__ ...).
    q = combine(DjangoLikeQ(a__eq=1), Q(b__eq=2))
    assert isinstance(q, Q)
    assert q == expected


def test_a_thing_that_is_no_q_on_the_left_is_refused_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"wrap the condition in Q\(\.\.\.\)"):
        1 & Q(a__eq=1)  # type: ignore[operator]


@pytest.mark.parametrize("combine", [operator.and_, operator.or_, operator.xor])
def test_real_django_q_on_the_left_raises_a_type_error_saying_what_to_write(
    combine: Any,
) -> None:
    """Django 5.2's own operator refuses Thorn's Q; the message says why."""
    models = pytest.importorskip("django.db.models")
    django_q = models.Q(state__eq="PUBLISHED")
    with pytest.raises(TypeError) as info:
        combine(django_q, Q(title__startswith="The"))
    message = str(info.value)
    assert "Django" in message
    assert "Q(...) & DjangoQ(...)" in message  # Thorn's on the left
    assert "Q(DjangoQ(...)) & Q(...)" in message  # or the Django one wrapped


def test_real_django_q_on_the_right_or_wrapped_works() -> None:
    models = pytest.importorskip("django.db.models")
    django_q = models.Q(state__eq="PUBLISHED")
    thorn_q = Q(title__startswith="The")
    assert thorn_q & django_q == Q(title__startswith="The") & Q(state__eq="PUBLISHED")
    assert (Q(django_q) & thorn_q)(N(state="PUBLISHED", title="The End"))
    assert (thorn_q & django_q)(N(state="PUBLISHED", title="The End"))
    assert not (Q(django_q) & thorn_q)(N(state="DRAFT", title="The End"))


def test_a_thorn_q_has_the_django_shape() -> None:
    q = Q(a__eq=1) | ~Q(b__eq=2)
    assert q.connector == "OR"
    assert q.negated is False
    assert q.children == (("a__eq", 1), ~Q(b__eq=2))


# -- introspection -----------------------------------------------------------------


def test_uses_transitions_is_false_without_now_operators() -> None:
    assert not Q(a__eq=1).uses_transitions
    assert not (Q(a__eq=1) | ~Q(b__gt=2)).uses_transitions
    assert not Q().uses_transitions


def test_uses_transitions_finds_now_operators_anywhere_in_the_tree() -> None:
    assert Q(a__now_eq=1).uses_transitions
    assert (Q(a__eq=1) | ~(Q(b__eq=1) & Q(c__now_in={1}))).uses_transitions
    assert Q(DjangoLikeQ(x__now_gt=1)).uses_transitions


def test_fields_lists_the_top_level_field_names() -> None:
    q = Q(author__name__eq="x") | ~Q(state__eq="y", title__now_startswith="T")
    assert q.fields == frozenset({"author", "state", "title"})
    assert Q().fields == frozenset()


def test_repr_reads_like_the_code_that_built_it() -> None:
    assert repr(Q(a__eq=1, b__in=[2])) == "Q(a__eq=1, b__in=[2])"
    assert repr(Q()) == "Q()"
    assert repr(~Q(a__eq=1)) == "~Q(a__eq=1)"
    q = Q(a__eq=1) | (Q(b__eq=2) & ~Q(c__startswith="x"))
    assert repr(q) == "Q(a__eq=1) | (Q(b__eq=2) & ~Q(c__startswith='x'))"
    assert repr(~(Q(a__eq=1) | Q(b__eq=2))) == "~(Q(a__eq=1) | Q(b__eq=2))"


def test_repr_evaluates_back_to_an_equal_q() -> None:
    q = ~(Q(a__eq=1) ^ Q(b__now_ne=2)) | (Q(c__is=None) & Q(d__lt=4, e__gt=1))
    assert eval(repr(q), {"Q": Q}) == q  # noqa: S307


def test_repr_of_a_key_that_is_not_an_identifier() -> None:
    q = Q(**{"x-y__eq": 1})
    assert repr(q) == "Q(**{'x-y__eq': 1})"
    assert q({"x-y": 1})


def test_equality_ignores_keyword_order() -> None:
    assert Q(a__eq=1, b__eq=2) == Q(b__eq=2, a__eq=1)
    assert hash(Q(a__eq=1, b__eq=2)) == hash(Q(b__eq=2, a__eq=1))
    assert Q(a__eq=1) != Q(a__eq=2)
    assert Q(a__eq=1) != ~Q(a__eq=1)
    assert Q(a__eq=1) != "Q(a__eq=1)"


def test_double_negation_gives_back_an_equal_q() -> None:
    q = Q(a__eq=1) | Q(b__eq=2)
    assert ~~q == q
    assert q.negate() == ~q


def test_q_objects_are_immutable() -> None:
    q = Q(a__eq=1)
    with pytest.raises(AttributeError, match="immutable"):
        q.negated = True  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del q.children


def test_q_objects_survive_pickling() -> None:
    q = Q(a__eq=1) | ~Q(b__now_gt=2)
    clone = pickle.loads(pickle.dumps(q))  # noqa: S301
    assert clone == q
    assert clone(N(a=0, b=3), N(b=1)) is False
    assert clone(N(a=1, b=3), N(b=1)) is True


def test_gates_are_all_and_any() -> None:
    assert Q.gates["AND"] is all
    assert Q.gates["OR"] is any


def test_apply_op_and_apply_trans_op_are_the_building_blocks() -> None:
    def getter(obj: Any) -> Any:
        return obj.x

    def test(value: Any) -> bool:
        return bool(value == 1)

    assert Q.apply_op(getter, test, N(x=1))
    assert Q.apply_trans_op(getter, test, N(x=1), N(x=0))
    assert not Q.apply_trans_op(getter, test, N(x=1), N(x=1))
    assert Q.apply_trans_op(getter, test, N(x=1), None)


def test_compile_builds_a_predicate_from_children() -> None:
    predicate = Q.compile([("a__eq", 1), Q(b__eq=2)], "OR", True)
    assert predicate(N(a=0, b=0), None)
    assert not predicate(N(a=1, b=0), None)


def test_compile_filters_returns_a_lone_q_unchanged() -> None:
    q = Q(a__eq=1)
    assert compile_filters(q) is q
    assert compile_filters(a__eq=1) == q
    assert compile_filters(q, b__eq=2) == Q(q, b__eq=2)


# -- properties --------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.text(max_size=3),
)
non_bool = scalars


@given(value=non_bool, rhs=non_bool)
def test_eq_agrees_with_python_equality_for_non_bool_values(
    value: object, rhs: object
) -> None:
    assert Q(a__eq=rhs)(N(a=value)) == (value == rhs)
    assert Q(a__ne=rhs)(N(a=value)) == (value != rhs)


@given(value=st.integers(), rhs=st.integers())
def test_ordering_agrees_with_python_on_integers(value: int, rhs: int) -> None:
    obj = N(a=value)
    assert Q(a__gt=rhs)(obj) == (value > rhs)
    assert Q(a__gte=rhs)(obj) == (value >= rhs)
    assert Q(a__lt=rhs)(obj) == (value < rhs)
    assert Q(a__lte=rhs)(obj) == (value <= rhs)


@st.composite
def queries(draw: st.DrawFn, depth: int = 3) -> Q:
    if depth == 0 or draw(st.booleans()):
        field = draw(st.sampled_from(["a", "b", "c"]))
        opcode = draw(st.sampled_from(["eq", "ne", "gt", "lte", "now_eq", "now_gt"]))
        return Q(**{f"{field}__{opcode}": draw(st.integers(0, 3))})
    left = draw(queries(depth=depth - 1))
    right = draw(queries(depth=depth - 1))
    combined = draw(st.sampled_from(["and", "or", "xor"]))
    q = {"and": left & right, "or": left | right, "xor": left ^ right}[combined]
    return ~q if draw(st.booleans()) else q


values = st.builds(
    N, a=st.integers(0, 3), b=st.integers(0, 3), c=st.one_of(st.none(), st.text())
)


@given(q=queries(), obj=values, prev=st.one_of(st.none(), values))
def test_double_negation_matches_the_same_objects(q: Q, obj: Any, prev: Any) -> None:
    assert (~~q)(obj, prev) == q(obj, prev)
    assert ~~q == q


@given(q=queries(), obj=values, prev=st.one_of(st.none(), values))
def test_negation_inverts_every_answer(q: Q, obj: Any, prev: Any) -> None:
    assert (~q)(obj, prev) is (not q(obj, prev))


@given(p=queries(), q=queries(), obj=values, prev=st.one_of(st.none(), values))
def test_de_morgan_holds(p: Q, q: Q, obj: Any, prev: Any) -> None:
    assert (~(p & q))(obj, prev) == (~p | ~q)(obj, prev)
    assert (p | q)(obj, prev) == (p(obj, prev) or q(obj, prev))


@given(q=queries(), obj=values, prev=st.one_of(st.none(), values))
def test_pickled_and_repr_rebuilt_queries_give_the_same_answers(
    q: Q, obj: Any, prev: Any
) -> None:
    rebuilt = eval(repr(q), {"Q": Q})  # noqa: S307
    assert rebuilt == q
    assert rebuilt(obj, prev) == q(obj, prev)


def test_a_q_wrapping_a_single_q_is_that_q() -> None:
    q = Q(a__eq=1) | Q(b__eq=2)
    assert Q(q) == q
    assert Q(~q) == ~q
    assert Q(DjangoLikeQ(DjangoLikeQ(a__eq=1), negated=True)) == ~Q(a__eq=1)
    assert Q(DjangoLikeQ(DjangoLikeQ(a__eq=1, negated=True), negated=True)) == Q(
        a__eq=1
    )
