"""Rich renderers of solve results: the ranked table and a per-token heatmap with a legend.

Shared by ``bcoder solve``, ``bcoder rank`` and ``bcoder runs show``:

    render_result(console, result, color_by="reward", top=5)
    heatmap(tokens, "q")  -> rich Text, each token's background coloured by its value
    best_program(result)  -> the best candidate's code as plain text (piped output, --out)

Text from users and models (statements, programs, paths) reaches Rich only as ``Text``, never as
markup: ``list[int]`` or ``[/i]`` in it is shown as written.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bcoder.cli.schema import heads_info
from bcoder.core.settings import is_no_heads, policy_name
from bcoder.core.types import Candidate, SolveResult, TokenScore

METRICS = {  # --color-by name -> (TokenScore field, what it is)
    "q": ("q", "Q(s_t, a_t)"),
    "v": ("v", "V(s_t)"),
    "advantage": ("advantage", "A(s_t, a_t) = Q - V"),
    "reward": ("reward", "r~_t = Q(s_t, a_t) - gamma V(s_t+1)"),
}
OUTCOME_STYLE = {
    "pass": "bold green",
    "fail": "red",
    "runtime_error": "magenta",
    "compile_error": "yellow",
}
_LOW, _MID, _HIGH = (200, 40, 40), (150, 140, 30), (30, 150, 60)  # red, amber, green
_SPECIALS = ("<|", "</s>", "<pad>", "<s>", "<end_of_turn>")
# What an R~ means, under every ranked table; R_EXPLAINED with --verbose (docs/json.md says more).
R_MEANING = "R~: higher is better, +1 at most; compare it only within one problem"
R_EXPLAINED = (
    "R~ = V(s_0) + sum_t A(s_t, a_t) + (1 - gamma) sum_t V(s_t): the value the model predicts "
    "before the first token (at most +1) plus each token's advantage, log p(token) - log p(the "
    "model's first choice), 0 for that choice; so -10 means the tokens were together about e^10 "
    "times less likely than the model's first choices. Its scale depends on the problem and the "
    "program's length: compare candidates of one problem, not problems."
)


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"rgb({r},{g},{bl})"


def colour(x: float) -> str:
    """A background colour for x in [0, 1]: red (low) -> amber -> green (high)."""
    x = min(1.0, max(0.0, x))
    return _blend(_LOW, _MID, x * 2) if x < 0.5 else _blend(_MID, _HIGH, x * 2 - 1)


def value_range(values: Sequence[float], metric: str) -> tuple[float, float]:
    """The range the colours span: the 5th to 95th percentile (advantage tops out at 0)."""
    if not values:
        return 0.0, 1.0
    s = sorted(values)
    lo, hi = s[int(0.05 * (len(s) - 1))], s[round(0.95 * (len(s) - 1))]
    if metric == "advantage":
        hi = 0.0
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def heatmap(tokens: Sequence[TokenScore], metric: str = "reward") -> Text:
    """The tokens' text, each on a background coloured by ``metric`` (q, v, advantage, reward)."""
    field = METRICS[metric][0]
    values = [float(getattr(t, field)) for t in tokens]
    lo, hi = value_range(values, metric)
    text = Text()
    for tok, val in zip(tokens, values, strict=True):
        style = f"white on {colour((val - lo) / (hi - lo))}"
        piece = tok.text
        if piece.startswith(_SPECIALS) and piece.endswith(">"):
            style += " italic dim"
        # A newline keeps no background: mark it so its value stays visible.
        parts = piece.split("\n")
        for i, part in enumerate(parts):
            if i:
                text.append("↵", style=style)
                text.append("\n")
            if part:
                text.append(part, style=style)
    return text


