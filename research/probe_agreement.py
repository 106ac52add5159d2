"""What the agreement rankers would do with other tests: a probe on a no-tests eval run's records.

    python3 research/probe_agreement.py results/runs/humaneval-no-tests [--out FILE.json]

Reads an eval run whose problems had tests written for them (``--protocol no-tests``, or
``train select``'s ``<run>/select/no-tests``) and recomputes, from the stored verdicts and values
alone (no model, no sandbox), every agreement ranker's pass@1 and pass@5 and its paired
difference to mean log-prob, with the problems' own example tests withheld from the rankers
(what the generated tests do alone), for these variants of the tests:

- ``first N``: only the first N generated tests (they are kept in the order written, so this is
  what ``max_tests = N`` would have kept: fewer tests, fewer answers to sample);
- ``right only``: only the tests the ground truth passes. Not a ranker (it reads the ground
  truth): the ceiling that better-written tests could reach, beside ``all``;
- ``wrong only``: only the tests the ground truth fails, to see how much of the agreement comes
  from behaviour the wrong tests still share;
- ``returned``: only the tests on whose input some candidate returned a value (not an
  exception or a time-out): an input that breaks every program is more likely malformed (the
  wrong arity or types) than a trap, and every program then "agrees" by raising. Needs no
  ground truth either;
- ``consistent``: without the tests whose call the model also wrote with another expected value
  (``f(0) == 15`` and ``f(0) == 255``): where the model contradicts itself, neither expectation
  can be trusted. Needs no ground truth, so it could be a ranker's rule.

Also the problems on which ranking can matter at all (some candidates pass, some fail) and on how
many of those agreement had nothing to go on (every candidate in one group); and of the right
and of the wrong tests, the share that most samples pass.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bcoder.evaluate.compare import finished
from bcoder.evaluate.generated import without_examples
from bcoder.evaluate.records import ProblemRecord
from bcoder.evaluate.report import against_likelihood, expand, pass_at_k_table, ranked_method
from bcoder.ranking.agreement import is_returned_value
from bcoder.ranking.rankers import AGREEMENT

KS = (1, 5)
Keep = Callable[[ProblemRecord], list[int]]  # the generated tests a variant keeps, by index


def keep_tests(record: ProblemRecord, keep: list[int]) -> ProblemRecord:
    """``record`` as if only the generated tests ``keep`` (indices) had been written."""
    if record.generated is None:
        return record

    def cut(letters: str, values: list[str]) -> tuple[str, list[str]]:
        return (
            "".join(letters[i] for i in keep if i < len(letters)),
            [values[i] for i in keep if i < len(values)],
        )

    cands = []
    for c in record.candidates:
        letters, values = cut(c.generated, c.generated_values)
        cands.append(replace(c, generated=letters, generated_values=values))
    generated = dict(record.generated)
    tests = asserts(record)
    generated["asserts"] = [tests[i] for i in keep if i < len(tests)]
    if generated.get("truth"):
        generated["truth"] = cut(generated["truth"], [])[0]
    return replace(record, candidates=cands, generated=generated)


def asserts(record: ProblemRecord) -> list[str]:
    return (record.generated or {}).get("asserts") or []


def n_tests(record: ProblemRecord) -> int:
    return len(asserts(record))


def truth(record: ProblemRecord) -> str:
    return (record.generated or {}).get("truth") or ""


def call_of(test: str) -> str:
    """The call of a kept test (``assert CALL == EXPECTED``, as parse_asserts writes them)."""
    compare = ast.parse(test).body[0].test  # type: ignore[attr-defined]
    return ast.unparse(compare.left)


def consistent(record: ProblemRecord) -> list[int]:
    """The tests whose call no other test gives another expected value."""
    calls = [call_of(t) for t in asserts(record)]
    seen = Counter(calls)
    return [i for i, call in enumerate(calls) if seen[call] == 1]


def returned(record: ProblemRecord) -> list[int]:
    """The tests on which some candidate returned a plain value."""
    return [
        i
        for i in range(n_tests(record))
        if any(
            is_returned_value(v) for c in record.candidates for v in c.generated_values[i : i + 1]
        )
    ]


VARIANTS: dict[str, Keep] = {
    "all": lambda r: list(range(n_tests(r))),
    **{f"first {n}": (lambda r, n=n: list(range(min(n, n_tests(r))))) for n in (5, 10, 15)},
    "right only": lambda r: [i for i, v in enumerate(truth(r)) if v == "p"],
    "wrong only": lambda r: [i for i, v in enumerate(truth(r)) if v != "p"],
    "consistent": consistent,
    "returned": returned,
}


def figures(records: list[ProblemRecord]) -> dict[str, Any]:
    """Each agreement ranker's and the likelihood's pass@k, and the differences."""
    samples = [expand(r) for r in records]
    names = ["mean-logprob", "reward", *AGREEMENT]
    table = pass_at_k_table(samples, KS, rankers=names)["all"]
    pairs = [(name, "mean-logprob") for name in names if name != "mean-logprob"]
    vs = against_likelihood(samples, KS, pairs=pairs)
    return {
        name: {
            "pass@1": table[ranked_method(name)]["1"]["value"],
            "pass@5": table[ranked_method(name)]["5"]["value"],
            **({"vs": vs[f"{name} - mean-logprob"]} if name != "mean-logprob" else {}),
        }
        for name in names
    }


def open_problems(records: list[ProblemRecord]) -> dict[str, int]:
    """Problems whose candidates both pass and fail, and of those, how many agreement could
    not split (one CodeT group: every candidate passed the same generated tests)."""
    mixed = [r for r in records if len({c.passed for c in r.candidates}) == 2]
    one_group = sum(len({c.generated for c in r.candidates}) == 1 for r in mixed)
    return {"problems": len(records), "mixed": len(mixed), "mixed_one_codet_group": one_group}


def passed_by_most(records: list[ProblemRecord]) -> dict[str, float | int]:
    """Of the right tests (the ground truth passes) and of the wrong ones, the share that more
    than half of a problem's M samples pass: a test most samples pass cannot split them, and a
    wrong test that most fail costs agreement little."""
    shares: dict[str, list[bool]] = {"right": [], "wrong": []}
    for r in records:
        m = sum(c.count for c in r.candidates)
        for i, verdict in enumerate(truth(r)):
            passing = sum(c.count for c in r.candidates if c.generated[i : i + 1] == "p")
            shares["right" if verdict == "p" else "wrong"].append(2 * passing > m)
    return {
        **{f"{k}_tests": len(v) for k, v in shares.items()},
        **{f"{k}_passed_by_most": sum(v) / len(v) if v else 0.0 for k, v in shares.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    records = [
        without_examples(r) for r in finished(args.run)[1].values() if r.generated is not None
    ]
    if not records:
        raise SystemExit(f"{args.run}: no problem with generated tests")
    out: dict[str, Any] = {
        "run": str(args.run),
        **open_problems(records),
        **passed_by_most(records),
        "variants": {},
    }
    print(json.dumps({k: v for k, v in out.items() if k != "variants"}))
    for name, keep in VARIANTS.items():
        fig = figures([keep_tests(r, keep(r)) for r in records])
        out["variants"][name] = fig
        cells = []
        for ranker in ("reward", *AGREEMENT):
            d = fig[ranker]["vs"]["1"]
            lo, hi = (100 * x for x in d["ci"])
            cells.append(f"{ranker} {100 * d['value']:+.1f} [{lo:+.1f}, {hi:+.1f}]")
        base = 100 * fig["mean-logprob"]["pass@1"]
        print(f"{name:>10}: mean-logprob {base:.1f}; pass@1 - it: " + "; ".join(cells))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
