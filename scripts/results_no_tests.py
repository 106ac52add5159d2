"""The README's "Ranking without tests": tables from the no-tests eval runs.

    python3 scripts/results_no_tests.py [--runs results/runs] [--out docs/results-no-tests]

Reads the eval run directories ``mbpp-no-tests`` (MBPP test problems under ``--protocol
no-tests``: a stub, no assert shown, no example test) and ``humaneval-no-tests`` (HumanEval, its
own prompt, tests written by the model), whichever exist, on the problems each has finished;
recomputes every figure from the stored records with the eval's own functions; and writes
``results.md`` / ``results.json`` under ``--out``. Per ranker: pass@1 and pass@5 with their 95%
bootstrap intervals over problems, and the paired difference (points, 95% paired bootstrap
interval) to the likelihood baseline. HumanEval twice: with its docstring examples withheld from
the rankers (the generated tests alone; baseline mean log-prob) and with them (example tests
first; baseline example tests first, then mean log-prob). Then what the tests the model wrote
were: how many, how many right, how the candidates grouped, and the seconds a problem.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean
from typing import Any

from bcoder.evaluate.markdown import cell
from bcoder.evaluate.records import CONFIG, SELECTION, ProblemRecord, load_records
from bcoder.evaluate.report import compute_figures, ranked_method
from bcoder.ranking.rankers import AGREEMENT, RANKER_LABELS

RUNS = {"mbpp": "mbpp-no-tests", "humaneval": "humaneval-no-tests"}
KS = ("1", "5")
OWN = ("mean-logprob", "reward")  # a candidate's own scores: likelihood and R~


def load(run_dir: Path) -> tuple[dict[str, Any], list[ProblemRecord]]:
    """A run's settings and its finished records, in selection order."""
    settings = json.loads((run_dir / CONFIG).read_text())["settings"]
    ids = json.loads((run_dir / SELECTION).read_text())["problem_ids"]
    records, _ = load_records(run_dir, ids)
    return settings, records


def table(
    metrics: dict[str, Any], vs: dict[str, Any], names: list[str], base: str
) -> tuple[list[str], dict[str, Any]]:
    """Markdown rows of ``names`` (each ranker's pass@k, and its difference to ``base``) with
    unranked first and the upper bound last; and the best ranker of ``names`` by pass@1."""
    head = f"| ranked by | pass@1 | pass@5 | pass@1 - {base} | pass@5 - {base} |"
    lines = [head, "|---|---|---|---|---|"]
    rows = [("unranked", "unranked", None)]
    rows += [(ranked_method(n), f"`{n}`: {RANKER_LABELS[n]}", n) for n in names]
    rows += [("upper_bound", "true reward (upper bound)", None)]
    for method, label, name in rows:
        if method not in metrics:
            continue
        diff = vs.get(f"{name} - {base}", {}) if name and name != base else {}
        cells = [cell(metrics[method][k]) for k in KS] + [cell(diff.get(k)) for k in KS]
        lines.append(f"| {label} | " + " | ".join(c if c else "-" for c in cells) + " |")
    shown = [n for n in names if n != base and ranked_method(n) in metrics]
    best = max(shown, key=lambda n: metrics[ranked_method(n)]["1"]["value"])
    return lines, {"ranker": best, "vs_base": vs.get(f"{best} - {base}"), "base": base}


def verdict(best: dict[str, Any]) -> str:
    """One sentence: the best ranker, by how much it beats the baseline, and whether the
    interval says it does."""
    d = best["vs_base"]["1"]
    low, high = (100 * x for x in d["ci"])
    where = "above 0" if low > 0 else "below 0" if high < 0 else "including 0"
    return (
        f"Best: `{best['ranker']}`, {100 * d['value']:+.1f} points pass@1 over "
        f"`{best['base']}` [{low:+.1f}, {high:+.1f}] (interval {where})."
    )


def tests_lines(fig: dict[str, Any], records: list[ProblemRecord]) -> list[str]:
    """What the generated tests were, and the seconds a problem of each stage."""
    g = fig.get("generated")
    if not g:
        return ["", "No test was written in this run."]
    right = (
        "their accuracy unknown (no ground truth)"
        if g["accuracy"] is None
        else f"{100 * g['accuracy']:.1f}% of them right (the ground truth passes them)"
    )
    sampling = mean(r.timings.get("generate", 0.0) + r.timings.get("score", 0.0) for r in records)
    lines = [
        "",
        f"Tests the model wrote: {g['with_tests']} of {g['problems']} problems got at least one, "
        f"{g['tests_per_problem']:.1f} a problem, {right}. Seconds a problem: sampling the "
        f"candidates {sampling:.1f}, writing the "
        f"tests {g['write_seconds']:.1f}, running the candidates on them {g['run_seconds']:.2f}.",
    ]
    for key, label in (("codet_groups", "passing the same tests"),
                       ("output_groups", "returning the same values")):  # fmt: skip
        if g.get(key):
            lines[-1] += (
                f" Groups of candidates {label}: {g[key]['groups']:.1f} a problem, the largest "
                f"holding {100 * g[key]['largest_share']:.0f}% of the samples."
            )
    return lines


def section(name: str, settings: dict[str, Any], records: list[ProblemRecord]) -> tuple[list, dict]:
    """The Markdown lines and the figures of one run."""
    fig = compute_figures(records, [int(k) for k in KS], seed=0, n_boot=1000)
    cfg = f"M = {settings['samples']}, temperature {settings['temperature']}"
    prefill = ", stub answers prefilled" if settings.get("prefill") else ""
    lines = ["", f"## {name}: {len(records)} problems ({cfg}{prefill})", ""]
    out: dict[str, Any] = {"problems": [r.problem_id for r in records], "figures": fig}
    alone = fig.get("without_examples")
    if alone:  # the examples withheld first: what the generated tests do alone
        rows, best = table(alone, fig["without_examples_vs_likelihood"], [*OWN, *AGREEMENT],
                           "mean-logprob")  # fmt: skip
        lines += ["Docstring examples withheld from the rankers (the generated tests alone):", ""]
        lines += [*rows, "", verdict(best), ""]
        out["best_without_examples"] = best
        names = ["tests-first-logprob", "tests-first", *AGREEMENT]
        rows, best = table(fig["metrics"]["all"], fig["vs_likelihood"], names,
                           "tests-first-logprob")  # fmt: skip
        lines += ["With the docstring examples (programs passing them first):", ""]
    else:
        rows, best = table(fig["metrics"]["all"], fig["vs_likelihood"], [*OWN, *AGREEMENT],
                           "mean-logprob")  # fmt: skip
    lines += [*rows, "", verdict(best)]
    out["best"] = best
    return lines + tests_lines(fig, records), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("results/runs"))
    ap.add_argument("--out", type=Path, default=Path("docs/results-no-tests"))
    args = ap.parse_args()
    lines = [
        "# Ranking without tests",
        "",
        "Made by `python3 scripts/results_no_tests.py` from the no-tests eval runs; every cell is "
        "the mean over problems with its 95% bootstrap interval (percent); differences are in "
        "points, paired by problem.",
    ]
    data: dict[str, Any] = {}
    for name, run in RUNS.items():
        if not (args.runs / run / SELECTION).is_file():
            continue
        settings, records = load(args.runs / run)
        if not records:
            continue
        more, data[name] = section(name, settings, records)
        lines += more
    if not data:
        raise SystemExit(f"{args.runs}: no no-tests eval run ({', '.join(RUNS.values())})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
