"""The tests the model wrote for a problem without tests of its own, as the TUI shows them.

Pure functions, no Textual: how many of them a candidate passes, how many candidates pass each
(duplicates counted, as the agreement rankers count them), and the text of one test's row. A
candidate's ``generated`` holds its verdicts in the order of ``SolveResult.generated.asserts``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from bcoder.core.types import Candidate, GeneratedTests, TestOutcome

PASS = "#4caf50"  # the list's colours (panels.PASS, panels.FAIL)
FAIL = "#e34a33"


def asserts_of(generated: GeneratedTests | None) -> list[str]:
    """The kept tests, or none."""
    return list(generated.asserts) if generated is not None else []


def passed(candidate: Candidate) -> int:
    """How many of the generated tests ``candidate`` passes."""
    return sum(t.verdict == "pass" for t in candidate.generated)


def ratio_text(candidate: Candidate, total: int) -> Text:
    """``7/10`` for the list's column: green when it passes them all, dim when it did not run."""
    if not candidate.generated:
        return Text("–", style="dim", justify="right")
    n = passed(candidate)
    return Text(f"{n}/{total}", style=f"bold {PASS}" if n == total else "", justify="right")


def call_of(test: str) -> str:
    """``add(1, 2) == 3`` for ``assert add(1, 2) == 3``: what the test checks."""
    return test.removeprefix("assert ").strip()


def row_detail(test: str, outcome: TestOutcome | None) -> Text:
    """A generated test's detail cell: what it checks and, when the candidate failed it, what it
    returned (``got 4``), raised (``raised TypeError``) or why else it failed. Model and program
    text: never markup."""
    text = Text(call_of(test))
    if outcome is None or outcome.verdict == "pass":
        return text
    value = outcome.value
    if value.startswith("raise "):
        text.append(f"  raised {value.removeprefix('raise ')}", style=FAIL)
    elif value == "timeout":
        text.append("  timed out", style=FAIL)
    elif value:
        text.append(f"  got {value}", style=FAIL)
    elif outcome.detail:
        text.append(f"  {outcome.detail.splitlines()[0]}", style=FAIL)
    return text


def summary(candidate: Candidate, generated: GeneratedTests) -> Text:
    """The tests panel's line about the generated tests of the selected candidate."""
    total = len(generated.asserts)
    if not total:
        return Text(f"no tests — {generated.note or 'the model wrote none'}", style="dim")
    if not candidate.generated:
        return Text(f"not run on the {total} tests the model wrote", style="dim")
    n = passed(candidate)
    text = Text(f"passes {n}/{total}", style=f"bold {PASS}" if n == total else "bold")
    text.append(" of the tests the model wrote", style="dim")
    return text


@dataclass(frozen=True)
class Agreement:
    """One generated test and the candidates that pass it."""

    test: str
    passing: int  # candidates that pass it, duplicates counted
    ranks: list[int]  # the ranks (1 = best) of the distinct candidates that pass it


def agreement(generated: GeneratedTests, candidates: list[Candidate]) -> list[Agreement]:
    """Per generated test, in their order, how many candidates pass it."""
    out = []
    for i, test in enumerate(generated.asserts):
        ranks = [
            r
            for r, c in enumerate(candidates, start=1)
            if i < len(c.generated) and c.generated[i].verdict == "pass"
        ]
        out.append(Agreement(test, sum(candidates[r - 1].count for r in ranks), ranks))
    return out


def sampled(candidates: list[Candidate]) -> int:
    """The candidates that ran the generated tests, duplicates counted (the agreement's total)."""
    return sum(c.count for c in candidates if c.generated)


def origin(generated: GeneratedTests) -> str:
    """How the tests were written: ``2 samples, 14 asserts written, 10 kept, 21.3 s``."""
    return (
        f"{generated.samples} samples, {generated.written} asserts written, "
        f"{len(generated.asserts)} kept, {generated.seconds:.1f} s"
    )