def legend(tokens: Sequence[TokenScore], metric: str) -> Text:
    """A colour bar with the values at its ends, naming the metric."""
    field = METRICS[metric][0]
    lo, hi = value_range([float(getattr(t, field)) for t in tokens], metric)
    out = Text(f"{METRICS[metric][1]}:  ", style="bold")
    out.append(f"{lo:.3f} ")
    for i in range(12):
        out.append("  ", style=f"on {colour(i / 11)}")
    out.append(f" {hi:.3f}  ")
    out.append("(low = red, high = green; ↵ marks a newline)", style="dim")
    return out


def outcome_text(outcome: str | None) -> Text:
    if outcome is None:
        return Text("-", style="dim")
    return Text(outcome, style=OUTCOME_STYLE.get(outcome, "white"))


def first_line(code: str) -> str:
    for line in code.splitlines():
        if line.strip():
            return line.strip()
    return "(no code)"


def statements(code: str) -> list[str]:
    """A program's non-blank lines, stripped, without comments and docstring lines."""
    out: list[str] = []
    quote = ""
    for raw in code.splitlines():
        line = raw.strip()
        if quote:  # inside a docstring
            quote = "" if quote in line else quote
        elif line.startswith(('"""', "'''")):
            quote = line[:3] if line.count(line[:3]) == 1 else ""
        elif line and not line.startswith("#"):
            out.append(line)
    return out


def telling_lines(result: SolveResult, shown: Sequence[Candidate]) -> list[str]:
    """What tells each shown candidate from the others: its first statement that is neither the
    problem's stub (signature, docstring) nor on every candidate shown (the signature they all
    write); else its first line that is not on every candidate; else its first line."""
    p = result.problem
    stub = {
        ln.strip() for key in ("starter_code", "text") for ln in str(p.get(key) or "").split("\n")
    }
    lines = [{ln.strip() for ln in c.code.splitlines()} for c in shown]
    everywhere = set.intersection(*lines) if len(lines) > 1 else set()
    told = []
    for c in shown:
        differs = [ln.strip() for ln in c.code.splitlines() if ln.strip() not in everywhere]
        statement = (s for s in statements(c.code) if s not in stub and s not in everywhere)
        told.append(next(statement, None) or next(iter(differs), "") or first_line(c.code))
    return told


def heads_line(result: SolveResult) -> Text:
    """One line: what ranks the candidates and what the heads learnt from (--verbose: more)."""
    if is_no_heads(result.heads):
        text = "untrained heads: R~ is the model's own likelihood here, not a learned reward"
        return Text(text, style="yellow", no_wrap=True, overflow="ellipsis")
    from bcoder.ranking.rankers import RANKER_LABELS

    info = heads_info(result.heads)
    heads = f"trained on {info['trained_on']}" if info["trained_on"] else info["label"]
    ranks = RANKER_LABELS.get(result.ranker, result.ranker)
    return Text(f"ranks by {ranks} · heads {heads}", style="dim", no_wrap=True, overflow="ellipsis")


def heads_details(result: SolveResult) -> list[str]:
    """What --verbose adds to the heads line: the heads in full, the policy sampled, what R~ is."""
    if is_no_heads(result.heads):
        lines = [
            "heads: untrained initialisation (V = R_max everywhere, Q = A_base + V): R~ is the "
            "sum of the model's own advantages plus a constant, not a learned reward; train heads "
            "with `bcoder train` or pass --checkpoint"
        ]
    else:
        from bcoder.qmodel.shipped import describe

        lines = [f"heads: {describe(result.heads)}"]
        if policy_name(result.settings.get("policy")) == "base":
            lines.append(
                "sampled from the base model's own policy, softmax(l_base), scored with the "
                "trained one (--policy trained: sample from the trained one)"
            )
    return [*lines, R_EXPLAINED]


def timings_line(timings: dict[str, float]) -> str:
    """Seconds per stage. A stage that took no time is left out: scoring that the decode loop did
    while sampling is said so, not shown as "score 0.00s"."""
    shown = {k: v for k, v in timings.items() if v >= 0.005}
    parts = {k: f"{k} {v:.2f}s" for k, v in shown.items()}
    if "generate" in shown and "score" in timings and "score" not in shown:
        parts["generate"] += " (scored while sampling)"
    return "  ".join(parts.values())


