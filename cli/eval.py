"""``bcoder eval``: the paper's evaluation protocol over a dataset; ``bcoder eval report DIR``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NoReturn

import typer

from bcoder.cli import options as opt
from bcoder.cli.options import set_threads
from bcoder.problems.prompts import PREFILL

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
        None,
        "--dataset",
        "-d",
        metavar="NAME|PATH",
        help="apps | mbpp | humaneval, or a problems file or folder.",
    ),
    split: str | None = typer.Option(
        "test", "--split", metavar="SPLIT", help="train | validation | test | all."
    ),
    limit: int | None = typer.Option(
        None, "--limit", metavar="N", help="The first N problems only (a resumed run grows)."
    ),
    ids: str | None = typer.Option(None, "--ids", metavar="ID,...", help="These problems only."),
    samples: int = typer.Option(
        8, "--samples", "-n", "-M", metavar="M", help="Candidates sampled per problem (M)."
    ),
    k: str | None = typer.Option(
        None, "--k", metavar="K,...", help="pass@k for these k, e.g. 1,5,10 (default: 1,5, <= M)."
    ),
    model: opt.Model = None,
    checkpoint: opt.Checkpoint = None,
    policy: opt.Policy = None,
    backend: opt.Backend = "auto",
    dtype: opt.Dtype = None,
    device: opt.Device = None,
    temperature: opt.Temperature = 0.6,
    top_p: opt.TopP = 0.95,
    max_new_tokens: opt.MaxNewTokens = None,
    seed: int = typer.Option(
        0, "--seed", metavar="N", help="Sampling seed (and the random baseline's)."
    ),
    batch_size: opt.BatchSize = 8,
    timeout: opt.Timeout = 4.0,
    out: Path | None = typer.Option(None, "--out", "-o", metavar="DIR", help="The run directory."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in --out with its own settings; --limit, --ids, --k and "
        "--bootstrap given change what it covers, other settings must match.",
    ),
    shard: str | None = typer.Option(
        None, "--shard", metavar="I/N", help="This process's share: every N-th problem from I."
    ),
    rank_only: Path | None = typer.Option(
        None,
        "--rank-only",
        metavar="FILE",
        help="Score and rank the programs of a programs file instead of sampling.",
    ),
    paper: bool = typer.Option(False, "--paper", help="Show the paper's numbers beside."),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", metavar="N", help="Bootstrap resamples for the CIs."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    threads: opt.Threads = 0,
    generate_only: bool = typer.Option(
        False, "--generate-only", help="Sample and score only; a later --resume executes."
    ),
    prefill: opt.Prefill = PREFILL,
    test_samples: opt.TestSamples = None,
    max_tests: opt.MaxTests = None,
    protocol: opt.Protocol = "tests",
    quiet: opt.Quiet = False,
) -> None:
    """Sample M candidates per problem, score and run them, and report pass@k (see the README)."""
    if ctx.invoked_subcommand is not None:
        return
    from bcoder.core.errors import BcoderError
    from bcoder.evaluate import parse_ks, parse_shard, run_eval, write_report

    if out is None or (dataset is None and not resume):
        raise BcoderError("bcoder eval needs --dataset and --out (see bcoder eval --help)")
    flat = {
        "dataset": dataset,
        "split": None if split in (None, "", "all") else split,
        "limit": limit,
        "ids": [x.strip() for x in ids.split(",") if x.strip()] if ids else None,
        "samples": samples,
        "ks": parse_ks(k) if k is not None else None,
        "model": model,
        "checkpoint": checkpoint,
        "policy": policy,
        "backend": backend,
        "dtype": dtype,
        "device": device,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "batch_size": batch_size,
        "timeout": timeout,
        "rank_only": str(rank_only) if rank_only else None,
        "bootstrap": bootstrap,
        "prefill": prefill,
        "protocol": protocol,
        "test_writing": opt.test_writing_asked(test_samples, max_tests) or None,
    }
    settings = _settings(ctx, flat, out, resume)
    settings.threads = threads
    set_threads(threads, settings.device)
    try:
        with _progress(quiet) as on_event:
            outcome = run_eval(
                settings,
                out,
                resume=resume,
                shard=parse_shard(shard),
                on_event=on_event,
                execute=not generate_only,
            )
    except KeyboardInterrupt:
        _interrupted(out, shard, generate_only)
    if generate_only:
        typer.echo("sampled and scored; to execute, run the same command with --resume", err=True)
        return
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


def _settings(ctx: typer.Context, flat: dict[str, Any], out: Path, resume: bool) -> Any:
    """The run's settings: a resumed run's own, changed by the options given; else the options'
    (the checkpoint a request means and its length resolved)."""
    from bcoder.evaluate import EvalSettings
    from bcoder.evaluate.records import CONFIG
    from bcoder.pipeline.engine import model_for

    if resume and (out / CONFIG).is_file():  # go on with the run's settings, and what was given
        flags = {"samples": "samples", "ks": "k"}
        given = {key: v for key, v in flat.items() if _given(ctx, flags.get(key, key))}
        if flat["test_writing"]:  # --test-samples, --max-tests: no option is named test_writing
            given["test_writing"] = flat["test_writing"]
        return EvalSettings.from_run(out, given)
    if flat["dataset"] is None:
        return EvalSettings.from_run(out)  # says there is no run to resume
    asked = {k: v for k, v in flat.items() if not (k == "checkpoint" and v is None)}  # shipped
    asked["model"] = model_for(flat["model"], flat["checkpoint"])
    return EvalSettings.from_dict(asked).resolved()


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)  # click's ParameterSource (typer vendors click)
    return source is not None and source.name == "COMMANDLINE"


def _interrupted(out: Path, shard: str | None, generate_only: bool) -> NoReturn:
    """Ctrl-C: say what is kept and the command that goes on from there; exit 130."""
    import shlex

    from bcoder.evaluate.records import CONFIG, PROBLEMS, SAMPLES

    if not (out / CONFIG).is_file():
        typer.echo("interrupted before the run started: nothing was written", err=True)
        raise typer.Exit(130)
    done = len(list((out / PROBLEMS).glob("*.json.gz")))
    sampled = len(list((out / SAMPLES).glob("*.json.gz")))
    command = ["bcoder", "eval", "--out", str(out), "--resume"]
    command += ["--shard", shard] if shard else []
    command += ["--generate-only"] if generate_only else []
    typer.echo(
        f"interrupted: {done} problems done, {sampled} sampled, kept in {out}; "
        f"to go on: {shlex.join(command)}",
        err=True,
    )
    raise typer.Exit(130)


@eval_app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by bcoder eval."),
    k: str | None = typer.Option(None, "--k", help="pass@k for these k (default: the run's)."),
    paper: bool = typer.Option(False, "--paper", help="Show the paper's numbers beside."),
    partial: bool = typer.Option(False, "--partial", help="Report on the problems done so far."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """(Re)compute the report of a run directory, e.g. once every shard has finished."""
    from bcoder.core.errors import BcoderError
    from bcoder.evaluate import parse_ks, write_report

    if not run_dir.is_dir():
        raise BcoderError(f"{run_dir}: no such directory")
    report = write_report(run_dir, ks=parse_ks(k) if k else None, paper=paper, partial=partial)
    _show(report, run_dir, as_json)


@eval_app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by bcoder eval."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="The jsonl to write (default: stdout)."
    ),
) -> None:
    """The run's sampled programs as jsonl, a row per sample: what --rank-only reads (rank one
    model's candidates with another's value function, the paper's Table 3)."""
    from bcoder.core.fs import atomic_write_text
    from bcoder.evaluate.records import exported_candidates

    rows = "".join(json.dumps(row) + "\n" for row in exported_candidates(run_dir))
    if out is None:
        typer.echo(rows, nl=False)
    else:
        atomic_write_text(out, rows)


