"""``bcoder train collect|import|featurize|phi|theta|all --config FILE [--set K=V ...] [--resume]``.

The recipes live in bcoder.train (they report through callbacks); this module resolves the
config, shows a rich progress bar with ETA per stage, and prints the diagnostics at the end of
each stage. Under ``accelerate launch`` every process runs the command; only the main process
draws progress and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import typer

from bcoder.cli.options import known_backend

train_app = typer.Typer(
    help="Train B-Coder: collect, featurize, phi-stage, theta-stage (resumable; CPU or GPUs).",
    no_args_is_help=True,
)

ConfigOption = typer.Option(
    ...,
    "--config",
    "-c",
    metavar="NAME|FILE",
    help="Config file (TOML or YAML), or the name of a packaged one (e.g. smollm2-135m-head).",
)
SetOption = typer.Option(
    None,
    "--set",
    "-s",
    metavar="SECTION.KEY=VALUE",
    help="Override a config value (repeatable).",
)
ResumeOption = typer.Option(
    False, "--resume", help="Continue a started stage from its last checkpoint."
)
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress display.")
BackendOption = typer.Option(
    None,
    "--backend",
    metavar="NAME",
    callback=known_backend,
    help="Inference backend of collect and featurize (model.backend): auto, transformers or "
    "llama.cpp (featurize: head mode only).",
)
OperatorOption = typer.Option(
    None,
    "--operator",
    metavar="NAME",
    help="theta-stage target action: conservative (the checkpoint's argmax, default) or "
    "optimality (Q_theta's own argmax; the paper's ablation).",
)
SkipPhiOption = typer.Option(
    False, "--skip-phi", help="Ablation: the theta-stage starts from an untrained value head."
)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


def _config(config: str, sets: list[str] | None, extra: list[str] | None = None):
    from bcoder.train.config import load_config

    return load_config(config, [*(sets or []), *(extra or [])])


def _check_inputs(cfg: Any, programs: Path | None = None) -> None:
    """Read what the stage reads before the model is loaded (or downloaded): a missing or
    unreadable file, an unknown dataset or split fails at once."""
    from bcoder.core.fs import read_text
    from bcoder.problems.load import load_problems

    if programs is not None:
        read_text(programs)
    # Raises on the call (not while iterating) for a missing path, dataset or split; an import
    # takes its problems from every split.
    load_problems(cfg.data.dataset, split=None if programs is not None else cfg.data.split)


def _backend_sets(backend: str | None) -> list[str]:
    return [] if backend is None else [f"model.backend={backend}"]


def _ablation_sets(operator: str | None, skip_phi: bool) -> list[str]:
    out = []
    if operator is not None:
        if operator not in ("conservative", "optimality"):
            from bcoder.core.errors import BcoderError

            raise BcoderError(f"--operator must be conservative or optimality, not {operator!r}")
        out.append(f"theta.operator={operator}")
    if skip_phi:
        out.append("theta.skip_phi=true")
    return out


@contextmanager
def _display(main: bool, quiet: bool) -> Iterator[Callable[[Any], None]]:
    """An event sink: a rich progress bar per stage (with ETA) and metric lines."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from bcoder.core.types import Progress as ProgressEvent
    from bcoder.train.loop import Metrics

    console = Console(stderr=True)
    if not main or quiet:
        yield lambda _e: None
        return
    if not console.is_terminal:  # a log file: plain lines, at most one per stage every 30 s
        yield _plain_log(console)
        return
    bar = Progress(
        TextColumn("[bold]{task.fields[stage]:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=console,
    )
    tasks: dict[str, Any] = {}

    def on_event(ev: Any) -> None:
        if isinstance(ev, ProgressEvent):
            if ev.stage not in tasks:
                tasks[ev.stage] = bar.add_task("", total=ev.total or None, stage=ev.stage)
            bar.update(
                tasks[ev.stage],
                completed=ev.done,
                total=ev.total or None,
                description=escape(ev.message),
            )
        elif isinstance(ev, Metrics) and ev.kind == "eval":
            shown = {
                k: v
                for k, v in ev.values.items()
                if k.endswith(("/td", "saturated_frac", "agreement"))
            }
            text = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
            bar.console.print(f"[dim]{escape(ev.stage)} step {ev.step}[/]  {escape(text)}")

    with bar:
        yield on_event


def _plain_log(console: Any) -> Callable[[Any], None]:
    """Progress as timestamped lines with an ETA (for nohup / CI logs)."""
    import time

    from bcoder.core.types import Progress as ProgressEvent
    from bcoder.train.loop import Metrics

    started: dict[str, tuple[float, int]] = {}
    last: dict[str, float] = {}

    def on_event(ev: Any) -> None:
        now = time.time()
        stamp = time.strftime("%H:%M:%S")
        if isinstance(ev, ProgressEvent):
            if "already done" in ev.message:  # skipped work says nothing about the rate
                started[ev.stage] = (now, ev.done)
            t0, d0 = started.setdefault(ev.stage, (now, ev.done))
            finished = ev.total and ev.done >= ev.total
            if now - last.get(ev.stage, 0) < 30 and not finished:
                return
            last[ev.stage] = now
            rate = (ev.done - d0) / max(now - t0, 1e-9)
            eta = f"eta {(ev.total - ev.done) / rate:.0f}s" if rate > 0 and ev.total else ""
            console.print(
                f"{stamp} {ev.stage} {ev.done}/{ev.total} {eta} {ev.message}",
                highlight=False,
                markup=False,
            )
        elif isinstance(ev, Metrics):
            text = " ".join(f"{k}={v:.4g}" for k, v in ev.values.items())
            console.print(
                f"{stamp} {ev.stage} step {ev.step} {ev.kind}: {text}",
                highlight=False,
                markup=False,
            )

    return on_event


def _print_result(title: str, result: dict[str, Any], main: bool) -> None:
    if not main:
        return
    from rich.console import Console

    console = Console()
    if "pass@1" in result and "ranker" in result:  # select: a table of rankers
        for line in _select_lines(title, result):
            console.print(line)
        return
    console.print(_result_table(title, result))


def _result_table(title: str, result: dict[str, Any]) -> Any:
    """A stage's result, a row per key (a nested value as key=value pairs)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", justify="right")
    for k, v in result.items():
        if isinstance(v, dict):
            v = ", ".join(f"{key}={_number(x)}" for key, x in v.items())
        elif isinstance(v, list):
            v = ", ".join(map(_number, v))
        table.add_row(escape(str(k)), escape(_number(v)))
    return table


def _number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _select_lines(title: str, result: dict[str, Any]) -> list[Any]:
    """``train select``'s choice: a line naming it, then the rankers as eval's report shows them
    (pass@1 and ROC AUC on the held-out problems' samples, the chosen one marked), then the
    policy check when there was one."""
    from rich.markup import escape
    from rich.table import Table

    from bcoder.core.settings import policy_name
    from bcoder.ranking.rankers import RANKER_LABELS

    pass1, auc = result["pass@1"], result.get("auc") or {}
    learned = set(result.get("learned") or ())
    table = Table(
        title=escape(
            f"{title}: rankers on {result.get('problems', '?')} held-out problems, "
            f"{result.get('samples', '?')} samples"
        )
    )
    table.add_column("ranker", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("pass@1 (%)", justify="right", no_wrap=True)
    table.add_column("AUC", justify="right", no_wrap=True)
    rows = [name for name in RANKER_LABELS if name in pass1]
    rows += [name for name in pass1 if name not in rows]
    for name in rows:
        label = RANKER_LABELS.get(name, name.replace("_", " "))
        chosen = name == result["ranker"]
        kind = "chosen" if chosen else ("learned" if name in learned else "")
        value = auc.get(name)
        table.add_row(
            f"[bold]{escape(label)}[/]" if chosen else escape(label),
            kind,
            _pct(pass1[name]),
            "-" if value is None else f"{value:.3f}",
            end_section=name == rows[-1] or name in ("random",),
        )
    lines: list[Any] = [
        f"ranker chosen: [bold]{escape(result['ranker'])}[/] "
        f"({escape(str(result.get('label') or RANKER_LABELS.get(result['ranker'], '')))})",
        table,
    ]
    policy = result.get("policy")
    if isinstance(policy, dict) and "chosen" in policy:
        base = policy.get("base", policy.get("checkpoint"))
        lines.append(
            f"policy: unranked pass@1 {_pct(policy.get('trained'))}% sampling from the trained "
            f"policy, {_pct(base)}% from the base LM: samples from the "
            f"{policy_name(policy['chosen'])} one"
        )
    return lines


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _run(stage: str, cfg: Any, resume: bool, quiet: bool, path: Path | None = None) -> None:
    from bcoder.core.fs import exclusive
    from bcoder.train import run
    from bcoder.train.setup import make_accelerator, run_dir

    accelerator = make_accelerator(cfg)
    main = accelerator.is_main_process
    if main and cfg.theta.operator == "optimality" and cfg.model.mode == "head":
        typer.echo(
            "note: in head mode the theta policy is the checkpoint's, so the optimality and the "
            "conservative operator pick the same target action (use lmhead, lora or full mode)",
            err=True,
        )
    with ExitStack() as stack:
        if main:  # two jobs writing one run directory would mix their work
            root = run_dir(cfg)
            stack.enter_context(exclusive(root / ".lock", f"run directory {root}"))
        on_event = stack.enter_context(_display(main, quiet))
        if stage == "collect":
            result = run.run_collect(cfg, accelerator, on_event=on_event)
        elif stage == "import":
            result = run.run_import(cfg, path, accelerator, on_event=on_event)
        elif stage == "featurize":
            result = run.run_featurize(cfg, accelerator, on_event=on_event)
        elif stage == "phi":
            result = run.run_phi(cfg, accelerator, resume=resume, on_event=on_event)
        elif stage == "theta":
            result = run.run_theta(cfg, accelerator, resume=resume, on_event=on_event)
        elif stage == "select":
            result = run.run_select(cfg, accelerator, on_event=on_event)
        else:
            result = run.run_all(cfg, accelerator, resume=resume, on_event=on_event)
    if stage == "all":
        for name, part in result.items():
            if isinstance(part, dict):
                _print_result(f"{name} ({cfg.run.dir})", part, main)
    else:
        _print_result(f"{stage} ({cfg.run.dir})", result, main)


IncrementalResume = typer.Option(
    False, "--resume", help="Accepted for symmetry: this stage always skips finished shards."
)


@train_app.command("collect")
def collect_cmd(
    config: str = ConfigOption,
    sets: list[str] = SetOption,
    resume: bool = IncrementalResume,
    backend: str | None = BackendOption,
    quiet: bool = QuietOption,
) -> None:
    """Sample m programs per training problem, run them in the sandbox, store them (resumable)."""
    cfg = _config(config, sets, _backend_sets(backend))
    _check_inputs(cfg)
    _run("collect", cfg, False, quiet)


@train_app.command("import")
def import_cmd(
    path: Path = typer.Argument(
        ..., help='A programs file: JSON lines {"problem": REF, "code": "...", "id": "..."}.'
    ),
    config: str = ConfigOption,
    sets: list[str] = SetOption,
    quiet: bool = QuietOption,
) -> None:
    """Import off-policy programs (anyone's), executed and stored like collected ones."""
    cfg = _config(config, sets)
    _check_inputs(cfg, path)
    _run("import", cfg, False, quiet, path)


@train_app.command("featurize")
def featurize_cmd(
    config: str = ConfigOption,
    sets: list[str] = SetOption,
    resume: bool = IncrementalResume,
    backend: str | None = BackendOption,
    quiet: bool = QuietOption,
) -> None:
    """Compute A_ckpt, the checkpoint's argmax (and hidden states, top-k logits) per token."""
    _run("featurize", _config(config, sets, _backend_sets(backend)), False, quiet)


@train_app.command("phi")
def phi_cmd(
    config: str = ConfigOption,
    sets: list[str] = SetOption,
    resume: bool = ResumeOption,
    quiet: bool = QuietOption,
) -> None:
    """phi-stage: pre-train the value head V_phi with the checkpoint's advantages frozen."""
    _run("phi", _config(config, sets), resume, quiet)


@train_app.command("theta")
def theta_cmd(
    config: str = ConfigOption,
    sets: list[str] = SetOption,
    resume: bool = ResumeOption,
    operator: str | None = OperatorOption,
    skip_phi: bool = SkipPhiOption,
    quiet: bool = QuietOption,
) -> None:
    """theta-stage: fine-tune Q_theta (L_Q + beta_adv L_adv + beta_ce L_ce), phi frozen."""
    _run("theta", _config(config, sets, _ablation_sets(operator, skip_phi)), resume, quiet)


@train_app.command("select")
def select_cmd(
    config: str = ConfigOption,
    sets: list[str] = SetOption,
    operator: str | None = OperatorOption,
    skip_phi: bool = SkipPhiOption,
    backend: str | None = BackendOption,
    quiet: bool = QuietOption,
) -> None:
    """Choose the checkpoint's ranker: the learned one with the best pass@1 on the held-out
    problems' samples (written into RUN_DIR/checkpoint; solve, TUI and LSP use it)."""
    sets_ = _ablation_sets(operator, skip_phi) + _backend_sets(backend)
    _run("select", _config(config, sets, sets_), False, quiet)


@train_app.command("all")
def all_cmd(
    config: str = ConfigOption,
    sets: list[str] = SetOption,
    resume: bool = ResumeOption,
    operator: str | None = OperatorOption,
    skip_phi: bool = SkipPhiOption,
    backend: str | None = BackendOption,
    quiet: bool = QuietOption,
) -> None:
    """collect -> featurize -> phi -> theta -> select; the run's checkpoint lands in
    RUN_DIR/checkpoint, ranking with the ranker its held-out problems chose."""
    cfg = _config(config, sets, _ablation_sets(operator, skip_phi) + _backend_sets(backend))
    _check_inputs(cfg)
    _run("all", cfg, resume, quiet)