def sampled(result: SolveResult) -> str:
    """How many programs the candidates came from: "8 sampled" (a solve), "3 given" (rank)."""
    n = result.settings.get("n") or sum(c.count for c in result.candidates)
    return f"{n} given" if result.settings.get("mode") == "rank" else f"{n} sampled"


def ranked_table(result: SolveResult, top: int = 5, title: str | None = None) -> Table:
    """The candidates best first, each with the line of code that tells it from the others. The
    numbers and the outcome are never cut; the code takes the width the terminal has and alone
    gives way (ellipsis) when it is too narrow."""
    shown = result.candidates[:top]
    title = title or (
        f"candidates ranked by {result.ranker} (top {len(shown)} of {len(result.candidates)} "
        f"distinct, {sampled(result)})"
    )
    table = Table(
        title=Text(title),
        title_justify="left",
        caption=Text(R_MEANING),
        caption_justify="left",
    )
    written = len(result.generated.asserts) if result.generated is not None else 0
    names = ("rank", "R~", "outcome", *(("written tests",) if written else ()), "count", "tokens")
    for name in names:
        table.add_column(name, justify="left" if name == "outcome" else "right", no_wrap=True)
    table.add_column(shrinking("first line that differs"))
    for i, (c, told) in enumerate(zip(shown, telling_lines(result, shown), strict=True), 1):
        passes = sum(t.verdict == "pass" for t in c.generated)
        table.add_row(
            str(i),
            f"{c.reward:.3f}",
            outcome_text(c.outcome),
            *((f"{passes}/{written}",) if written else ()),
            str(c.count),
            str(len(c.tokens)),
            shrinking(told),
        )
    return table


def shrinking(text: str) -> Text:
    """A header or cell of the column that gives way when a table is too wide.

    rich narrows the columns that may wrap (``no_wrap=False``) before any other, so that
    column is declared wrappable and every other one ``no_wrap``; its text cuts the line with
    an ellipsis instead of wrapping it. As Text, code such as ``list[int]`` is not rich markup.
    """
    return Text(text, no_wrap=True, overflow="ellipsis")


def render_result(
    console: Console,
    result: SolveResult,
    color_by: str = "reward",
    top: int = 5,
    verbose: bool = False,
) -> None:
    """Print the title, the heads line (with ``verbose`` its details), the timings, the ranked
    table and the best candidate."""
    console.print(title_line(result))
    console.print(heads_line(result))
    if verbose:
        for line in heads_details(result):
            console.print(Text(line, style="dim"))
    if timings := timings_line(result.timings):
        console.print(Text(timings, style="dim"))
    if not result.candidates:
        console.print("no candidates (all were dropped by --filter-examples)", style="red")
        return
    if passing := pass_count_line(result):
        console.print(passing)
    if written := generated_line(result):
        console.print(written)
    console.print(ranked_table(result, top))
    show_best(console, result.candidates[0], color_by)


def pass_count_line(result: SolveResult) -> Text | None:
    """'3 of 16 pass the tests' once candidates were tested (merged copies counted; distinct
    programs in brackets when some were merged), and whether those that pass come first."""
    cands = result.candidates
    if all(c.outcome is None for c in cands):
        return None
    passing = [c for c in cands if c.outcome == "pass"]
    n, total = sum(c.count for c in passing), sum(c.count for c in cands)
    line = f"{n} of {total} pass the tests"
    if total != len(cands):
        line += f" ({len(passing)} of {len(cands)} distinct programs)"
    if untested := sum(c.count for c in cands if c.outcome is None):
        line += f", {untested} not tested"
    if passing and result.settings.get("passing_first"):
        line += "; those that pass are ranked first"
    return Text(line, style="bold green" if passing else "bold")