def _show(report: dict[str, Any], run_dir: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=1, default=str))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console()
    for table in _tables(report):
        console.print(table)
    t = report["timings"]
    console.print(
        f"model work {t['total']:.0f} s over {t['problems']} problems "
        f"(generate {t['generate']:.0f} s, score {t['score']:.0f} s, "
        + (f"write tests {t['write_tests']:.0f} s, " if "write_tests" in t else "")
        + f"execute {t['execute']:.0f} s)"
    )
    if report.get("missing"):
        console.print(f"[yellow]partial: {len(report['missing'])} problems not done yet[/]")
    paths = f"{run_dir / 'report.md'}, {run_dir / 'report.json'}; plots in {run_dir / 'plots'}"
    console.print(Text(f"report: {paths}"))  # a user's path, not markup


METHOD_LABELS = {
    "unranked": "unranked",
    "ranked_reward": "R~ (B-Coder)",
    "ranked_terminal": "terminal Q",
    "ranked_tests_first": "tests, then R~",
    "ranked_tests_first_terminal": "tests, then terminal Q",
    "ranked_mean_logprob": "mean logprob",
    "ranked_sum_logprob": "sum logprob",
    "ranked_tests_first_logprob": "tests, then mean logprob",
    "ranked_codet_reward": "CodeT, then R~",
    "ranked_codet_logprob": "CodeT, then mean logprob",
    "ranked_outputs_reward": "outputs, then R~",
    "ranked_outputs_logprob": "outputs, then mean logprob",
    "ranked_overlap_reward": "overlap, then R~",
    "ranked_overlap_logprob": "overlap, then mean logprob",
    "ranked_random": "random",
    "filtered_reward": "filtered, R~",
    "upper_bound": "upper bound",
}


