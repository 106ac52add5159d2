"""Options that several commands share (solve, rank, eval, tui, train): one definition each.

Short flags mean one thing in every command that has them: ``-m`` model, ``-c`` checkpoint
(``train``: its config; train has no checkpoint flag), ``-n`` candidates sampled per problem
(``eval`` also takes ``-M``, the paper's name), ``-t`` tests, ``-p`` problem, ``-d`` dataset, ``-o``
the file or directory written, ``-q`` quiet, ``-s`` a config override. Everything else is long only.

What a flag names is checked when it is parsed, before any heavy import: an unknown ``--model`` or
``--backend`` is a one-line error at once, and ``--threads`` is capped at the CPUs this process
may use, with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def known_model(value: str | None) -> str | None:
    """Fail fast on a model that cannot be found (no torch import, no download)."""
    if value:
        from bcoder.models.sources import resolve_source

        resolve_source(value)
    return value


def known_backend(value: str | None) -> str | None:
    """Fail fast on an unknown backend name (or llama.cpp when its binding is missing)."""
    if value:
        from bcoder.backends.base import choose_backend

        choose_backend(value, "dir", cuda=False)
    return value


def capped_threads_option(value: int) -> int:
    """``--threads`` at most the CPUs this process may use, saying so when it asked for more."""
    from bcoder.models.hardware import usable_cpus

    cpus = usable_cpus()
    if value > cpus:
        typer.echo(
            f"note: --threads {value} is more than the {cpus} CPU{'s' * (cpus != 1)} this "
            f"process may use: using {cpus}",
            err=True,
        )
        return cpus
    return value


Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME",
        callback=known_model,
        help="Model preset, HF id, directory or .gguf (default: the checkpoint's base, else the "
        "default model).",
    ),
]
Checkpoint = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        "-c",
        metavar="DIR",
        help="B-Coder checkpoint dir (trained heads; default: the ones shipped for the model, if "
        "any; 'none': untrained).",
    ),
]
Policy = Annotated[
    str | None,
    typer.Option(
        "--policy",
        metavar="trained|base",
        help="Sample from the 'trained' policy or the 'base' LM's own (lmhead / head mode; "
        "default: the one the checkpoint's validation chose; 'checkpoint' is the old name of "
        "'base').",
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        metavar="NAME",
        callback=known_backend,
        help="auto, transformers or llama.cpp (auto: llama.cpp for a GGUF model on a CPU).",
    ),
]
Dtype = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        metavar="bf16|fp16|fp32",
        help="Default: what the hardware runs fast (transformers).",
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="DEVICE",
        help="cpu, cuda, cuda:1 ... (default: cuda if any; transformers).",
    ),
]
Threads = Annotated[
    int,
    typer.Option(
        "--threads",
        min=0,
        metavar="N",
        callback=capped_threads_option,
        help="CPU threads, at most the CPUs this process may use (0: the idle cores).",
    ),
]
Samples = Annotated[int, typer.Option("--samples", "-n", metavar="N", help="Candidates to sample.")]
Tests = Annotated[
    Path | None, typer.Option("--tests", "-t", metavar="FILE", help="Tests JSON for the problem.")
]
Temperature = Annotated[
    float, typer.Option("--temperature", metavar="T", help="Sampling temperature.")
]
TopP = Annotated[
    float | None,
    typer.Option("--top-p", min=0.0, max=1.0, metavar="P", help="Nucleus sampling mass."),
]
MaxNewTokens = Annotated[
    int | None,
    typer.Option(
        "--max-new-tokens",
        min=1,
        metavar="N",
        help="Length limit per candidate (default: the checkpoint's target length, else 512).",
    ),
]
BatchSize = Annotated[
    int,
    typer.Option("--batch-size", min=1, metavar="N", help="Candidates decoded or scored at once."),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0.01, metavar="SECONDS", help="Seconds per test in the sandbox."),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Say more: the heads in full, the policy, what R~ is."),
]
NoSave = Annotated[bool, typer.Option("--no-save", help="Do not save in the results store.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
GeneratedTests = Annotated[
    bool,
    typer.Option(
        "--generated-tests/--no-generated-tests",
        help="For a problem without tests: the model writes tests, the candidates run on them and "
        "agreement on them ranks (CodeT).",
    ),
]
GeneratedTestsWithExamples = Annotated[
    bool,
    typer.Option(
        "--generated-tests-with-examples",
        help="Write tests for a problem with tests of its own too (a docstring's examples): they "
        "decide first, agreement on the model's tests orders the candidates they leave tied.",
    ),
]
TestSamples = Annotated[
    int | None,
    typer.Option(
        "--test-samples",
        min=1,
        metavar="N",
        help="Test-writing completions sampled at most for generated tests (default: 4; fewer "
        "when the first ones hold --max-tests distinct tests).",
    ),
]
MaxTests = Annotated[
    int | None,
    typer.Option(
        "--max-tests",
        min=1,
        metavar="N",
        help="Generated tests kept, first written first; an answer is asked for as many, up to "
        "10 (default: 5).",
    ),
]


def test_writing_asked(samples: int | None, max_tests: int | None) -> dict[str, int]:
    """The test-writing settings given on the command line (the rest are the defaults)."""
    return {k: v for k, v in {"samples": samples, "max_tests": max_tests}.items() if v}


Protocol = Annotated[
    str,
    typer.Option(
        "--protocol",
        metavar="tests|no-tests",
        help="What the model and rankers are shown: the dataset's prompt and example tests, or "
        "a docstring and no tests (MBPP as a stub without its asserts).",
    ),
]
Prefill = Annotated[
    bool,
    typer.Option(
        "--prefill/--no-prefill",
        help="For a stub (signature + docstring) and a chat model: start the answer with the stub "
        "written, so the model writes only the body (R~ then covers the body).",
    ),
]


def set_threads(threads: int, device: str | None) -> None:
    """Torch CPU threads: as asked (``--threads`` is capped when parsed), else the idle cores
    (see bcoder.models.hardware.cpu_threads)."""
    if device and not device.startswith("cpu") and not threads:
        return
    import torch

    from bcoder.models.hardware import capped_threads

    torch.set_num_threads(capped_threads(threads))
