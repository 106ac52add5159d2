"""Prefill against today's prompt: `solve` of the README stub, both ways, in one process.

    python3 research/bench_prefill.py                          # llama.cpp, 3 rounds
    python3 research/bench_prefill.py --backend transformers --rounds 2
    python3 research/bench_prefill.py --out docs/bench/prefill-llama.json

Loads the engine once (a warm solve, as the README times it), then alternates solves of
examples/max_of_list.py without and with ``prefill`` (default settings otherwise: n = 8, seed 0,
tests run), so that both see the same machine state. Reports per round and as medians: wall
seconds of the solve, seconds sampling, tokens sampled (every row, duplicates included), the
longest row (a batch ends with it), candidates passing the docstring's examples, and the ratio
without / with.
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


def one(engine: Engine, settings: SolveSettings, prefill: bool) -> dict:
    problem = load_problem(str(ROOT / "examples" / "max_of_list.py"))
    t0 = time.perf_counter()
    result = solve(problem, engine, replace(settings, prefill=prefill))
    wall = time.perf_counter() - t0
    rows = [len(c.tokens) for c in result.candidates for _ in range(c.count)]
    return {
        "prefill": prefill,
        "wall_s": round(wall, 2),
        "generate_s": round(result.timings.get("generate", 0.0), 2),
        "tokens": sum(rows),
        "longest_row": max(rows),
        "distinct": len(result.candidates),
        "passing": sum(c.count for c in result.candidates if c.outcome == "pass"),
        "best_passes": result.candidates[0].outcome == "pass",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--backend", default="llama.cpp")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    engine = Engine.load(args.model, backend=args.backend, threads=args.threads)
    settings = SolveSettings(model=args.model, sampling=SamplingSettings(n=8, seed=0))
    one(engine, settings, False)  # warm-up: first-call costs are nobody's
    rounds = []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        rounds += [one(engine, settings, p) for p in order]
        print(json.dumps(rounds[-2:]), flush=True)
    summary = {}
    for key in ("wall_s", "generate_s", "tokens", "longest_row"):
        before = statistics.median(x[key] for x in rounds if not x["prefill"])
        after = statistics.median(x[key] for x in rounds if x["prefill"])
        summary[key] = {"without": before, "with": after, "ratio": round(before / after, 2)}
    out = {
        "model": args.model,
        "backend": engine.backend.name,
        "threads": args.threads,
        "rounds": rounds,
        "median": summary,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
