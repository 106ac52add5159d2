"""Both inference backends side by side, in one process, on the same prompt and machine.

    python3 research/bench_backends.py                        # the default model, warm cache
    python3 research/bench_backends.py --first-run            # also: load with empty caches
    python3 research/bench_backends.py --model smollm2-135m --ns 1,8 --out bench.json

For each backend (llama.cpp on the GGUF file; transformers on the same file, dequantized, in the
dtype it picks here):
- sampling: aggregate tokens/s for n = 1, 8, 16 rows from the README example's prompt (one prompt
  evaluation shared by the rows; temperature 0.6, top-p 0.95, seed 0; stops as solve stops);
- teacher-forced scoring tokens/s of the 8 programs sampled at n = 8 (what `bcoder rank` does);
- `bcoder solve examples/max_of_list.py` (n = 8) with the tests off: its generate + score time;
- load time: warm (every cache filled) and, with --first-run, as a new user's first run (no
  converted copy, no tokenizer cache; the model file itself is already downloaded).
The backends run one after the other, in the order given, each on a quiet process state; the
ratios are llama.cpp over transformers. Absolute figures vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(backend: str, args: argparse.Namespace) -> dict:
    from bcoder.core.settings import SamplingSettings
    from bcoder.decode.sampling import sample
    from bcoder.pipeline.engine import Engine
    from bcoder.pipeline.settings import SolveSettings
    from bcoder.pipeline.solve import solve
    from bcoder.problems.load import load_problem

    problem = load_problem(str(ROOT / "examples" / "max_of_list.py"))
    out: dict = {"backend": backend}
    t0 = time.perf_counter()
    engine = Engine.load(  # no trained heads: the backends themselves are measured
        args.model, "none", backend=backend, threads=args.threads, dtype=args.dtype
    )
    out["load_warm_s"] = time.perf_counter() - t0
    out["dtype"] = engine.info.get("dtype")
    family, _, prompt_ids = engine.prompt(problem)
    out["prompt_tokens"] = len(prompt_ids)
    options = engine.options(SamplingSettings(max_new_tokens=args.max_new_tokens), family)
    programs: list[list[int]] = []
    for n in args.ns:
        t0 = time.perf_counter()
        gens = list(sample(engine.backend, prompt_ids, n, options, engine.pad_id, batch_size=n))
        dt = time.perf_counter() - t0
        tokens = sum(len(g.action_ids) for g in gens)
        out[f"sample_n{n}"] = {"tokens": tokens, "seconds": dt, "tok_s": tokens / dt}
        print(f"  {backend}: n={n}: {tokens} tokens in {dt:.1f} s = {tokens / dt:.1f} tok/s")
        if n == 8 or not programs:
            programs = [g.action_ids for g in gens]
    t0 = time.perf_counter()
    engine.backend.score([prompt_ids] * len(programs), programs, engine.pad_id, batch_size=8)
    dt = time.perf_counter() - t0
    tokens = sum(len(a) for a in programs)
    out["score"] = {
        "programs": len(programs),
        "tokens": tokens,
        "seconds": dt,
        "tok_s": tokens / dt,
    }
    print(f"  {backend}: scoring {len(programs)} programs: {tokens / dt:.1f} tok/s ({dt:.1f} s)")
    settings = SolveSettings(model=args.model, checkpoint="none", run_tests=False, backend=backend)
    t0 = time.perf_counter()
    result = solve(problem, engine, settings)
    wall = time.perf_counter() - t0
    out["solve"] = {
        "wall_s": wall,
        "generate_s": result.timings["generate"],
        "score_s": result.timings["score"],
        "tokens": sum(len(c.tokens) * c.count for c in result.candidates),
    }
    print(f"  {backend}: solve n=8: {wall:.1f} s (generate {result.timings['generate']:.1f} s)")
    engine.backend.close()
    return out


def first_run(backend: str, args: argparse.Namespace) -> float:
    """Seconds to load as on a first run: a fresh cache holding only the downloaded model file."""
    from bcoder.models.sources import artifact_path, ensure_local, resolve_source

    source = resolve_source(args.model)
    local = ensure_local(source)
    with tempfile.TemporaryDirectory() as tmp:
        env_before = os.environ.get("BCODER_CACHE")
        os.environ["BCODER_CACHE"] = tmp
        try:
            if source.artifact is not None:
                dest = artifact_path(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(local, dest)
                shutil.copystat(local, dest, follow_symlinks=False)
            from bcoder.pipeline.engine import Engine

            t0 = time.perf_counter()
            engine = Engine.load(args.model, "none", backend=backend, threads=args.threads)
            seconds = time.perf_counter() - t0
            engine.backend.close()
        finally:
            if env_before is None:
                os.environ.pop("BCODER_CACHE", None)
            else:
                os.environ["BCODER_CACHE"] = env_before
    print(f"  {backend}: first-run load {seconds:.1f} s")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--backends", default="llama.cpp,transformers")
    ap.add_argument("--ns", default="1,8,16", help="rows sampled at once")
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="0: the idle cores")
    ap.add_argument("--dtype", default=None, help="transformers dtype (default: its choice)")
    ap.add_argument("--first-run", action="store_true", help="also time a first-run load")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    args.ns = [int(x) for x in args.ns.split(",")]
    import torch

    from bcoder.models.hardware import cpu_threads

    args.threads = args.threads or cpu_threads()
    torch.set_num_threads(args.threads)
    results: dict = {
        "model": args.model,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "backends": {},
    }
    for backend in args.backends.split(","):
        print(f"{backend}:", flush=True)
        results["backends"][backend] = measure(backend, args)
        if args.first_run:
            results["backends"][backend]["load_first_run_s"] = first_run(backend, args)
    results["load_after"] = os.getloadavg()[0]
    b = results["backends"]
    if "llama.cpp" in b and "transformers" in b:
        fast, slow = b["llama.cpp"], b["transformers"]
        ratios = {f"sample_n{n}": fast[f"sample_n{n}"]["tok_s"] / slow[f"sample_n{n}"]["tok_s"]
                  for n in args.ns}  # fmt: skip
        ratios["score"] = fast["score"]["tok_s"] / slow["score"]["tok_s"]
        gen_score = [x["solve"]["generate_s"] + x["solve"]["score_s"] for x in (slow, fast)]
        ratios["solve_generate_plus_score"] = gen_score[0] / gen_score[1]
        results["ratios"] = ratios
        print("ratios (llama.cpp over transformers):")
        for k, v in ratios.items():
            print(f"  {k}: {v:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
