"""The Markdown form of an eval report (percentages, as the paper prints them)."""

from __future__ import annotations

import math
from typing import Any

from bcoder.core.settings import is_no_heads
from bcoder.evaluate.generated import markdown_lines as generated_lines
from bcoder.evaluate.report import METHOD_LABELS, METHODS, ranked_method
from bcoder.ranking.rankers import LEARNED, RANKER_LABELS


def pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def cell(c: dict[str, Any] | None) -> str:
    """'12.5 [8.0, 17.0]' from a {"value", "ci"} cell (percent)."""
    if not c:
        return "-"
    lo, hi = c.get("ci") or (None, None)
    return f"{pct(c['value'])} [{pct(lo)}, {pct(hi)}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def metrics_rows(
    group: dict[str, Any], ks: list[str], labels: dict[str, str] = METHOD_LABELS
) -> list[list[str]]:
    """One row per method present in a group: label, then a cell per k.

    A method computed over fewer problems (the example-filtered one: only problems that have
    example tests) says over how many."""
    n_all = next(iter(group["unranked"].values()))["n"] if "unranked" in group else None
    rows = []
    for m in METHODS:
        if m not in group:
            continue
        n = next(iter(group[m].values()))["n"]
        label = labels.get(m, METHOD_LABELS.get(m, m)) + (f" ({n} problems)" if n != n_all else "")
        rows.append([label, *(cell(group[m].get(k)) for k in ks)])
    return rows


def _seconds(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 3600:.2f} h" if x >= 3600 else f"{x / 60:.1f} min" if x >= 120 else f"{x:.1f} s"


