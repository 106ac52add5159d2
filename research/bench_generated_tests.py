"""What writing tests costs a solve: `solve` of a stub without examples, with and without them.

    python3 research/bench_generated_tests.py [--stub readme|run_length] [--no-prefill] [--out FILE.json]

Loads the engine once (a warm solve), then alternates solves of a stub without examples (the
model writes tests for it by default) with and without ``generate_tests`` (default settings
otherwise: n = 8, seed 0, prefilled stubs unless ``--no-prefill``), so that both see the same
machine state. ``readme`` is the README's stub, examples/max_of_list.py, with its doctests
removed (issue 32's measurement); ``run_length`` is examples/run_length.py, a docstring that
never had examples. Reports per round and as medians: wall seconds, seconds sampling the candidates, writing
the tests and running the candidates on them, the tests kept and the answers it took, the
ranker, and the ratio with / without.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bcoder.core.settings import SamplingSettings
from bcoder.pipeline.engine import Engine
from bcoder.pipeline.settings import SolveSettings
from bcoder.pipeline.solve import solve
from bcoder.problems.load import load_problem

ROOT = Path(__file__).resolve().parents[1]


def stub(name: str, folder: Path) -> Path:
    """The stub file to solve: examples/run_length.py, or the README's stub without its
    doctests (every ``>>>`` line and the expected output line after it)."""
    if name == "run_length":
        return ROOT / "examples" / "run_length.py"
    text = (ROOT / "examples" / "max_of_list.py").read_text()
    text = re.sub(r"\n\s*>>> [^\n]*\n\s*[^\n]*(?=\n)", "", text)
    path = folder / "max_of_list.py"
    path.write_text(text)
    assert ">>>" not in text, text
    return path


def one(engine: Engine, settings: SolveSettings, path: Path, tests: bool) -> dict:
    problem = load_problem(str(path))
    engine.written_tests.clear()  # the engine keeps the tests it wrote: measure writing them
    t0 = time.perf_counter()
    result = solve(problem, engine, replace(settings, generate_tests=tests))
    wall = time.perf_counter() - t0
    generated = result.generated
    return {
        "generated_tests": tests,
        "wall_s": round(wall, 2),
        "generate_s": round(result.timings.get("generate", 0.0), 2),
        "write_tests_s": round(result.timings.get("write_tests", 0.0), 2),
        "run_tests_s": round(result.timings.get("run_generated", 0.0), 2),
        "tests": len(generated.asserts) if generated else 0,
        "answers": generated.samples if generated else 0,
        "ranker": result.ranker,
        "asserts": list(generated.asserts) if generated else [],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--backend", default="llama.cpp")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stub", choices=("readme", "run_length"), default="readme")
    ap.add_argument("--no-prefill", dest="prefill", action="store_false")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    engine = Engine.load(args.model, backend=args.backend, threads=args.threads)
    settings = SolveSettings(
        model=args.model, sampling=SamplingSettings(n=8, seed=0), prefill=args.prefill
    )
    path = stub(args.stub, Path(tempfile.mkdtemp()))
    print(path.read_text(), flush=True)
    one(engine, settings, path, False)  # warm-up: first-call costs are nobody's
    rounds = []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        rounds += [one(engine, settings, path, t) for t in order]
        print(json.dumps(rounds[-2:]), flush=True)
    summary = {}
    for key in ("wall_s", "generate_s", "write_tests_s", "run_tests_s"):
        without = statistics.median(x[key] for x in rounds if not x["generated_tests"])
        with_ = statistics.median(x[key] for x in rounds if x["generated_tests"])
        ratio = round(with_ / without, 2) if without else None
        summary[key] = {"without": round(without, 2), "with": round(with_, 2), "ratio": ratio}
    out = {
        "model": args.model,
        "backend": engine.backend.name,
        "threads": args.threads,
        "prefill": args.prefill,
        "stub": args.stub,
        "rounds": rounds,
        "median": summary,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
