"""``bcoder doctor``: the sandbox in force for generated programs, the inference set-up (backend,
dtype, threads, and why), and what is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from bcoder.cli import options as opt


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def _version(argv: list[str]) -> str | None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (r.stdout or r.stderr).strip().splitlines()[0] if r.returncode == 0 else None


def diagnose(smoke: bool = True) -> dict[str, Any]:
    """The isolation level, each mechanism's availability, what is missing, and a smoke test."""
    from bcoder.execution.sandbox import LEVELS, isolation_level, level_available

    report: dict[str, Any] = {
        "platform": sys.platform,
        "python": sys.version.split()[0],
        "running_as_root": os.geteuid() == 0,
    }
    report["bwrap"] = shutil.which("bwrap")
    report["bwrap_version"] = _version(["bwrap", "--version"]) if report["bwrap"] else None
    report["unshare"] = shutil.which("unshare")
    report["available"] = {lv: level_available(lv) for lv in LEVELS}
    missing = []
    if not report["bwrap"]:
        missing.append("bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)")
    elif not report["available"]["bubblewrap"]:
        missing.append(
            "working bubblewrap: user namespaces may be disabled "
            "(sysctl kernel.unprivileged_userns_clone=1)"
        )
    if not report["available"]["unshare"] and not report["available"]["bubblewrap"]:
        missing.append("unshare with user namespaces (util-linux)")
    report["missing"] = missing
    try:
        report["level"] = isolation_level()
    except Exception as err:  # BCODER_SANDBOX names a level that does not work here
        report["level"], report["error"] = None, str(err)
        return report
    if smoke:
        report["smoke_test"] = _smoke(report["level"])
    return report


def inference(
    model: str | None = None, backend: str = "auto", smoke: bool = True
) -> dict[str, Any]:
    """The backend, dtype and threads a solve would use here, each with the reason; with
    ``smoke``, whether llama.cpp runs the model on this CPU (when it is the backend and the model
    is on disk)."""
    from bcoder.backends.base import choose_backend, llama_cpp_available
    from bcoder.core.errors import BcoderError
    from bcoder.models.hardware import cpu_info, cpu_threads, default_cpu_dtype_name
    from bcoder.models.loading import BF16_MIN_PARAMS
    from bcoder.models.sources import DEFAULT_MODEL, artifact_path, resolve_source

    model = model or DEFAULT_MODEL
    cuda = _cuda()
    out: dict[str, Any] = {"model": model, "cuda": cuda, "llama_cpp": llama_cpp_version()}
    try:
        src = resolve_source(model)
        gguf = src.is_gguf
        out["backend"] = choose_backend(backend, "gguf" if gguf else src.kind, cuda=cuda)
    except BcoderError as err:
        out["backend"], out["backend_why"] = None, str(err)
        return out
    if backend not in ("auto", None):
        out["backend_why"] = "asked for"
    elif out["backend"] == "llama.cpp":
        out["backend_why"] = "a GGUF model on a machine without a CUDA GPU"
    elif gguf and not llama_cpp_available():
        out["backend_why"] = "llama-cpp-python is not installed (bash scripts/install.sh)"
    else:
        out["backend_why"] = "a CUDA GPU" if cuda else "not a GGUF model"
    info = cpu_info()
    out["cpu_native_bf16"] = info.native_bf16
    if out["backend"] == "llama.cpp":
        out["dtype"], out["dtype_why"] = "gguf", "the GGUF file's own (quantized) weights"
    elif cuda:
        out["dtype"], out["dtype_why"] = "bfloat16 or float16", "a CUDA GPU"
    else:
        name, why = default_cpu_dtype_name(BF16_MIN_PARAMS, BF16_MIN_PARAMS)
        out["dtype"] = "bfloat16 (float32 under 300M parameters)" if info.native_bf16 else name
        out["dtype_why"] = why.split(": ", 1)[1]
    out["threads"] = cpu_threads()
    out["threads_why"] = (
        f"the idle cores of {os.cpu_count()} (1-minute load {os.getloadavg()[0]:.1f})"
    )
    if smoke and out["backend"] == "llama.cpp":
        path = src.path if src.kind == "gguf" else artifact_path(src) if src.artifact else None
        out["llama_cpp_runs"] = _llama_smoke(path) if path and path.is_file() else None
    return out


