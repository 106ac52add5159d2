"""Evaluation protocols: what of a problem the model and the rankers are shown.

- ``tests`` (the default, DESIGN section 5): problems as their dataset gives them. MBPP's prompt
  shows its three scoring asserts and the first is the example test that ``tests-first`` rankers
  use, so on MBPP a ranker only matters once the tests have decided.
- ``no-tests``: what a user with a docstring and no tests gives. An MBPP problem becomes a stub:
  the ground truth's signature line (the function's name and parameters only, no body, no
  annotations or defaults) with the statement as its docstring; no assert is shown and no example
  test is handed to the rankers. Its scoring tests are MBPP's asserts, as under ``tests``.
  HumanEval is its own prompt already (a stub whose docstring examples are what its user wrote),
  so it is unchanged; eval reports its rankers with and without those examples.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem

PROTOCOLS = ("tests", "no-tests")


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise BcoderError(f"unknown protocol {name!r} (expected {' or '.join(PROTOCOLS)})")
    return name


def apply_protocol(problem: Problem, protocol: str) -> Problem:
    """``problem`` as ``protocol`` shows it (a copy; the dataset's problem is not changed)."""
    if check_protocol(protocol) == "tests" or problem.source != "mbpp":
        return problem
    return replace(
        problem,
        source="python",  # a stub: a signature and its docstring
        starter_code=signature_line(problem),
        example_tests=None,
        metadata={**problem.metadata, "protocol": protocol, "example_tests_from": None},
    )


def signature_line(problem: Problem) -> str:
    """``def NAME(PARAMS):`` of the entry point as the ground truth defines it (parameter names
    only, ``*args`` and ``**kwargs`` kept); from the first test's call when no ground truth
    defines it (parameters ``arg0, arg1, ...``)."""
    name = problem.entry_point
    if not name:
        raise BcoderError(f"{problem.id}: no entry point, so no signature to show")
    for code in problem.solutions:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return f"def {name}({_parameters(node.args)}):"
    count = _call_arity(problem, name)
    return f"def {name}({', '.join(f'arg{i}' for i in range(count))}):"


def _parameters(args: ast.arguments) -> str:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg is not None:
        names.append(f"*{args.vararg.arg}")
    elif args.kwonlyargs:
        names.append("*")
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg is not None:
        names.append(f"**{args.kwarg.arg}")
    return ", ".join(names)


def _call_arity(problem: Problem, name: str) -> int:
    """Positional arguments of the first call of ``name`` in the problem's asserts (0 if none)."""
    for stmt in (problem.tests.asserts or ()) if problem.tests is not None else ():
        try:
            tree = ast.parse(stmt)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name:
                return len(node.args)
    return 0
