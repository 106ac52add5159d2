"""Pure trusted-side pieces for ranking without tests: the canonical text of a returned value
(agreement rankers group programs by it), ``==`` with a float tolerance, and ``TestSpec.rel_tol``."""

from __future__ import annotations

import math

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.spec import TestSpec as Spec
from bcoder.execution import compare, values, wire
from bcoder.execution.values import raised_text, value_text

# Pairs of answers two programs might give that are equal plain values (Python's ==).
EQUAL = [
    ({3, 1, 2}, {2, 3, 1}),
    (set(range(50)), set(range(49, -1, -1))),
    ({"b": 1, "a": 2}, {"a": 2, "b": 1}),
    ({1: [1, 2], 2: (3,)}, {2: (3,), 1: [1, 2]}),
    (frozenset({1, 2}), {2, 1}),
    ({frozenset({1, 2}), frozenset({3})}, {frozenset({3}), frozenset({2, 1})}),
    (0.1 + 0.2, 0.3),
    (-0.0, 0.0),
    (2, 2.0),
    (True, 1),
    (12345678901, 12345678901.0),
    (10**20, 1e20),
    (2 + 0j, 2),
    ([0.1 + 0.2, {1.0}], [0.3, {1}]),
    (3**5000, 3**5000),  # beyond the decimal text limit: hex
]


@pytest.mark.parametrize(("a", "b"), EQUAL, ids=repr)
def test_equal_values_get_equal_texts(a, b):
    assert value_text(a) == value_text(b)


def test_texts_survive_the_wire_and_are_deterministic():
    value = {"k": {3, 1, 2}, 2: [1.5, (None, b"\x00")], (1, 2): frozenset({"x", "y"})}
    back = wire.decode(wire.loads(wire.dumps(wire.encode(value))))
    assert value_text(back) == value_text(value)
    assert value_text(value) == "{'k': {1, 2, 3}, (1, 2): {'x', 'y'}, 2: [1.5, (None, b'\\x00')]}"


UNEQUAL = [
    ([1, 2], (1, 2)),  # lists and tuples stay apart (they are unequal)
    ("1", 1),
    (b"a", "a"),
    (set(), {}),
    ({1: 2}, {1, 2}),
    ((1,), 1),
    (None, "None"),
    (0.5, 0.6),
    ("timeout", "timeout "),
]


@pytest.mark.parametrize(("a", "b"), UNEQUAL, ids=repr)
def test_unequal_values_get_different_texts(a, b):
    assert value_text(a) != value_text(b)


def test_floats_are_rounded_and_specials_named():
    assert value_text(1 / 3) == "0.3333333333"
    assert value_text(2.00000000001) == "2"
    assert value_text(1.5e-12) == "1.5e-12"
    assert value_text(float("nan")) == "nan"
    assert value_text([math.inf, -math.inf]) == "[inf, -inf]"
    assert value_text(complex(1, -2)) == "complex(1, -2)"


def test_long_values_keep_a_prefix_and_a_hash_of_the_whole():
    a, b = list(range(10_000)), list(range(10_000))
    c = [*range(9_999), -1]  # differs only past the prefix
    ta = value_text(a)
    assert len(ta) <= values.MAX_CHARS and ta.startswith("[0, 1, 2")
    assert ta == value_text(b) and ta != value_text(c)
    assert len(value_text("x" * values.MAX_CHARS)) <= values.MAX_CHARS


def test_exceptions_and_opaque_objects():
    assert raised_text("ZeroDivisionError") == "raise ZeroDivisionError"
    assert raised_text("Bad\nName <0x7f>") == "raise BadName0x7f"
    assert value_text(wire.Opaque("Node")) == "opaque Node"
    assert value_text([wire.Opaque("Node")]) == "[<opaque Node>]"
    # no value a program returns is spelled like a time-out, an exception or an opaque object
    for text in ("timeout", "raise ValueError", "opaque Node"):
        assert value_text(text) != text


CLOSE = [
    (0.1 + 0.2, 0.3),
    (1e-9, 0.0),  # abs_tol = rel_tol
    (3.0000001, 3),
    ([1.0000001, (2.0, 3)], [1.0, (2.0, 3)]),
    ({"a": 1.0000001}, {"a": 1.0}),
    ({0.1 + 0.2, 1.0}, {0.3, 1.0}),
    (frozenset({0.1 + 0.2}), {0.3}),
    (math.inf, math.inf),
]
NOT_CLOSE = [
    (1.001, 1.0),
    (math.nan, math.nan),
    ([1.0], (1.0,)),  # a list is not a tuple, as under ==
    ({"a": 1.0}, {"b": 1.0}),
    ({0.3, 0.5}, {0.3, 0.6}),
    (True, 1.0000001),  # bools compare exactly
    (10**400, 1e308),  # too big for a float: exact
    ("0.3", 0.3),
]


@pytest.mark.parametrize(("a", "b"), CLOSE, ids=repr)
def test_equal_within_accepts_close_floats(a, b):
    assert compare.equal_within(a, b, 1e-6)
    assert compare.equal_within(b, a, 1e-6)


@pytest.mark.parametrize(("a", "b"), NOT_CLOSE, ids=repr)
def test_equal_within_refuses_what_is_not_close(a, b):
    assert not compare.equal_within(a, b, 1e-6)


def test_no_tolerance_is_plain_equality():
    assert not compare.equal_within(0.1 + 0.2, 0.3, 0.0)
    assert compare.equal_within(2, 2.0, 0.0) and compare.equal_within({1: [2]}, {1: [2]}, 0.0)
    assert compare.equal_within(7, 7, 1e-6) and not compare.equal_within(7, 8, 1e-6)


def test_spec_rel_tol_is_written_only_when_set():
    exact = Spec(asserts=("assert f(1) == 0.5",))
    assert "rel_tol" not in exact.to_dict()
    assert Spec.from_dict(exact.to_dict()) == exact and exact.rel_tol == 0.0
    loose = Spec(asserts=("assert f(1) == 0.5",), rel_tol=1e-6)
    assert loose.to_dict()["rel_tol"] == 1e-6
    assert Spec.from_dict(loose.to_dict()) == loose
    assert Spec.from_dict({"inputs": ["1"], "outputs": ["1"]}).to_dict() == {
        "inputs": ["1"],
        "outputs": ["1"],
    }


@pytest.mark.parametrize(
    "d",
    [
        {"asserts": [], "rel_tol": -1e-6},
        {"asserts": [], "rel_tol": math.nan},
        {"asserts": [], "rel_tol": "1e-6"},
        {"asserts": [], "rel_tol": True},
        {"inputs": [[1]], "outputs": [1], "fn_name": "f", "rel_tol": 1e-6},
    ],
)
def test_bad_rel_tol_is_a_user_error_naming_the_file(d):
    with pytest.raises(BcoderError, match=r"tests\.json: 'rel_tol'"):
        Spec.from_dict(d, where="tests.json")