def generated_line(result: SolveResult) -> Text | None:
    """What the tests the model wrote did (a problem without tests of its own, or with them when
    asked): how many, and what ranked the candidates, or why there are none."""
    from bcoder.ranking.rankers import RANKER_LABELS, fallback_order

    g = result.generated
    if g is None:
        return None
    # the problem's own tests (or examples) ran, so they ordered first: what solve's note says
    own = any(c.outcome is not None or c.passed_examples is not None for c in result.candidates)
    label = RANKER_LABELS.get(result.ranker, result.ranker)
    if alone := fallback_order(result.ranker, result.candidates):
        label = alone if own else f"{alone} alone"
    ranked = f"ranked by the problem's own tests, then {label}" if own else f"ranked by {label}"
    if not g.asserts:
        return Text(f"no tests of the model's own ran ({g.note}); {ranked}", style="yellow")
    given = "beside the problem's own tests" if own else "no tests given"
    line = (
        f"{given}: the model wrote {len(g.asserts)} (from {g.samples} samples, "
        f"{g.seconds:.1f}s); {ranked}"
    )
    return Text(line, style="bold")


def title_line(result: SolveResult) -> Text:
    """The problem, the model and backend, and the run's id."""
    p = result.problem
    model = result.settings.get("model", "?")
    title = f"{p.get('id') or 'problem'}  ·  model {model}"
    if backend := result.settings.get("backend"):  # runs saved before backends have none
        title += f" on {backend}"
    if result.run_id:
        title += f"  ·  run {result.run_id}"
    return Text(title, style="bold")


def best_summary(best: Candidate) -> str:
    """What the best candidate scored: R~, and its outcome and tests when it was tested."""
    sub = f"R~ {best.reward:.3f}"
    if best.outcome:
        sub += f"  ·  {best.outcome}"
        if best.tests:
            passed = sum(t.verdict == "pass" for t in best.tests)
            sub += f" ({passed}/{len(best.tests)} tests)"
    return sub


def show_best(console: Console, best: Candidate, color_by: str) -> None:
    """The best candidate as a heatmap with its colour legend where the console shows colours;
    elsewhere (a pipe, NO_COLOR) its program plainly, with no border to copy around."""
    if console.color_system is None or console.no_color:
        console.print(Text(f"best candidate  ·  {best_summary(best)}", style="bold"))
        console.print(Text(best.code.rstrip("\n") or "(no code)"), soft_wrap=True)
        return
    body = Group(heatmap(best.tokens, color_by), Text(""), legend(best.tokens, color_by))
    console.print(
        Panel(
            body,
            title=f"best candidate, coloured by {color_by}",
            subtitle=best_summary(best),
            title_align="left",
            subtitle_align="right",
        )
    )


def best_program(result: SolveResult) -> str:
    """The best candidate's program, ending in one newline ("" when there is none)."""
    if not result.candidates or not result.candidates[0].code.strip():
        return ""
    return result.candidates[0].code.rstrip("\n") + "\n"


def summary_line(result: SolveResult) -> str:
    """One plain line on the best candidate, for stderr when stdout carries the program."""
    if not result.candidates:
        return f"no candidates of {sampled(result)} (all were dropped by --filter-examples)"
    best = result.candidates[0]
    line = (
        f"best of {sampled(result)} ({len(result.candidates)} distinct), ranked by "
        f"{result.ranker}{on_generated(result)}: {best_summary(best)}"
    )
    return line + (f"  ·  run {result.run_id}" if result.run_id else "")


def on_generated(result: SolveResult) -> str:
    """What the tests the model wrote gave the ranker, for the summary line ("" without any)."""
    from bcoder.ranking.rankers import fallback_order

    if result.generated is None:
        return ""
    if alone := fallback_order(result.ranker, result.candidates):
        return f" ({alone} alone: no generated test ran)"
    passed = sum(t.verdict == "pass" for t in result.candidates[0].generated)
    return f" on {len(result.generated.asserts)} tests the model wrote (the best passes {passed})"
