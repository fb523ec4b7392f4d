"""The manual's small helpers: thorn.utils.compat, .functional and .log."""

from __future__ import annotations

import logging

import pytest

import thorn
from thorn.utils.compat import bytes_if_py2
from thorn.utils.functional import Q, chunks
from thorn.utils.log import get_logger


def test_chunks_splits_an_iterator_as_the_manual_shows() -> None:
    numbers = list(range(11))
    assert list(chunks(iter(numbers), 2)) == [
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
        [8, 9],
        [10],
    ]
    assert list(chunks(iter(numbers), 3)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
    assert list(chunks([], 3)) == []
    assert list(chunks("abcd", 4)) == [["a", "b", "c", "d"]]


def test_chunks_takes_items_one_chunk_at_a_time() -> None:
    taken: list[int] = []

    def numbers() -> object:
        for n in range(10):
            taken.append(n)
            yield n

    first = next(chunks(numbers(), 3))  # type: ignore[arg-type]
    assert first == [0, 1, 2]
    assert taken == [0, 1, 2]


@pytest.mark.parametrize("size", [0, -1])
def test_chunks_refuses_a_size_below_one(size: int) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        list(chunks([1, 2], size))


def test_functional_q_is_thorns_q() -> None:
    assert Q is thorn.Q
    assert Q(state__eq="PUBLISHED")(type("A", (), {"state": "PUBLISHED"})())


def test_bytes_if_py2_leaves_text_as_it_is_on_python_3() -> None:
    text = "thorn"
    assert bytes_if_py2(text) is text


def test_get_logger_attaches_a_top_level_logger_to_thorns() -> None:
    found = get_logger("thorn_test_app.hooks")
    assert found is logging.getLogger("thorn_test_app.hooks")
    assert found.parent is logging.getLogger("thorn")
    # Under Thorn's own name it is in the tree already.
    assert get_logger("thorn.test_utils").parent is logging.getLogger("thorn")
    # Another parent may be given; the root logger is never re-parented.
    parent = logging.getLogger("thorn_test_parent")
    assert get_logger("thorn_test_other", parent=parent).parent is parent
    assert get_logger("root") is logging.root
    assert logging.root.parent is None


def test_get_logger_records_reach_thorns_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    top = logging.getLogger("thorn")
    top.addHandler(handler)
    try:
        get_logger("thorn_test_reach").warning("hello %s", "there")
    finally:
        top.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["hello there"]


def test_a_q_node_shows_its_gate_stack_and_branches() -> None:
    either = Q(a__eq=1) | Q(b__eq=2)
    assert either.gate is any
    assert Q(a__eq=1, b__eq=2).gate is all
    assert (Q(a__eq=1) ^ Q(b__eq=2)).gate(iter([True, True])) is False
    assert either.stack == either.children
    assert Q(a__eq=1, b__eq=2).stack == (("a__eq", 1), ("b__eq", 2))
    assert Q.branches[False](1) is True
    assert Q.branches[True](1) is False
