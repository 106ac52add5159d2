"""What writing tests costs a solve: `solve` of a stub without examples, with and without them.

    python3 research/bench_generated_tests.py [--prefill] [--out docs/bench/generated-tests-llama-avx2.json]

Loads the engine once (a warm solve), then alternates solves of examples/run_length.py (a
docstring, no examples: the model writes tests by default) with and without
``generate_tests`` (default settings otherwise: n = 8, seed 0), so that both see the same machine
state. Reports per round and as medians: wall seconds, seconds sampling the candidates, writing
the tests and running the candidates on them, the tests kept and the answers it took, the
ranker, and the ratio with / without.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from bcoder.core.settings import SamplingSettings
from bcoder.pipeline.engine import Engine
from bcoder.pipeline.settings import SolveSettings
from bcoder.pipeline.solve import solve
from bcoder.problems.load import load_problem

ROOT = Path(__file__).resolve().parents[1]


def one(engine: Engine, settings: SolveSettings, tests: bool) -> dict:
    problem = load_problem(str(ROOT / "examples" / "run_length.py"))
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
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--backend", default="llama.cpp")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    engine = Engine.load(args.model, backend=args.backend, threads=args.threads)
    settings = SolveSettings(
        model=args.model, sampling=SamplingSettings(n=8, seed=0), prefill=args.prefill
    )
    one(engine, settings, False)  # warm-up: first-call costs are nobody's
    rounds = []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        rounds += [one(engine, settings, t) for t in order]
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
        "rounds": rounds,
        "median": summary,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
