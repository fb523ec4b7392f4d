"""Q objects: composable predicates that filter plain Python objects and dicts."""

from __future__ import annotations

import operator
from collections.abc import Callable, Container, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, NoReturn

__all__ = ["MISSING", "Q", "compile_filters"]

#: ``(obj, prev) -> bool``: what a compiled Q node is.
Predicate = Callable[[Any, Any], bool]
#: ``value -> bool``: one operator with its right-hand side bound.
Test = Callable[[Any], bool]
#: ``obj -> value``: reads a field path from an object (``MISSING`` if absent).
Getter = Callable[[Any], Any]


class _Missing:
    """The value of a field path that does not exist; false-y, like ``None``."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"


#: Returned by getters when an attribute or key along the path is absent.
MISSING: Final = _Missing()

_SEP: Final = "__"
_TRANSITION: Final = "now_"


# -- binary operators: f(A, B) where A is the object's value, B the rhs --------


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _ne(a: Any, b: Any) -> bool:
    return bool(a != b)


def _ordering(compare: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    def op(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        try:
            return bool(compare(a, b))
        except TypeError:  # e.g. "3" > 2: incomparable values never match
            return False

    op.__name__ = compare.__name__
    return op


def _in(a: Any, b: Any) -> bool:
    try:
        return a in b
    except TypeError:  # unhashable A and a set B, or B not a container
        return False


def _not_in(a: Any, b: Any) -> bool:
    try:
        return a not in b
    except TypeError:
        return False


def _contains(a: Any, b: Any) -> bool:
    try:
        return b in a
    except TypeError:  # A is not a container, or 1 in "abc"
        return False


def _startswith(a: Any, b: Any) -> bool:
    return isinstance(a, str) and a.startswith(b)


def _endswith(a: Any, b: Any) -> bool:
    return isinstance(a, str) and a.endswith(b)


def _odd(values: Iterable[object]) -> bool:
    """XOR gate: true when an odd number of values are true (as Django does)."""
    return sum(1 for value in values if value) % 2 == 1


_OPERATORS: Final[Mapping[str, Callable[[Any, Any], bool]]] = MappingProxyType(
    {
        "eq": _eq,
        "ne": _ne,
        "gt": _ordering(operator.gt),
        "gte": _ordering(operator.ge),
        "lt": _ordering(operator.lt),
        "lte": _ordering(operator.le),
        "is": operator.is_,
        "is_not": operator.is_not,
        "in": _in,
        "not_in": _not_in,
        "contains": _contains,
        "startswith": _startswith,
        "endswith": _endswith,
    }
)
_ORDERING_OPS: Final = frozenset({"gt", "gte", "lt", "lte"})
_OPERATOR_LIST: Final = ", ".join(_OPERATORS)

_CASE_NOTE: Final = (
    "; Thorn compares case-sensitively, so give the value in the case the field has"
)
# Django lookups that are not Thorn operators: what to write instead, with
# {f} the field path and {now} the transition prefix, and a note.
_DJANGO_LOOKUPS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "exact": ("{f}__{now}eq=...", ""),
        "iexact": ("{f}__{now}eq=...", _CASE_NOTE),
        "icontains": ("{f}__{now}contains=...", _CASE_NOTE),
        "istartswith": ("{f}__{now}startswith=...", _CASE_NOTE),
        "iendswith": ("{f}__{now}endswith=...", _CASE_NOTE),
        "isnull": (
            "{f}__{now}is=None for isnull=True, or {f}__{now}is_not=None for "
            "isnull=False",
            "",
        ),
        "range": ("Q({f}__gte=low, {f}__lte=high)", " (both bounds included)"),
        "regex": (
            "{f}__{now}startswith=..., {f}__{now}endswith=... or "
            "{f}__{now}contains=...",
            "; Thorn's Q has no regular-expression operator",
        ),
        "iregex": (
            "{f}__{now}startswith=..., {f}__{now}endswith=... or "
            "{f}__{now}contains=...",
            "; Thorn's Q has no regular-expression operator" + _CASE_NOTE,
        ),
    }
)

_DJANGO_ON_THE_LEFT: Final = (
    "Thorn's Q cannot be used inside a Django Q: Django's Q refuses it on "
    "the right of &, | and ^ (DjangoQ(...) & Q(...)) and in a queryset. Put "
    "Thorn's Q on the left, Q(...) & DjangoQ(...), or wrap the Django one, "
    "Q(DjangoQ(...)) & Q(...)"
)


def _match_all(obj: Any, prev: Any) -> bool:
    return True


def _make_getter(path: tuple[str, ...]) -> Getter:
    """Return a function reading ``path`` from an object (items for mappings)."""

    def getter(obj: Any) -> Any:
        for name in path:
            if type(obj) is dict or isinstance(obj, Mapping):
                try:
                    obj = obj[name]
                except KeyError:
                    return MISSING
            else:
                obj = getattr(obj, name, MISSING)
                if obj is MISSING:
                    return MISSING
        return obj

    return getter


def _is_node(obj: object) -> bool:
    """Does ``obj`` look like a Q node (ours or ``django.db.models.Q``)?"""
    return all(hasattr(obj, attr) for attr in ("children", "connector", "negated"))


class Q:
    """A predicate over Python objects, built like ``django.db.models.Q``.

    Keyword arguments are ``field__path__<op>=value``, where ``<op>`` is one
    of :attr:`operators`, optionally prefixed by ``now_`` for a transition.
    Positional arguments are other Q nodes (Thorn's or Django's, which are
    converted without importing Django) or ``(key, value)`` tuples.  All
    conditions of one ``Q(...)`` must hold (AND); use ``|``, ``&``, ``^`` and
    ``~`` to build other trees.  ``Q()`` has no condition and matches
    everything; as in Django it is ignored by ``&``/``|`` and ``~Q()`` still
    matches everything.

    The tree is compiled into closures once, when the Q is built; a Q is
    immutable, and calling it does no parsing::

        >>> published = Q(state__now_eq="PUBLISHED")
        >>> published(article, previous_article)   # -> bool

    Field paths read attributes, or items when the object is a
    :class:`~collections.abc.Mapping`, so filters work on dict payloads too.
    A missing attribute or key makes the condition false, except for the
    truth tests (``eq=True``, ``eq=False``, ``ne=True``, ``ne=False``) where
    a missing value counts as false-y.  Ordering operators (``gt``, ``gte``,
    ``lt``, ``lte``) never match ``None`` or values that cannot be compared.

    Transitions ``now_<op>=B`` need the previous version of the object:
    ``q(obj, prev)``.  ``now_<op>`` matches when ``<op>`` holds for ``obj``
    and did *not* hold for ``prev``; when there is no previous version
    (``prev`` is ``None``, a brand-new object) it "did not hold", so the
    condition is the plain ``<op>``.  For the ordering operators this means
    ``now_gt=B`` is "now ``> B``, previously not ``> B``" (``<= B``, or
    ``None``/incomparable), and likewise for ``gte``, ``lt`` and ``lte``.
    """

    #: Mapping of opcode to binary operator ``f(A, B)``, A being the value
    #: read from the object and B the right-hand side.
    operators: ClassVar[Mapping[str, Callable[[Any, Any], bool]]] = _OPERATORS
    #: Boolean operator of a node, by connector.  Default is ``AND``.
    gates: ClassVar[Mapping[str, Callable[[Iterable[object]], bool]]] = (
        MappingProxyType({"AND": all, "OR": any, "XOR": _odd})
    )

    #: What a node's result goes through, by ``negated``: a negated node
    #: (``~q``) reverses its match. (For reference, as the manual lists it:
    #: :meth:`compile` applies the same inline.)
    branches: ClassVar[Mapping[bool, Callable[[Any], bool]]] = MappingProxyType(
        {False: operator.truth, True: operator.not_}
    )

    __slots__ = (
        "_match",
        "children",
        "connector",
        "fields",
        "negated",
        "uses_transitions",
    )

    children: tuple[Q | tuple[str, Any], ...]
    connector: str
    negated: bool
    #: True if any ``now_*`` operator is used: the caller must pass ``prev``.
    uses_transitions: bool
    #: Top-level field names used anywhere in the tree (for diagnostics).
    fields: frozenset[str]
    _match: Predicate

    def __init__(self, *args: object, **kwargs: Any) -> None:
        children: list[Q | tuple[str, Any]] = [self._coerce_child(a) for a in args]
        children.extend(sorted(kwargs.items()))
        self._setup(tuple(children), "AND", False)

    @classmethod
    def _make(
        cls, children: Iterable[Q | tuple[str, Any]], connector: str, negated: bool
    ) -> Q:
        node = cls.__new__(cls)
        node._setup(tuple(children), connector, negated)
        return node

    def _setup(
        self, children: tuple[Q | tuple[str, Any], ...], connector: str, negated: bool
    ) -> None:
        if connector not in self.gates:
            raise ValueError(
                f"Unknown Q connector {connector!r}: use one of {', '.join(self.gates)}"
            )
        if len(children) == 1 and isinstance(children[0], Q):
            # Q(q) is q: adopt the only child's tree instead of wrapping it.
            only = children[0]
            children, connector = only.children, only.connector
            negated = negated != only.negated
        if len(children) < 2:
            connector = "AND"  # with 0 or 1 child every gate is the same
        setattr_ = object.__setattr__
        setattr_(self, "children", children)
        setattr_(self, "connector", connector)
        setattr_(self, "negated", bool(negated))
        fields: set[str] = set()
        transitions = False
        for child in children:
            if isinstance(child, Q):
                fields |= child.fields
                transitions = transitions or child.uses_transitions
            else:
                path, _op, is_transition = self.prepare_statement(child[0])
                fields.add(path[0])
                transitions = transitions or is_transition
        setattr_(self, "fields", frozenset(fields))
        setattr_(self, "uses_transitions", transitions)
        setattr_(self, "_match", self.compile(children, connector, negated))

    # -- public API ---------------------------------------------------------------

    @property
    def gate(self) -> Callable[[Iterable[object]], bool]:
        """The boolean operator of this node: ``all`` (AND, the default),
        ``any`` (OR) or the odd-count test (XOR)."""
        return self.gates[self.connector]

    @property
    def stack(self) -> tuple[Q | tuple[str, Any], ...]:
        """The node's children, in order: Q nodes and ``(key, value)``
        statements (the same as :attr:`children`)."""
        return self.children

    def __call__(self, obj: Any, prev: Any = None) -> bool:
        """Does ``obj`` match?  ``prev`` is its previous version, or ``None``."""
        return self._match(obj, prev)

    def __and__(self, other: object) -> Q:
        return self._combine(other, "AND")

    def __or__(self, other: object) -> Q:
        return self._combine(other, "OR")

    def __xor__(self, other: object) -> Q:
        return self._combine(other, "XOR")

    def __rand__(self, other: object) -> Q:
        return self._coerce_other(other)._combine(self, "AND")

    def __ror__(self, other: object) -> Q:
        return self._coerce_other(other)._combine(self, "OR")

    def __rxor__(self, other: object) -> Q:
        return self._coerce_other(other)._combine(self, "XOR")

    @property
    def conditional(self) -> NoReturn:
        """Always raises: Thorn's Q is not a Django Q, and says so.

        Django's ``Q`` reads ``conditional`` to decide whether it can take
        the other operand (``DjangoQ(...) & Q(...)``) or filter on it.  It
        cannot take Thorn's Q, and without this it raised a bare
        ``TypeError`` showing only the Q; this ``TypeError`` says what to
        write instead.
        """
        raise TypeError(_DJANGO_ON_THE_LEFT)

    def __invert__(self) -> Q:
        return self._make(self.children, self.connector, not self.negated)

    def negate(self) -> Q:
        """Return the negated query (``~self``); unlike Django, ``self`` is kept."""
        return ~self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Q):
            return NotImplemented
        return (self.connector, self.negated, self.children) == (
            other.connector,
            other.negated,
            other.children,
        )

    def __hash__(self) -> int:
        keys = tuple(c if isinstance(c, Q) else c[0] for c in self.children)
        return hash((self.connector, self.negated, keys))

    def __repr__(self) -> str:
        return self._describe()

    def __reduce__(self) -> tuple[Any, ...]:
        return (self._make, (self.children, self.connector, self.negated))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Q objects are immutable: build a new one with &, | or ~")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Q objects are immutable: build a new one with &, | or ~")

    # -- compilation ------------------------------------------------------------

    @classmethod
    def prepare_statement(cls, key: str) -> tuple[tuple[str, ...], str, bool]:
        """Split ``"a__b__now_eq"`` into ``(("a", "b"), "eq", True)``."""
        *path, opcode = key.split(_SEP)
        transition = opcode.startswith(_TRANSITION)
        if transition:
            opcode = opcode[len(_TRANSITION) :]
        if opcode not in cls.operators:
            if path and opcode in _DJANGO_LOOKUPS:
                raise ValueError(_django_lookup_hint(key, opcode, transition))
            raise ValueError(
                f"Q({key}=...) has no operator: write {key}{_SEP}eq=... to test "
                f"equality, or end the key with one of {_OPERATOR_LIST} "
                f"(prefixed with now_ to match a transition)"
            )
        op = key.rsplit(_SEP, 1)[-1]
        if not path:
            raise ValueError(
                f"Q({key}=...) has no field name before the operator: write "
                f"<field>{_SEP}{op}=... (or a{_SEP}b{_SEP}{op}=... to read a.b)"
            )
        if not all(path):
            raise ValueError(
                f"Q({key}=...) has an empty field name: separate the names in a "
                f"path with exactly two underscores, e.g. a{_SEP}b{_SEP}{op}=..."
            )
        return tuple(path), opcode, transition

    @classmethod
    def prepare_opcode(cls, opcode: str, rhs: Any, *, key: str = "") -> Test:
        """Bind ``rhs`` to the operator, returning a test of one value.

        Handles the truth tests (``eq=True`` etc.) and missing values, and
        rejects right-hand sides that could never match.
        """
        key = key or opcode
        if opcode in ("eq", "ne") and isinstance(rhs, bool):
            # eq=True: "if A"; eq=False: "if not A"; ne is the reverse.
            # MISSING is false-y, so a missing field counts as false.
            wants_true = rhs if opcode == "eq" else not rhs
            return operator.truth if wants_true else operator.not_
        if opcode in _ORDERING_OPS and rhs is None:
            raise ValueError(
                f"Q({key}=None) can never match: compare with a value, "
                f"or use {key.rsplit(_SEP, 1)[0]}{_SEP}is=None"
            )
        if opcode in ("in", "not_in") and not isinstance(rhs, Container):
            raise ValueError(
                f"Q({key}={rhs!r}) needs a collection such as a set, list or tuple, "
                f"e.g. {key}={{{rhs!r}}}"
            )
        if opcode in ("startswith", "endswith") and not (
            isinstance(rhs, str)
            or (isinstance(rhs, tuple) and all(isinstance(s, str) for s in rhs))
        ):
            raise ValueError(
                f"Q({key}={rhs!r}) needs a str (or a tuple of str) to compare with"
            )
        op = cls.operators[opcode]

        def test(value: Any) -> bool:
            return value is not MISSING and op(value, rhs)

        return test

    @classmethod
    def compile_op(cls, key: str, rhs: Any) -> Predicate:
        """Compile one ``key=rhs`` condition into ``(obj, prev) -> bool``."""
        path, opcode, transition = cls.prepare_statement(key)
        getter = _make_getter(path)
        test = cls.prepare_opcode(opcode, rhs, key=key)
        apply = cls.apply_trans_op if transition else cls.apply_op

        def predicate(obj: Any, prev: Any) -> bool:
            return apply(getter, test, obj, prev)

        return predicate

    @classmethod
    def compile_node(cls, child: Q | tuple[str, Any]) -> Predicate:
        """Compile one child: a nested Q or a ``(key, value)`` condition."""
        if isinstance(child, Q):
            return child._match
        return cls.compile_op(*child)

    @classmethod
    def compile(
        cls,
        children: Iterable[Q | tuple[str, Any]],
        connector: str = "AND",
        negated: bool = False,
    ) -> Predicate:
        """Compile children joined by ``connector`` into one predicate."""
        preds = tuple(cls.compile_node(child) for child in children)
        if not preds:
            return _match_all  # even when negated, as an empty Django Q
        if len(preds) == 1:
            match = preds[0]
        else:
            gate = cls.gates[connector]

            def match(obj: Any, prev: Any) -> bool:
                return gate(pred(obj, prev) for pred in preds)

        if not negated:
            return match

        def negated_match(obj: Any, prev: Any) -> bool:
            return not match(obj, prev)

        return negated_match

    @staticmethod
    def apply_op(getter: Getter, test: Test, obj: Any, prev: Any = None) -> bool:
        """Apply a plain condition: does the value read from ``obj`` pass?"""
        return test(getter(obj))

    @staticmethod
    def apply_trans_op(getter: Getter, test: Test, obj: Any, prev: Any) -> bool:
        """Apply a transition: ``obj`` passes and ``prev`` (if any) did not."""
        return test(getter(obj)) and (prev is None or not test(getter(prev)))

    # -- helpers ----------------------------------------------------------------

    @classmethod
    def _coerce_child(cls, arg: object) -> Q | tuple[str, Any]:
        if isinstance(arg, Q):
            return arg
        if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[0], str):
            return (arg[0], arg[1])
        if _is_node(arg):
            return cls._from_node(arg)
        raise TypeError(
            f"Q() positional arguments must be Q objects (Thorn's or Django's) or "
            f"(key, value) tuples, not {type(arg).__name__}: "
            f"use keyword arguments like Q(field__eq=value) for conditions"
        )

    @classmethod
    def _from_node(cls, node: Any) -> Q:
        """Convert a Q-shaped node (e.g. ``django.db.models.Q``) to a Thorn Q."""
        if isinstance(node, Q):
            return node
        children = [cls._coerce_child(child) for child in node.children]
        return cls._make(children, str(node.connector), bool(node.negated))

    @classmethod
    def _coerce_other(cls, other: object) -> Q:
        """``other`` as a Thorn Q, for an operator; TypeError if it is none."""
        if isinstance(other, Q):
            return other
        if not _is_node(other):
            raise TypeError(
                f"cannot combine Q with {type(other).__name__}: "
                f"wrap the condition in Q(...) first"
            )
        return cls._from_node(other)

    def _combine(self, other: object, connector: str) -> Q:
        other = self._coerce_other(other)
        if not other.children:
            return self
        if not self.children:
            return other
        children: list[Q | tuple[str, Any]] = []
        for node in (self, other):
            if not node.negated and (
                node.connector == connector or len(node.children) == 1
            ):
                children.extend(node.children)  # same gate: flatten
            else:
                children.append(node)
        return self._make(children, connector, False)

    def _describe(self, *, nested: bool = False) -> str:
        leaves = [c for c in self.children if not isinstance(c, Q)]
        keys = [key for key, _ in leaves]
        if (
            len(leaves) == len(self.children)
            and self.connector == "AND"
            and keys == sorted(set(keys))  # what Q(**kwargs) would build
        ):
            text = "Q(" + ", ".join(_describe_leaf(c) for c in leaves) + ")"
            return "~" + text if self.negated else text
        symbol = {"AND": " & ", "OR": " | ", "XOR": " ^ "}[self.connector]
        text = symbol.join(
            child._describe(nested=True)
            if isinstance(child, Q)
            else f"Q({_describe_leaf(child)})"
            for child in self.children
        )
        if self.negated:
            return f"~({text})"
        return f"({text})" if nested else text


def _django_lookup_hint(key: str, lookup: str, transition: bool) -> str:
    """The error for ``Q(field__<Django lookup>=...)``."""
    field_path = key.rsplit(_SEP, 1)[0]
    instead, note = _DJANGO_LOOKUPS[lookup]
    now = _TRANSITION if transition else ""
    return (
        f"Q({key}=...) uses Django's {lookup!r} lookup, which is not supported "
        f"by Thorn's Q: write {instead.format(f=field_path, now=now)} instead"
        f"{note}"
    )


def _describe_leaf(leaf: tuple[str, Any]) -> str:
    key, value = leaf
    if key.isidentifier():
        return f"{key}={value!r}"
    return f"**{{{key!r}: {value!r}}}"


def compile_filters(*args: object, **kwargs: Any) -> Q:
    """Build a :class:`Q` from filter arguments; a lone Q is returned as is."""
    if len(args) == 1 and not kwargs and isinstance(args[0], Q):
        return args[0]
    return Q(*args, **kwargs)
