"""Teacher-forced scoring on transformers: a shared prompt evaluated once, batches cut by length.

    python3 research/bench_teacher_forced.py                    # the default model, 8 programs
    python3 research/bench_teacher_forced.py --model smollm2-135m --repeats 5

Scores the 8 candidates of one MBPP test problem (results/runs/eval-init, prompted as the default
checkpoint prompts) with ``bcoder.qmodel.scores.score_tokens`` -- what ``bcoder rank`` and eval's
scoring run -- three ways per repeat, interleaved: the prompt re-read by every row in plain
batches of 8 by length (the pass before 2026-12-06); the prompt once a batch (its KV cache
repeated) in the same batches; and as shipped, the prompt once a batch with the batches cut by
length (``length_batches``). Prints the median seconds of each, its speed-up over the first, and
the largest difference of its per-token log-probs from the first's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--problem", default="mbpp_101")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import bcoder.qmodel.model
    import bcoder.qmodel.scores
    from bcoder.pipeline.engine import Engine
    from bcoder.problems.load import load_problems

    torch.set_num_threads(args.threads)
    engine = Engine.load(args.model, "none", backend="transformers")
    (path,) = (ROOT / "results/runs/eval-init/problems").glob(args.problem + "-*.json.gz")
    with gzip.open(path) as f:
        record = json.loads(f.read())
    (problem,) = load_problems("mbpp", split="test", ids=[record["problem_id"]])
    _, _, prompt = engine.prompt(problem)
    fence = "```python\n{}```"  # the candidates' text, in this model's tokens
    programs = [engine.tokenizer(fence.format(c["code"])).input_ids for c in record["candidates"]]
    tokens = sum(map(len, programs))
    qmodel = engine.backend.qmodel
    shared_check, cuts = bcoder.qmodel.model._one_prompt, bcoder.decode.scoring.length_batches

    def plain(lengths, size, overhead):
        return cuts(lengths, size, 0)

    variants = {  # name: (shared prompt, length-aware cuts)
        "prompt once a row, batches of 8": (False, False),
        "prompt once a batch, batches of 8": (True, False),
        "prompt once a batch, cut by length (shipped)": (True, True),
    }

    def run(shared: bool, cut: bool):
        bcoder.qmodel.model._one_prompt = shared_check if shared else (lambda batch: False)
        bcoder.decode.scoring.length_batches = cuts if cut else plain
        t0 = time.perf_counter()
        out = bcoder.qmodel.scores.score_tokens(
            qmodel, [prompt] * len(programs), programs, engine.pad_id
        )
        return time.perf_counter() - t0, out

    times: dict[str, list[float]] = {name: [] for name in variants}
    outs = {}
    run(True, True)  # warm-up
    for _ in range(args.repeats):
        for name, how in variants.items():
            dt, outs[name] = run(*how)
            times[name].append(dt)
    print(f"{args.model} ({engine.info.get('dtype')}), {len(programs)} programs, {tokens} "
          f"program tokens, prompt {len(prompt)} tokens, {args.threads} threads")  # fmt: skip
    first = next(iter(variants))
    for name in variants:
        dt = statistics.median(times[name])
        diff = max(
            float((a.logprob - b.logprob).abs().max())
            for a, b in zip(outs[name], outs[first], strict=True)
        )
        print(
            f"  {name:45s} {dt:6.2f} s ({tokens / dt:4.0f} tok/s), "
            f"{statistics.median(times[first]) / dt:.2f}x; log-prob differs by <= {diff:.2g}"
        )


if __name__ == "__main__":
    main()