def render(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    ks = [str(k) for k in report["config"]["ks"]]
    lines = [
        *_header(report),
        *_pass_at_k(report["figures"]["metrics"], ks),
        *_outcomes(report["figures"]),
        "",
        "## rankers",
        "",
        *_rankers(report["figures"], report["model"].get("ranker"), ks[0]),
        *_against_likelihood(report["figures"], ks),
        *generated_lines(report["figures"].get("generated"), _alone(report["figures"], ks)),
        *_paper(report.get("paper")),
    ]
    return "\n".join(lines) + "\n"


def _header(report: dict[str, Any]) -> list[str]:
    """The title, then what ran: model and heads, sampling, data and run time."""
    cfg, fig = report["config"], report["figures"]
    samples = ", ".join(str(m) for m in fig["samples"]) or "-"
    lines = [
        f"# bcoder eval: {cfg['dataset']} ({cfg.get('split') or 'all splits'}), "
        f"{fig['problems']} problems, M = {samples}",
        "",
        f"- model: `{report['model'].get('name', cfg['model'])}`"
        + (f", heads/checkpoint `{cfg['checkpoint']}`" if cfg.get("checkpoint") else "")
        + (f"; candidates from `{cfg['rank_only']}` (rank-only)" if cfg.get("rank_only") else ""),
        *_heads(report["model"].get("heads")),
        f"- sampling: temperature {cfg['temperature']}, top-p {cfg['top_p']}, "
        f"max {cfg['max_new_tokens']} new tokens, seed {cfg['seed']}",
        f"- data: `{report['data']['path']}` (sha256 {report['data']['sha256'][:16]}…)",
    ]
    if cfg.get("protocol", "tests") != "tests" or cfg.get("prefill"):
        lines.insert(-1, _prompt_line(cfg))
    t = report.get("timings", {})
    if t:
        lines.append(
            f"- run time: {_seconds(t.get('total'))} of model work over {t.get('problems', 0)} "
            f"problems (generate {_seconds(t.get('generate'))}, score {_seconds(t.get('score'))}, "
            + (f"write tests {_seconds(t['write_tests'])}, " if "write_tests" in t else "")
            + f"execute {_seconds(t.get('execute'))}; {_seconds(t.get('per_problem'))} per problem)"
        )
    return lines


def _prompt_line(cfg: dict[str, Any]) -> str:
    """What the model was shown, when it was not the dataset's prompt as it is."""
    protocol = cfg.get("protocol", "tests")
    shown = {
        "tests": "the dataset's prompt and example tests",
        "no-tests": "a docstring and no tests (protocol no-tests: no assert in the prompt, no "
        "example test for the rankers)",
    }[protocol]
    prefill = "; the stub's answer prefilled (R~ and log-probs cover the body)"
    return f"- prompt: {shown}{prefill if cfg.get('prefill') else ''}"


def _alone(fig: dict[str, Any], ks: list[str]) -> list[str] | None:
    """The pass@k table without the example tests, and the agreement rankers' differences to
    mean log-prob there, as Markdown lines, when the report has them."""
    group = fig.get("without_examples")
    if not group:
        return None
    lines = _table(["method", *(f"pass@{k}" for k in ks)], metrics_rows(group, ks))
    vs = fig.get("without_examples_vs_likelihood")
    if vs:
        lines += ["", *_table(["ranker - likelihood", *(f"pass@{k}" for k in ks)], _diffs(vs, ks))]
    return lines


def _diffs(vs: dict[str, dict[str, Any]], ks: list[str]) -> list[list[str]]:
    """Rows of paired differences ``{"a - b": {k: cell}}``."""
    return [[f"`{pair}`", *(cell(by_k.get(k)) for k in ks)] for pair, by_k in vs.items()]


def _pass_at_k(metrics: dict[str, Any], ks: list[str]) -> list[str]:
    """pass@k of every method over all problems, then per difficulty when there are several."""
    lines = [
        "",
        "## pass@k (%), all problems",
        "",
        "Each cell: the mean over problems and its 95% bootstrap interval over problems.",
        "",
    ]
    lines += _table(["method", *(f"pass@{k}" for k in ks)], metrics_rows(metrics["all"], ks))
    groups = [g for g in metrics if g != "all"]
    if groups:
        lines += ["", "## pass@k (%) per difficulty", ""]
        rows = []
        for g in groups:
            n = next(iter(metrics[g]["unranked"].values()))["n"]
            rows += [[f"{g} ({n})", *r] for r in metrics_rows(metrics[g], ks)]
        lines += _table(["difficulty (problems)", "method", *(f"pass@{k}" for k in ks)], rows)
    return lines


def _outcomes(fig: dict[str, Any]) -> list[str]:
    lines = ["", "## outcomes of the samples", ""]
    rows = [
        [o, str(s["n"]), pct(s["share"]), _num(s["reward_mean"]), _num(s["mean_logprob_mean"])]
        for o, s in fig["outcomes"].items()
    ]
    return lines + _table(
        ["outcome", "samples", "share (%)", "mean R~", "mean token log-prob"], rows
    )


def _against_likelihood(fig: dict[str, Any], ks: list[str]) -> list[str]:
    """The rankers' paired differences against the likelihood ranking, when reported."""
    if not fig.get("vs_likelihood"):
        return []
    # with agreement rankers in the pairs (a run that wrote tests) not every ranker is learned
    learned = all(pair.split(" - ")[0] in LEARNED for pair in fig["vs_likelihood"])
    who, winner = ("learned ", "the learned one") if learned else ("", "the ranker")
    lines = [
        "",
        f"## {who}rankers against likelihood (percentage points)",
        "",
        f"Each cell: the {who}ranker's ranked pass@k minus the likelihood ranking's, over "
        f"problems, and its 95% paired bootstrap interval (above 0: {winner} wins).",
        "",
    ]
    rows = _diffs(fig["vs_likelihood"], ks)
    return lines + _table([f"{who or 'ranker '}- likelihood", *(f"pass@{k}" for k in ks)], rows)


def _paper(paper: list[dict[str, Any]] | None) -> list[str]:
    """The paper's published numbers beside this run's (``--paper``)."""
    if not paper:
        return []
    lines = [
        "",
        "## the paper's numbers (Yu et al., ICLR 2024) beside this run",
        "",
        "The **paper** column is published (CodeT5-770M backbone, APPS / MBPP, its own m); "
        "**this run** is this report's.",
        "",
    ]
    rows = [
        [
            r["table"],
            r["method"],
            str(r["k"]),
            r["difficulty"],
            f"{r['paper']:.2f}",
            "-" if r["run"] is None else f"{r['run']:.2f}",
            r["setting"],
        ]
        for r in paper
    ]
    header = ["paper table", "method", "k", "difficulty", "paper", "this run", "paper setting"]
    return lines + _table(header, rows)


def _rankers(fig: dict[str, Any], used: str | None, k: str) -> list[str]:
    """A row per ranker: its pass@k (smallest k) and ROC AUC for 'the sample passes' (all
    samples pooled); then which learned ranker did best and which one the checkpoint uses."""
    overall = fig["metrics"]["all"]
    rows = [
        [
            f"`{name}`",
            RANKER_LABELS[name],
            cell(overall.get(ranked_method(name), {}).get(k)),
            _num(auc, 3),
        ]
        for name, auc in fig["auc"].items()
    ]
    lines = _table(["ranker", "what it ranks by", f"pass@{k}", "ROC AUC"], rows)
    agreement = fig.get("agreement")
    if agreement:
        n, back = agreement["problems"], agreement["fell_back"]
        lines += [
            "",
            f"Agreement rankers (`codet-*`, `outputs-*`, `overlap-*`): generated tests ran on "
            f"{n - back} of {n} problems; on the other {back} they order by example tests, then "
            "R~ or mean log-prob alone.",
        ]
    best = fig.get("best_ranker")
    if best:
        lines += [
            "",
            f"Best learned ranker by pass@{k} here: `{best}`"
            + (f"; the checkpoint ranks by `{used}`" if used else "")
            + '. A checkpoint ranks by the `"ranker"` field of its `bcoder_config.json` '
            "(default `reward`); choose it on a validation split, not on the test set.",
        ]
    return lines


def _heads(heads: str | None) -> list[str]:
    if not is_no_heads(heads):
        return [f"- value heads: `{heads}`"] if heads else []
    return [
        "- value heads: **init** (untrained): V is constant, so R~ = sum of advantages + const, "
        "a likelihood-like score; train heads (`bcoder train`) to get the paper's reward model"
    ]


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"