# Loads the GGUF file and evaluates a few tokens: in a child process, because a llama.cpp
# compiled for another CPU does not raise, it dies (SIGILL) and would take bcoder with it.
_LLAMA_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(sys.argv[1], n_ctx=64, n_threads=1, verbose=False)
llm.eval(llm.tokenize(b"def add(a, b):"))
print("ok")
"""


def _llama_smoke(path: Path) -> dict[str, Any]:
    """Whether llama.cpp loads ``path`` and evaluates a prompt here, and if not, why."""
    import signal
    import time

    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            [sys.executable, "-c", _LLAMA_PROBE, str(path)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"ok": False, "why": "no answer in 300 s"}
    out: dict[str, Any] = {
        "ok": r.stdout.strip() == "ok",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if r.returncode == -signal.SIGILL:
        out["why"] = (
            "Illegal instruction: llama-cpp-python was compiled for another CPU; "
            "`pip uninstall llama-cpp-python && bash scripts/install.sh` compiles it for this one"
        )
    elif not out["ok"]:
        lines = (r.stderr or r.stdout).strip().splitlines()
        out["why"] = lines[-1] if lines else f"exit status {r.returncode}"
    return out


def llama_cpp_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:
        return None


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _smoke(level: str) -> dict[str, Any]:
    from bcoder.core.spec import TestSpec
    from bcoder.execution import Executor

    probe = (
        "import os\nst = open('/proc/self/status').read()\n"
        "caps = [l.split()[1] for l in st.splitlines() if l.startswith('CapEff')]\n"
        "print(os.getuid(), caps[0], len(os.environ))\n"
    )
    spec = TestSpec(inputs=("",), outputs=("",))
    with Executor(workers=1, level=level, on_warning=lambda _m: None) as ex:
        res = ex.run(probe, spec)
    out = res.tests[0].stdout.split() if res.tests else []
    ok = len(out) == 3 and out[0] != "0" and int(out[1], 16) == 0
    return {
        "ran": bool(out),
        "uid": out[0] if out else None,
        "capabilities": out[1] if len(out) > 1 else None,
        "unprivileged": ok,
        "seconds": round(res.time, 3),
    }


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    no_smoke: bool = typer.Option(False, "--no-smoke", help="Skip running a test program."),
    model: opt.Model = None,
    backend: opt.Backend = "auto",
) -> None:
    """Show the sandbox in force, and the backend, dtype and threads a solve would use, and why."""
    report = diagnose(smoke=not no_smoke)
    report["inference"] = inference(model, backend, smoke=not no_smoke)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    level = report.get("level")
    style = {"bubblewrap": "green", "unshare": "yellow"}.get(level or "", "bold red")
    console.print(f"isolation level: [{style}]{level or 'none'}[/]")
    if report.get("error"):
        console.print(f"[bold red]error:[/] {escape(report['error'])}")
    if level == "rlimits-only":
        console.print(
            "[bold red]WARNING: no namespaces: generated programs can read your files "
            "and reach the network; they only get resource limits.[/]"
        )
    for lv, ok in report["available"].items():
        console.print(f"  {lv:<13} {'[green]available[/]' if ok else '[red]not available[/]'}")
    console.print(
        f"  bwrap: {escape(report['bwrap_version'] or 'not found')}; "
        f"unshare: {escape(report['unshare'] or 'not found')}; "
        f"running as root: {report['running_as_root']}"
    )
    smoke = report.get("smoke_test")
    if smoke:
        verdict = "[green]ok[/]" if smoke["unprivileged"] else "[bold red]NOT unprivileged[/]"
        console.print(
            f"  test program: uid {smoke['uid']}, capabilities {smoke['capabilities']}"
            f" -> {verdict} ({smoke['seconds']} s)"
        )
    inf = report["inference"]
    console.print(f"inference ({escape(inf['model'])}):")
    console.print(f"  backend: {escape(str(inf['backend']))} ({escape(inf['backend_why'])})")
    if inf["backend"]:
        console.print(f"  dtype:   {escape(inf['dtype'])} ({escape(inf['dtype_why'])})")
        console.print(f"  threads: {inf['threads']} ({escape(inf['threads_why'])})")
    console.print(f"  llama-cpp-python: {escape(inf['llama_cpp'] or 'not installed')}")
    runs = inf.get("llama_cpp_runs")
    if runs is not None:
        verdict = "[green]ok[/]" if runs["ok"] else f"[bold red]FAILS[/]: {escape(runs['why'])}"
        console.print(f"  llama.cpp on this CPU: {verdict}")
    if report["missing"]:
        console.print("missing:")
        for m in report["missing"]:
            console.print(f"  - {escape(m)}")
    else:
        console.print("nothing missing")
