"""``bcoder eval``: the paper's evaluation protocol over a dataset; ``bcoder eval report DIR``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

eval_app = typer.Typer(
    help="Evaluate a model on a dataset: pass@k unranked, ranked by R~ and by baselines.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


@eval_app.callback()
def evaluate(
    ctx: typer.Context,
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="apps | mbpp | humaneval, or a problems file or folder."
    ),
    split: str | None = typer.Option("test", "--split", help="train | validation | test | all."),
    limit: int | None = typer.Option(None, "--limit", help="The first N problems only."),
    ids: str | None = typer.Option(None, "--ids", help="Comma-separated problem ids."),
    samples: int = typer.Option(8, "--samples", "-M", help="Candidates sampled per problem (M)."),
    k: str = typer.Option("1,5", "--k", help="pass@k for these k, e.g. 1,5,10."),
    model: str | None = typer.Option(None, "--model", help="Model preset, hub id, dir or GGUF."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="B-Coder heads/adapters."),
    temperature: float = typer.Option(0.6, "--temperature", help="Sampling temperature."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling mass."),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", help="Completion length limit."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (and the random baseline's)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Candidates decoded together."),
    timeout: float = typer.Option(4.0, "--timeout", help="Seconds per test in the sandbox."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    shard: str | None = typer.Option(None, "--shard", help="i/n: this process's share."),
    rank_only: Path | None = typer.Option(
        None, "--rank-only", help="Score and rank programs from a jsonl (problem_id, code)."
    ),
    paper: bool = typer.Option(False, "--paper", help="Show the paper's numbers beside."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the CIs."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Sample M candidates per problem, score and run them, and report pass@k (see the README)."""
    if ctx.invoked_subcommand is not None:
        return
    from bcoder.errors import BcoderError
    from bcoder.evaluate import EvalSettings, parse_ks, parse_shard, run_eval, write_report
    from bcoder.sources import DEFAULT_MODEL

    if dataset is None or out is None:
        raise BcoderError("bcoder eval needs --dataset and --out (see bcoder eval --help)")
    settings = EvalSettings(
        dataset=dataset,
        split=None if split in (None, "", "all") else split,
        limit=limit,
        ids=[x.strip() for x in ids.split(",") if x.strip()] if ids else None,
        samples=samples,
        ks=parse_ks(k),
        model=model or DEFAULT_MODEL,
        checkpoint=checkpoint,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        timeout=timeout,
        rank_only=str(rank_only) if rank_only else None,
        bootstrap=bootstrap,
    )
    with _progress() as on_event:
        outcome = run_eval(
            settings, out, resume=resume, shard=parse_shard(shard), on_event=on_event
        )
    if outcome.missing:
        typer.echo(
            f"{len(outcome.done_now)} problems done here; {len(outcome.missing)} of "
            f"{len(outcome.problem_ids)} still without results (other shards?). When all are "
            f"done: bcoder eval report {out}",
            err=True,
        )
        return
    report = write_report(out, paper=paper) if paper else outcome.report
    _show(report, out, as_json)


@eval_app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by bcoder eval."),
    k: str | None = typer.Option(None, "--k", help="pass@k for these k (default: the run's)."),
    paper: bool = typer.Option(False, "--paper", help="Show the paper's numbers beside."),
    partial: bool = typer.Option(False, "--partial", help="Report on the problems done so far."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """(Re)compute the report of a run directory, e.g. once every shard has finished."""
    from bcoder.errors import BcoderError
    from bcoder.evaluate import parse_ks, write_report

    if not run_dir.is_dir():
        raise BcoderError(f"{run_dir}: no such directory")
    report = write_report(run_dir, ks=parse_ks(k) if k else None, paper=paper, partial=partial)
    _show(report, run_dir, as_json)


def _show(report: dict[str, Any], run_dir: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=1, default=str))
        return
    from rich.console import Console

    console = Console()
    for table in _tables(report):
        console.print(table)
    t = report["timings"]
    console.print(
        f"model work {t['total']:.0f} s over {t['problems']} problems "
        f"(generate {t['generate']:.0f} s, score {t['score']:.0f} s, execute {t['execute']:.0f} s)"
    )
    if report.get("missing"):
        console.print(f"[yellow]partial: {len(report['missing'])} problems not done yet[/]")
    console.print(
        f"report: {run_dir / 'report.md'}, {run_dir / 'report.json'}; plots in {run_dir / 'plots'}"
    )


def _tables(report: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    from bcoder.evaluate.markdown import metrics_rows

    ks = [str(k) for k in report["config"]["ks"]]
    fig = report["figures"]
    tables = []
    for group, methods in fig["metrics"].items():
        n = next(iter(methods["unranked"].values()))["n"]
        samples = ", ".join(map(str, fig["samples"]))
        table = Table(title=f"pass@k (%) - {group}: {n} problems, M = {samples}; [95% CI]")
        table.add_column("method")
        for kk in ks:
            table.add_column(f"pass@{kk}", justify="right")
        for row in metrics_rows(methods, ks):
            table.add_row(*row)
        tables.append(table)
    if report.get("paper"):
        table = Table(title="the PAPER's published numbers (Yu et al., ICLR 2024) vs this run")
        for col in ("paper table", "method", "k", "difficulty", "paper", "this run", "setting"):
            table.add_column(col)
        for r in report["paper"]:
            run = "-" if r["run"] is None else f"{r['run']:.2f}"
            table.add_row(
                r["table"], r["method"], str(r["k"]), r["difficulty"], f"{r['paper']:.2f}", run,
                r["setting"],
            )  # fmt: skip
        tables.append(table)
    return tables


class _progress:
    """A rich progress display fed by Progress events: problems, then the current stage."""

    def __enter__(self):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.fields[stage]:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.bar.__enter__()
        return self.on_event

    def on_event(self, ev: Any) -> None:
        stage = getattr(ev, "stage", None)
        if stage is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(ev.message, total=ev.total or None, stage=stage)
        self.bar.update(
            self.tasks[stage],
            completed=ev.done,
            total=ev.total or None,
            description=ev.message[:50],
        )

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)
