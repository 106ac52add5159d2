"""The README's "Results": one table from the eval runs of scripts/reproduce_default.sh.

    python3 scripts/results.py [--runs runs] [--out docs/results]

Reads the eval run directories (eval-init: the checkpoint policy's candidates, no trained heads;
eval-ranked: the same candidates ranked by the trained Q-function; eval-trained: the trained
policy's own candidates; eval-smollm2 / eval-smollm2-ranked: the paper's Table 3 use), compares
each pair of runs on the problems both have finished, and writes ``results.md`` /
``results.json`` and the R~ density plot (the paper's Figure 3) under ``--out``. Figures are recomputed from the stored
records with the eval's own functions; differences between runs are paired by problem.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bcoder.evaluate import metrics
from bcoder.evaluate.markdown import cell
from bcoder.evaluate.paper import comparison_rows
from bcoder.evaluate.plots import plot_reward_density
from bcoder.evaluate.records import SELECTION, ProblemRecord, load_records
from bcoder.evaluate.report import (
    COMPARISONS,
    compute_figures,
    expand,
    problem_values,
    ranked_method,
)
from bcoder.ranking.rankers import LEARNED, RANKER_LABELS, RANKERS

RUNS = {
    "init": "eval-init",
    "ranked": "eval-ranked",
    "trained": "eval-trained",
    "smollm2": "eval-smollm2",
    "smollm2-ranked": "eval-smollm2-ranked",
}
COMMAND = "bash scripts/reproduce_default.sh eval"
KS = ("1", "5")
LIKELIHOOD = ("mean-logprob", "sum-logprob", "tests-first-logprob", "random")  # need no heads


def load(run_dir: Path) -> dict[str, ProblemRecord]:
    ids = json.loads((run_dir / SELECTION).read_text())["problem_ids"]
    records, _ = load_records(run_dir, ids)
    return {r.problem_id: r for r in records}


def paired(a: list[ProblemRecord], b: list[ProblemRecord], ma: str, mb: str, k: int, seed: int):
    """Method ``ma`` of run a minus method ``mb`` of run b, per problem; mean and paired CI."""
    diff = [
        problem_values(expand(x), k)[ma] - problem_values(expand(y), k)[mb]
        for x, y in zip(a, b, strict=True)
    ]
    low, high = metrics.bootstrap_ci(diff, 1000, seed=seed)
    return {"value": float(np.mean(diff)), "ci": [low, high], "n": len(diff)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--out", type=Path, default=Path("docs/results"))
    args = ap.parse_args()
    present = {
        k: load(args.runs / d) for k, d in RUNS.items() if (args.runs / d / SELECTION).is_file()
    }
    if "init" not in present:
        raise SystemExit(f"{args.runs}/eval-init: no eval run (run `{COMMAND}` first)")
    # The checkpoint policy's candidates (init, ranked) on the problems both finished; the
    # trained policy's on those it and init finished, so that a partial eval-trained costs the
    # other rows nothing. Every difference is paired on its own problems.
    common = _finished(present, ("init", "ranked"))
    rec = {k: [present[k][p] for p in common] for k in ("init", "ranked") if k in present}
    figs = {k: compute_figures(rec[k], [1, 5], seed=0, n_boot=1000) for k in rec}
    trained_ids: list[str] = []
    if "trained" in present:
        trained_ids = _finished(present, ("init", "trained"))
        rec["trained"] = [present["trained"][p] for p in trained_ids]
        rec["init@trained"] = [present["init"][p] for p in trained_ids]
        for key in ("trained", "init@trained"):
            figs[key] = compute_figures(rec[key], [1, 5], seed=0, n_boot=1000)
    lines = [
        f"# Results: MBPP test, {_span(common)}, M = 8, temperature 0.6",
        "",
        f"Made by `python3 scripts/results.py` from the runs of `{COMMAND}`; every cell is the "
        "mean over problems with its 95% bootstrap interval (percent).",
        "",
        "| candidates from | ranked by | pass@1 | pass@5 | ROC AUC |",
        "|---|---|---|---|---|",
    ]
    groups = [("init", "checkpoint policy"), ("ranked", "checkpoint policy"),
              ("trained", "trained policy"), ("init@trained", "checkpoint policy")]  # fmt: skip
    for key, who in groups:
        if key not in figs:
            continue
        if key == "trained":
            lines += ["", f"The trained policy's own candidates: {_span(trained_ids)}.", "",
                      "| candidates from | ranked by | pass@1 | pass@5 | ROC AUC |",
                      "|---|---|---|---|---|"]  # fmt: skip
        fig = figs[key]["metrics"]["all"]
        heads = "no trained heads" if key.startswith("init") else "trained heads"
        rows = [("unranked", "unranked", None)] if key != "ranked" else []
        if key != "init@trained":  # that one is only the trained policy's unranked baseline
            names = [*(LEARNED if key != "init" else ()), *LIKELIHOOD]
            rows += [(ranked_method(n), RANKER_LABELS[n], n) for n in names]
            rows += [("upper_bound", "true reward (upper bound)", None)]
        for method, label, name in rows:
            auc = figs[key]["auc"].get(name) if name else None
            lines.append(
                f"| {who} | {label} ({heads}) | {cell(fig[method]['1'])} | "
                f"{cell(fig[method]['5'])} | {'-' if auc is None else f'{auc:.3f}'} |"
            )
    lines += paper_table(figs)
    lines += ["", "## Learned rankers against likelihood (points, paired bootstrap 95% CI)", ""]
    lines += ["| learned | likelihood | pass@1 | pass@5 |", "|---|---|---|---|"]
    diffs: dict[str, Any] = {}
    for key in ("ranked", "trained"):
        if key not in figs:
            continue
        for name, base in COMPARISONS:  # within a run: the same policy's likelihood
            pair = f"{key}: {name} - {base}"
            diffs[pair] = {k: paired(rec[key], rec[key], ranked_method(name), ranked_method(base),
                                     int(k), 0) for k in KS}  # fmt: skip
        init = rec["init" if key == "ranked" else "init@trained"]
        # against the base model's own likelihood (eval-init's scores) on the same problems
        for name in LEARNED:
            pair = f"{key}: {name} - init: mean-logprob"
            diffs[pair] = {k: paired(rec[key], init, ranked_method(name), "ranked_mean_logprob",
                                     int(k), 0) for k in KS}  # fmt: skip
        if key == "trained":  # the aim: the trained policy is not worse than its start
            diffs["trained: unranked - init: unranked"] = {
                k: paired(rec[key], init, "unranked", "unranked", int(k), 0) for k in KS
            }
    for pair, by_k in diffs.items():
        learned, base = pair.rsplit(" - ", 1)
        lines.append(f"| {learned} | {base} | {cell(by_k['1'])} | {cell(by_k['5'])} |")
    if "smollm2-ranked" in present and "smollm2" in present:
        ids = sorted(set(present["smollm2"]) & set(present["smollm2-ranked"]), key=_task_id)
        small = compute_figures([present["smollm2"][p] for p in ids], [1, 5], n_boot=1000)
        ranked = compute_figures([present["smollm2-ranked"][p] for p in ids], [1, 5], n_boot=1000)
        lines += ["", f"## smollm2-135m's candidates ranked by the default model's heads "
                  f"({len(ids)} problems; the paper's Table 3 use)", ""]  # fmt: skip
        lines += ["| ranked by | pass@1 | pass@5 |", "|---|---|---|"]
        for fig, method, label in (
            (small, "unranked", "unranked"),
            (small, "ranked_mean_logprob", "smollm2's mean log-prob"),
            *((ranked, ranked_method(n), RANKER_LABELS[n] + " (default model's heads)")
              for n in LEARNED),
            (ranked, "upper_bound", "true reward (upper bound)"),
        ):  # fmt: skip
            m = fig["metrics"]["all"][method]
            lines.append(f"| {label} | {cell(m['1'])} | {cell(m['5'])} |")
    args.out.mkdir(parents=True, exist_ok=True)
    for key in ("ranked", "trained"):
        if key in rec:
            plot_reward_density(rec[key], args.out / f"reward_density-{key}.png")
    shown = [n for n in RANKERS if n in figs["init"]["auc"]]  # the rankers the runs report
    lines += [
        "",
        "Plots: `reward_density-ranked.png`, `reward_density-trained.png` (R~ by true outcome, "
        "the paper's Figure 3). Rankers: " + ", ".join(f"`{n}`" for n in shown) + ".",
    ]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    out = {"problems": common, "trained_problems": trained_ids, "figures": figs,
           "differences": diffs}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(out, indent=1) + "\n")
    print("\n".join(lines))


def paper_table(figs: dict[str, Any]) -> list[str]:
    """The paper's Table 4 (MBPP, its temperature closest to 0.6) beside this run's R~ ranking:
    unranked and ranked pass@k, and the gain of ranking."""
    key = next((k for k in ("ranked", "trained") if k in figs), None)
    if key is None:
        return []
    ours = figs[key]["metrics"]
    unranked = figs["init" if key == "ranked" else key]["metrics"]["all"]["unranked"]
    paper = {
        (r["method"], r["k"]): r
        for r in comparison_rows("mbpp", ours, temperature=0.6)
        if r["table"] == "Table 4" and r["k"] in (1, 5)
    }
    setting = paper[("ranked_reward", 1)]["setting"].split(";")[0]
    lines = [
        "",
        f"## Beside the paper's Table 4 (the paper's figures: CodeT5-770M B-Coder, {setting})",
        "",
        "| | paper pass@1 | ours pass@1 | paper pass@5 | ours pass@5 |",
        "|---|---|---|---|---|",
    ]
    for method, label, mine in (
        ("unranked", "unranked", unranked),
        ("ranked_reward", "ranked by R~", ours["all"]["ranked_reward"]),
    ):
        cells = []
        for k in (1, 5):
            cells += [f"{paper[(method, k)]['paper']:.1f}", f"{100 * mine[str(k)]['value']:.1f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    gains = []
    for k in (1, 5):
        p = paper[("ranked_reward", k)]["paper"] - paper[("unranked", k)]["paper"]
        o = 100 * (ours["all"]["ranked_reward"][str(k)]["value"] - unranked[str(k)]["value"])
        gains += [f"{p:+.1f}", f"{o:+.1f}"]
    lines.append("| gain of ranking | " + " | ".join(gains) + " |")
    return lines


def _finished(present: dict[str, dict[str, Any]], keys: tuple[str, ...]) -> list[str]:
    """The problems every one of ``keys`` present has a record of, by task id."""
    found = [set(present[k]) for k in keys if k in present]
    return sorted(set.intersection(*found), key=_task_id)


def _span(ids: list[str]) -> str:
    return f"{len(ids)} problems (task ids {_task_id(ids[0])}-{_task_id(ids[-1])})"


def _task_id(pid: str) -> int:
    return int(pid.rsplit("/", 1)[-1])


if __name__ == "__main__":
    main()
