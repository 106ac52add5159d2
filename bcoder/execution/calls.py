"""A ``call`` request answered with a time budget per item: a hanging test is that test's
time-out, and the tests after it still run.

Why: one run of the program answers every item of a ``call`` request (``plan.py``), which is
cheap, but then one item that never returns ends the run, and the items after it would go
unanswered. Tests a model wrote for itself (issue 32) often hold an input that is too big for a
naive program; ranking by agreement needs a verdict and a value on every other test.

How it is enforced, from outside the program: the zygote's watchdog (``watch.py``, another
process) gives each item ``timeout`` seconds from the previous answer and kills the whole run
when one overruns, so nothing the program does inside its process (catching every exception,
ignoring signals, SIGALRM handlers) extends an item's time. Here, on the trusted side, the answers
that came back tell which item was running: it gets ``time limit exceeded`` and the value
``timeout``, and a new request carries only the items after it, which a fresh child of the
zygote answers after running the program's top level again (the scratch directory wiped, as
after every request). Answers are judged by ``plan.judge_items`` exactly as for one run.

The total-time cap, so that a program hanging on every test cannot take ``n x timeout``:

- at most ``Limits.max_timeouts`` items (default 3) of one request time out; the items after
  the last of them are skipped ("not run: 3 tests timed out");
- all runs of one request together get ``(n + 1) x timeout`` wall seconds, the bound one run
  had before (its top level and n answers, each within ``timeout``); the watchdog enforces what
  is left of it on each run (limit ``total``), and items not reached are skipped. The time is
  the runs' own, as the watchdog measured it (starting a replacement worker does not count).

So twenty hanging tests cost about three time-outs (plus three loads of the program), not twenty,
and no program takes longer than one run could before. The per-request limits of each run
(memory, output, CPU rlimit, processes) are unchanged.

With ``stop_on_failure`` the executor does not restart: a time-out ends the request as before
(the items after it are skipped), which saves the restarts where only the outcome matters
(training, evaluation); the outcome cannot get worse than a time-out's runtime error anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bcoder.core.types import TestOutcome
from bcoder.execution import plan as planning
from bcoder.execution import values

# Sends one (partial) call request with a cap on its wall seconds; returns the sandbox's answer.
Send = Callable[[planning.Request, float], dict[str, Any]]


def answer_calls(
    send: Send, req: planning.Request, timeout: float, max_timeouts: int, restart: bool
) -> list[TestOutcome]:
    """Verdicts of a ``call`` request's items in order, re-running the program after a time-out
    (when ``restart``) until every item is answered or the caps of the module docstring stop it."""
    n = len(req.tests)
    budget = timeout * (n + 1)
    outcomes: list[TestOutcome] = []
    start, hangs, spent = 0, 0, 0.0
    while True:
        part = req.tail(start)
        resp = send(part, budget - spent)
        spent += _wall(resp)
        got = planning.judge_items(part, resp, timeout)
        hung = _hung(got, resp)
        if hung is None or not restart:
            return outcomes + got
        outcomes += got[: hung + 1]
        start, hangs = start + hung + 1, hangs + 1
        if start >= n:
            return outcomes
        if hangs >= max_timeouts:
            return outcomes + _skipped(n - start, f"not run: {hangs} tests timed out")
        if spent >= budget - 0.01:
            return outcomes + _skipped(n - start, "not run: the tests' time budget is spent")


def _hung(got: list[TestOutcome], resp: dict[str, Any]) -> int | None:
    """The index of the item that exceeded its own time budget in this run, if one did."""
    if resp.get("limit") != "timeout":  # not the request's total, memory, output or a signal
        return None
    return next((k for k, t in enumerate(got) if t.value == values.TIMEOUT), None)


def _wall(resp: dict[str, Any]) -> float:
    try:
        return max(0.0, float(resp.get("wall", 0.0)))
    except (TypeError, ValueError):
        return 0.0


def _skipped(n: int, why: str) -> list[TestOutcome]:
    return [TestOutcome("skipped", 0.0, why) for _ in range(n)]