def _tables(report: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    from bcoder.evaluate.markdown import metrics_rows, pct

    ks = [str(k) for k in report["config"]["ks"]]
    fig = report["figures"]
    metrics = fig["metrics"]
    n = next(iter(metrics["all"]["unranked"].values()))["n"]
    samples = ", ".join(map(str, fig["samples"]))
    overall = Table(title=f"pass@k (%) over {n} problems, M = {samples} [95% bootstrap CI]")
    overall.add_column("method", no_wrap=True)
    for k in ks:
        overall.add_column(f"pass@{k}", justify="right", no_wrap=True)
    for row in metrics_rows(metrics["all"], ks, METHOD_LABELS):
        overall.add_row(*row)
    tables = [overall]
    if fig.get("vs_likelihood"):
        from bcoder.evaluate.markdown import cell

        diff = Table(title="ranker minus likelihood ranking (points) [95% paired bootstrap CI]")
        diff.add_column("ranker - likelihood", no_wrap=True)
        for k in ks:
            diff.add_column(f"pass@{k}", justify="right", no_wrap=True)
        for pair, by_k in fig["vs_likelihood"].items():
            diff.add_row(pair, *(cell(by_k.get(k)) for k in ks))
        tables.append(diff)
    groups = [g for g in metrics if g != "all"]
    if groups:
        per = Table(title="pass@k (%) per difficulty")
        per.add_column("method", no_wrap=True)
        for g in groups:
            for k in ks:
                per.add_column(f"{g[:5]}@{k}", justify="right", no_wrap=True)
        for method in metrics["all"]:
            cells = [
                pct(metrics[g].get(method, {}).get(k, {}).get("value")) for g in groups for k in ks
            ]
            per.add_row(METHOD_LABELS.get(method, method), *cells)
        tables.append(per)
    if report.get("paper"):
        table = Table(
            title="the PAPER's published numbers (Yu et al., ICLR 2024) beside this run",
            caption="paper: its own backbone, m and temperature (settings in report.md)",
        )
        for col in ("paper table", "method", "k", "difficulty", "paper", "this run"):
            table.add_column(col)
        for r in report["paper"]:
            run = "-" if r["run"] is None else f"{r['run']:.2f}"
            table.add_row(
                r["table"], r["method"], str(r["k"]), r["difficulty"], f"{r['paper']:.2f}", run
            )
        tables.append(table)
    return tables


class Eta:
    """Time left, from the rate of the problems this process has finished, counted from when the
    first of them started (after the model loaded; problems done before a resume took no time)."""

    def __init__(self) -> None:
        self.start: float | None = None

    def begin(self, now: float) -> None:
        if self.start is None:
            self.start = now

    def left(self, done: int, total: int, now: float) -> float | None:
        """Seconds left after ``done`` of ``total`` problems; None before the first is done."""
        if self.start is None or done <= 0 or done >= total:
            return None
        return (now - self.start) / done * (total - done)


def duration(seconds: float) -> str:
    """45 s, 3 min 20 s, 2 h 05 min."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


_WORK = ("generate", "score", "execute", "problems")  # the stages after the model has loaded


class _progress:
    """Progress from Progress events: on a terminal a rich display (the problems with an ETA,
    the current problem's sampled tokens as a count: its total is only a bound, which shrinks as
    candidates end), else a line per finished problem with an ETA; nothing with ``quiet``."""

    def __init__(self, quiet: bool = False, console: Any = None) -> None:
        self.quiet, self.console = quiet, console

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = self.console or Console(stderr=True)
        self.live = console.is_terminal and not self.quiet
        self.eta = Eta()
        self.finish: float | None = None  # when the last problem should be done
        self.t0 = time.perf_counter()
        self.bar = Progress(
            TextColumn("[bold]{task.fields[stage]:<9}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.description}", markup=False),  # problem ids from user files
            console=console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        if self.live:
            self.bar.__enter__()
        return self.on_event

    def on_event(self, ev: Any) -> None:
        stage = getattr(ev, "stage", None)
        if stage is None or self.quiet:
            return
        now = time.perf_counter()
        if stage in _WORK:
            self.eta.begin(now)
        if stage == "problems":
            left = self.eta.left(ev.done, ev.total, now)
            self.finish = None if left is None else now + left
        if not self.live:  # a log file: one line per finished problem
            if stage == "problems" and ev.done > 0:
                eta = "" if self.finish is None else f", eta {duration(self.finish - now)}"
                elapsed = duration(now - self.t0)
                typer.echo(
                    f"[{ev.done}/{ev.total}] {ev.message} done ({elapsed} in{eta})", err=True
                )
            return
        if stage == "generate":  # tokens so far; the bound on the total is not a total
            total, count = None, f"{ev.done} tokens"
        else:
            total, count = ev.total or None, f"{ev.done}/{ev.total}" if ev.total else ""
        description = ev.message[:50]  # shown as it is (markup=False)
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(
                description, total=total, stage=stage, count=count, eta=""
            )
        self.bar.update(
            self.tasks[stage], completed=ev.done, total=total, description=description, count=count
        )
        if "problems" in self.tasks:  # the ETA counts down between problems
            eta = "" if self.finish is None else f"eta {duration(max(self.finish - now, 0))}"
            self.bar.update(self.tasks["problems"], eta=eta)

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.bar.__exit__(*exc)
