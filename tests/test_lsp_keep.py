"""Keeping the tests the model wrote, end to end: a real LSP client (pytest-lsp) drives
``python -m bcoder lsp``; the runs are built here (the programs are real code, their verdicts what
the sandbox gives them) and saved in the server's results store, and ``bcoder.implementFromRun``
puts their best body into the stubs of a real file. The doctests it then adds pass under
``python -m doctest``, and the pytest file it writes beside the module passes under pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types as lsp
from pytest_lsp import client_capabilities, make_test_lsp_client
from support.editor import action_titles, at, attach_editor, command

from bcoder.core.types import Candidate, GeneratedTests, SolveResult
from bcoder.core.types import TestOutcome as Outcome
from bcoder.pipeline.store import Store

pytestmark = pytest.mark.asyncio(loop_scope="module")

SOURCE = '''def add(a, b):
    """Add two numbers."""


def mean(xs):
    """The mean of xs.

    >>> mean([1, 2, 3])
    2.0
    """


def neg(x):
    """Minus x."""


def twice(x):
    """Two times x."""
'''

ADD = "def add(a, b):\n    return a + b\n"
ADD_SUM = "def add(a, b):\n    return sum([a, b])\n"
ADD_PRINT = "def add(a, b):\n    print(a + b)\n"
ADD_TESTS = [
    "assert add(1, 2) == 3",
    "assert add(-1, 1) == 0",
    "assert add(2, 2) == 5",  # a wrong expectation of the model's
    "assert add('a', 'b') == 'ab'",
    "assert add(0.1, 0.2) == 0.3",  # passes within the sandbox's float tolerance only
    "assert add([1], [2]) == [1, 2]",
]
P, F, E = "pass", "fail", "runtime_error"


def outcomes(*pairs: tuple[str, str]) -> list[Outcome]:
    return [Outcome(v, 0.01, "" if v == P else "wrong", value=x) for v, x in pairs]


def result(entry: str, candidates: list[Candidate], generated: GeneratedTests | None):
    problem = {"id": f"calc.py:{entry}", "source": "python", "text": "", "entry_point": entry}
    settings = {"model": "tiny", "n": sum(c.count for c in candidates), "ranker": "reward"}
    return SolveResult(problem, settings, candidates, generated=generated)


def add_run() -> SolveResult:
    best = Candidate(ADD, ADD, reward=-1.0, count=2)
    best.generated = outcomes((P, "3"), (P, "0"), (F, "4"), (P, "'ab'"), (P, "0.3"), (P, "[1, 2]"))
    summed = Candidate(ADD_SUM, ADD_SUM, reward=-2.0)
    summed.generated = outcomes(
        (P, "3"), (P, "0"), (F, "4"), (E, "raise TypeError"), (P, "0.3"), (E, "raise TypeError")
    )
    printed = Candidate(ADD_PRINT, ADD_PRINT, reward=-3.0)
    printed.generated = outcomes(*[(F, "None")] * 6)
    written = GeneratedTests(asserts=list(ADD_TESTS), samples=2, written=9, seconds=3.0)
    return result("add", [best, summed, printed], written)


def mean_run() -> SolveResult:
    code = "def mean(xs):\n    return sum(xs) / len(xs)\n"
    best = Candidate(code, code, reward=-1.0)
    best.generated = outcomes((P, "2"), (P, "3"), (P, "1"))
    tests = ["assert mean([1, 2, 3]) == 2", "assert mean([2, 4]) == 3", "assert mean([1]) == 1.0"]
    return result("mean", [best], GeneratedTests(asserts=tests, samples=1, written=3))


def neg_run() -> SolveResult:
    """The best body fails every test the model wrote: nothing to keep."""
    code = "def neg(x):\n    return x\n"
    best = Candidate(code, code, reward=-1.0)
    best.generated = outcomes((F, "1"), (F, "0"))
    tests = ["assert neg(1) == -1", "assert neg(0) == 1"]
    return result("neg", [best], GeneratedTests(asserts=tests, samples=1, written=2))


def twice_run() -> SolveResult:
    """The model wrote no test that parses: nothing to keep, and the note says why."""
    code = "def twice(x):\n    return 2 * x\n"
    note = GeneratedTests(samples=2, written=0, note="the model wrote no test of twice that parses")
    return result("twice", [Candidate(code, code, reward=-1.0)], note)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, str], dict[str, str]]:
    """(a folder holding calc.py, the server's environment, run id by function)."""
    home = tmp_path_factory.mktemp("bcoder-home")
    env = dict(os.environ)
    env.update(BCODER_HOME=str(home), BCODER_STORE=str(home / "runs.sqlite"), HF_HUB_OFFLINE="1")
    store = Store(home / "runs.sqlite")
    runs = {
        r.problem["entry_point"]: store.save(r)
        for r in (add_run(), mean_run(), neg_run(), twice_run())
    }
    folder = tmp_path_factory.mktemp("project")
    (folder / "calc.py").write_text(SOURCE)
    return folder, env, runs


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(workspace):
    _, env, _ = workspace
    c = make_test_lsp_client()
    c.files = attach_editor(c)
    await c.start_io(sys.executable, "-m", "bcoder", "lsp", env=env)
    await c.initialize_session(
        lsp.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
    )
    yield c
    await c.shutdown_session()
    await c.stop()


def keep_titles(all_titles: list[str]) -> list[str]:
    return [t for t in all_titles if t.startswith("B-Coder: add the")]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


async def test_keep_the_generated_tests_as_doctests_and_in_a_pytest_file(client, workspace):
    folder, _, runs = workspace
    uri = (folder / "calc.py").as_uri()
    client.files.open(uri, SOURCE)
    text = lambda: client.files.text[uri]  # noqa: E731

    # a saved run's best body goes into each stub
    for name in ("add", "mean", "neg", "twice"):
        done = await command(
            client, "bcoder.implementFromRun", uri, at(text(), f"def {name}"), runs[name]
        )
        assert done["applied"] and done["rank"] == 1 and done["runId"] == runs[name], done
    assert "    return a + b" in text() and "    return sum(xs) / len(xs)" in text()

    # offered: the tests the inserted body passes (5 of 6 for add; mean's docstring has one)
    add_titles = keep_titles(await action_titles(client, uri, at(text(), "def add")["line"]))
    assert add_titles == [
        "B-Coder: add the 5 generated tests this body passes as doctests",
        "B-Coder: add the 5 generated tests this body passes to a pytest file (test_calc.py)",
    ]
    mean_titles = keep_titles(await action_titles(client, uri, at(text(), "def mean")["line"]))
    assert mean_titles[0] == "B-Coder: add the 2 generated tests this body passes as doctests"
    assert mean_titles[1].startswith("B-Coder: add the 3 generated tests this body passes to a")
    # a body that passes none of them, and a run whose model wrote none: nothing to keep
    assert keep_titles(await action_titles(client, uri, at(text(), "def neg")["line"])) == []
    assert keep_titles(await action_titles(client, uri, at(text(), "def twice")["line"])) == []
    refused = await command(client, "bcoder.addGeneratedDoctests", uri, at(text(), "def neg"))
    assert refused["applied"] is False and "passes none" in refused["error"]

    # doctests: added once, then no longer offered
    for name, added in (("add", 5), ("mean", 2)):
        done = await command(
            client,
            "bcoder.addGeneratedDoctests",
            {"uri": uri, "position": at(text(), f"def {name}")},
        )
        assert done == {"applied": True, "qualname": name, "added": added}, done
        assert not any(
            "doctests" in t
            for t in await action_titles(client, uri, at(text(), f"def {name}")["line"])
        )
    assert '''    """Add two numbers.

    >>> add(1, 2)
    3
    >>> add(-1, 1)
    0
    >>> add('a', 'b')
    'ab'
    >>> add(0.1, 0.2)
    0.30000000000000004
    >>> add([1], [2])
    [1, 2]
    """
    return a + b
''' in text()
    assert text().count(">>> mean([1, 2, 3])") == 1 and ">>> mean([2, 4])\n    3.0\n" in text()
    (folder / "calc.py").write_text(text())  # saved, as the editor would
    doctests = run(["-m", "doctest", "-v", "calc.py"], folder)
    assert doctests.returncode == 0 and "8 passed and 0 failed" in doctests.stdout, doctests.stdout

    # the pytest file: created for add, appended to for mean, then no longer offered
    for name, added in (("add", 5), ("mean", 3)):
        done = await command(client, "bcoder.addGeneratedPytest", uri, at(text(), f"def {name}"))
        assert done["applied"] and done["added"] == added, done
        assert done["file"].endswith("/test_calc.py")
        assert not any(
            "pytest" in t
            for t in await action_titles(client, uri, at(text(), f"def {name}")["line"])
        )
    written = (folder / "test_calc.py").read_text()
    assert written.startswith("import pytest\n\nfrom calc import add\nfrom calc import mean\n")
    assert "def test_add_generated_4():\n    assert add(0.1, 0.2) == pytest.approx(0.3" in written
    assert "def test_mean_generated_1():\n    assert mean([1, 2, 3]) == 2\n" in written
    assert f"(run {runs['add']})" in written
    tests = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_calc.py"], folder)
    assert tests.returncode == 0 and "8 passed" in tests.stdout, tests.stdout + tests.stderr


async def test_generated_tests_and_verdicts_in_the_candidate_lists(client, workspace):
    folder, _, runs = workspace
    uri = (folder / "lists.py").as_uri()
    client.files.open(uri, SOURCE)
    where = at(SOURCE, "def add")
    assert (await command(client, "bcoder.implementFromRun", uri, where, runs["add"]))["applied"]

    listed = await command(client, "bcoder.listCandidates", uri, where)
    generated = listed["generated"]
    assert generated["asserts"] == ADD_TESTS and generated["sampled"] == 4
    assert generated["passedBy"] == [3, 3, 0, 2, 3, 2]  # duplicates counted: the best twice
    best = listed["candidates"][0]
    assert best["generatedPassed"] == 5 and best["generated"][2] == {
        "verdict": "fail",
        "detail": "wrong",
        "value": "4",
    }
    (entry,) = await client.protocol.send_request_async(
        "bcoder/candidates", {"textDocument": {"uri": uri}}
    )
    assert entry["generated"]["passedBy"] == generated["passedBy"]
    assert [t["verdict"] for t in entry["candidates"][1]["generated"]] == [P, P, F, E, P, E]

    # the body edited by hand: its verdicts no longer hold, nothing is offered
    lines = client.files.text[uri].split("\n")
    lines[at(client.files.text[uri], "return a + b")["line"]] = "    return b + a + 0"
    client.files.edit(
        uri,
        [
            lsp.TextEdit(
                lsp.Range(lsp.Position(0, 0), lsp.Position(len(lines) + 5, 0)), "\n".join(lines)
            )
        ],
    )
    assert keep_titles(await action_titles(client, uri, where["line"])) == []
    refused = await command(client, "bcoder.addGeneratedPytest", uri, where)
    assert refused["applied"] is False and "was edited" in refused["error"]
    # a run of another function, or no run at all: a clear error
    wrong = await command(
        client, "bcoder.implementFromRun", uri, at(client.files.text[uri], "def neg"), runs["add"]
    )
    assert wrong["applied"] is False and "not `neg`" in wrong["error"]
    missing = await command(
        client, "bcoder.implementFromRun", uri, at(client.files.text[uri], "def neg"), "nope"
    )
    assert missing["applied"] is False and "no run 'nope'" in missing["error"]


@pytest.mark.parametrize("editor", ["neovim", "emacs"])
async def test_editors_without_versioned_edits_or_file_creation(workspace, tmp_path, editor):
    """Neovim lists ``create`` but not ``documentChanges``: plain changes for the docstring, a
    CreateFile for the test file. Emacs creates no file: the server says so, and adds nothing."""
    _, env, runs = workspace
    c = make_test_lsp_client()
    c.files = attach_editor(c)
    await c.start_io(sys.executable, "-m", "bcoder", "lsp", env=env)
    try:
        await c.initialize_session(lsp.InitializeParams(capabilities=client_capabilities(editor)))
        (tmp_path / "calc.py").write_text(SOURCE)
        uri = (tmp_path / "calc.py").as_uri()
        c.files.open(uri, SOURCE)
        where = at(SOURCE, "def add")
        assert (await command(c, "bcoder.implementFromRun", uri, where, runs["add"]))["applied"]
        done = await command(c, "bcoder.addGeneratedDoctests", uri, where)
        assert done["added"] == 5 and ">>> add(1, 2)\n    3\n" in c.files.text[uri]
        done = await command(c, "bcoder.addGeneratedPytest", uri, where)
        if editor == "neovim":
            assert (
                done["applied"]
                and "def test_add_generated_5" in (tmp_path / "test_calc.py").read_text()
            )
        else:
            assert done["applied"] is False and "cannot create test_calc.py" in done["error"]
            assert not (tmp_path / "test_calc.py").exists()
        await c.shutdown_session()
    finally:
        await c.stop()
