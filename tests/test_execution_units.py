"""Pure parts of the execution engine: the plain-value codec, the APPS comparator, test planning."""

from __future__ import annotations

import math

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.spec import TestSpec as Spec
from bcoder.core.types import TestOutcome as Verdict
from bcoder.execution import REWARDS, Outcome, compare, plan, wire
from bcoder.execution.result import ExecResult

PLAIN = [
    None,
    True,
    False,
    0,
    -7,
    3**200,
    -(10**40),
    1.5,
    -0.0,
    math.inf,
    "héllo\udcff",
    b"\x00\xff",
    [1, [2, (3, 4)]],
    (1,),
    (),
    {1: "a", (2, 3): [4]},
    {1, 2},
    frozenset({"x"}),
    2 + 3j,
    {"nested": {"set": {frozenset({1})}}},
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_codec_round_trips_exact_types(value):
    back = wire.decode(wire.loads(wire.dumps(wire.encode(value))))
    assert back == value and type(back) is type(value)


def test_codec_nan_round_trips():
    assert math.isnan(wire.decode(wire.loads(wire.dumps(wire.encode(float("nan"))))))


def test_subclasses_reduce_to_the_builtin_value_without_running_their_methods():
    class Liar(str):
        def __eq__(self, other):
            return True

        def __str__(self):
            return "forged"

        __hash__ = str.__hash__

    class Count(int):
        def __int__(self):
            return 999

    class Items(list):
        def __iter__(self):
            return iter([42])

    enc = wire.encode([Liar("real"), Count(5), Items([1, 2])])
    back = wire.decode(wire.loads(wire.dumps(enc)))
    assert back == ["real", 5, [1, 2]]
    assert [type(x) for x in back] == [str, int, list]


def test_foreign_objects_become_opaque_and_never_equal():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    back = wire.decode(wire.encode(AlwaysEqual()))
    assert isinstance(back, wire.Opaque) and back != 5 and back.type_name.endswith("AlwaysEqual")


def test_fake_class_attribute_does_not_fool_the_encoder():
    class Fake:
        __class__ = int  # isinstance(Fake(), int) is True; the real type is not

    assert wire.decode(wire.encode(Fake()))  # opaque (truthy object), not an int
    assert isinstance(wire.decode(wire.encode(Fake())), wire.Opaque)


@pytest.mark.parametrize(
    "bad", [{"zz": 1}, {"t": 3}, {"d": [[1]]}, {"i": 5}, {"a": 1, "b": 2}, {"d": [[[1], 2]]}]
)
def test_malformed_values_raise_value_error(bad):
    with pytest.raises((ValueError, TypeError)):
        wire.decode(bad)


def test_long_decimal_literals_are_refused():
    with pytest.raises(ValueError):
        wire.loads("1" * 100)


def test_frames_split_and_cap():
    buf = bytearray(wire.frame({"a": 1}) + wire.frame([2]) + wire.frame("x")[:3])
    assert [wire.loads(b) for b in wire.split_frames(buf)] == [{"a": 1}, [2]]
    assert len(buf) == 3


# ---- the APPS comparator ----


@pytest.mark.parametrize(
    "out, exp",
    [
        ("3\n", "3\n"),
        ("  3  \n\n", "3"),
        ("1 2 \n3\n", "1 2\n3\n"),  # trailing spaces on a line
        ("1\n\n2\n", "1\n2\n"),  # blank lines dropped
        ("0.3333333\n", "0.33333333333\n"),  # numeric tolerance
        ("1.0000001\n2\n", ["1", "2"]),  # expected as a list of lines
        ("b a\nc\n", "c\na b\n"),  # last resort: lines as token sets, order ignored
        ("0.1235 2\n", "2 0.12345\n"),  # rounded token sets
        ("YES", "YES\n"),
    ],
)
def test_stdio_accepts_what_apps_accepts(out, exp):
    assert compare.stdio_matches(out, exp)


@pytest.mark.parametrize(
    "out, exp",
    [("4\n", "3\n"), ("", "3\n"), ("1 2\n", "1 2 3\n"), ("1.1\n", "1.0\n"), ("3\n4\n", "3\n")],
)
def test_stdio_rejects_wrong_answers(out, exp):
    assert not compare.stdio_matches(out, exp)


def test_first_difference_names_the_line():
    assert compare.first_difference("1\n5\n", "1\n2\n") == "line 2: expected '2', got '5'"
    assert "end of output" in compare.first_difference("1\n", "1\n2\n")


@pytest.mark.parametrize(
    "out, exp, ok",
    [
        ((1, 2), [1, 2], True),
        ([1, 2], [[1, 2]], True),
        (False, [False], True),
        ([(1, 2)], [[[1, 2]]], True),
        ({1: "a"}, {"1": "a"}, True),
        (3, [4], False),
        ("x", "y", False),
        (None, [None], True),
    ],
)
def test_call_based_comparison(out, exp, ok):
    assert compare.call_matches(out, exp) is ok


# ---- planning ----


def test_mbpp_asserts_are_rewritten_and_expected_values_stay_here():
    reqs = plan.plan(Spec(asserts=("assert f(1) == [1, 2]", "assert (2, 'x') == g(3)")))
    assert len(reqs) == 1 and reqs[0].body["op"] == "call"
    assert reqs[0].body["items"] == [{"expr": "f(1)"}, {"expr": "g(3)"}]
    assert reqs[0].expected == [[1, 2], (2, "x")]
    assert "[1, 2]" not in repr(reqs[0].body)


def test_other_asserts_go_to_the_judge():
    spec = Spec(
        asserts=(
            "assert f(1) == 2",
            "assert math.isclose(f(2), 4.0)",
            "assert f(3) == g(3)",
            "def check(c):\n    assert c(1)\ncheck(f)",
        )
    )
    reqs = plan.plan(spec)
    assert [r.body["op"] for r in reqs] == ["call", "judge"]
    assert reqs[0].tests == [0] and reqs[1].tests == [1, 2, 3]


def test_bad_tests_raise_before_running():
    with pytest.raises(BcoderError, match="not valid Python"):
        plan.plan(Spec(asserts=("assert f(1 ==",)))
    with pytest.raises(BcoderError, match="no tests"):
        plan.plan(Spec(inputs=(), outputs=()))


def test_outcome_is_the_most_severe_verdict_and_rewards_follow_the_paper():
    assert REWARDS == {
        Outcome.PASS: 1.0,
        Outcome.FAIL: -0.3,
        Outcome.RUNTIME_ERROR: -0.6,
        Outcome.COMPILE_ERROR: -1.0,
    }
    tests = [Verdict("pass"), Verdict("fail", detail="x"), Verdict("runtime_error", detail="boom")]
    res = ExecResult.from_tests(tests, 0.1, "bubblewrap")
    assert res.outcome is Outcome.RUNTIME_ERROR and res.reward == -0.6 and res.detail == "boom"
    assert res.to_dict()["outcome"] == "runtime_error" and res.passed == 1
    assert ExecResult.from_tests([Verdict("pass"), Verdict("skipped")], 0, "").reward == 1
