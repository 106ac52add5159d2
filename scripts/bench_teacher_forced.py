"""Teacher-forced scoring on transformers: a shared prompt evaluated once against once a row.

    python3 scripts/bench_teacher_forced.py                    # the default model, 8 programs
    python3 scripts/bench_teacher_forced.py --model smollm2-135m --repeats 5

Scores the 8 candidates of one MBPP test problem (train/runs/eval-init, prompted as the default
checkpoint prompts) with ``bcoder.scoring.score_tokens`` -- what ``bcoder rank``, eval's scoring
and featurize run -- twice per repeat, interleaved: as shipped (the prompt once, its KV cache
repeated for the programs) and with the shared-prompt path turned off (the prompt re-read by every
row, the pass before). Prints the median seconds of each, their ratio and the largest difference
between the two passes' per-token values.
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

    import bcoder.model
    from bcoder.problems import load_problems
    from bcoder.scoring import score_tokens
    from bcoder.solve import Engine

    torch.set_num_threads(args.threads)
    engine = Engine.load(args.model, backend="transformers")
    (path,) = (ROOT / "train/runs/eval-init/problems").glob(args.problem + "-*.json.gz")
    with gzip.open(path) as f:
        record = json.loads(f.read())
    (problem,) = load_problems("mbpp", split="test", ids=[record["problem_id"]])
    _, _, prompt = engine.prompt(problem)
    fence = "```python\n{}```"  # the candidates' text, in this model's tokens
    programs = [engine.tokenizer(fence.format(c["code"])).input_ids for c in record["candidates"]]
    tokens = sum(map(len, programs))
    qmodel = engine.backend.qmodel
    shared_check = bcoder.model._one_prompt

    def run(shared: bool):
        bcoder.model._one_prompt = shared_check if shared else (lambda batch: False)
        t0 = time.perf_counter()
        out = score_tokens(qmodel, [prompt] * len(programs), programs, engine.pad_id)
        return time.perf_counter() - t0, out

    times: dict[bool, list[float]] = {True: [], False: []}
    outs = {}
    run(True)  # warm-up
    for _ in range(args.repeats):
        for shared in (False, True):
            dt, outs[shared] = run(shared)
            times[shared].append(dt)
    diff = max(
        float((a.logprob - b.logprob).abs().max())
        for a, b in zip(outs[True], outs[False], strict=True)
    )
    per_row, once = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.model} ({engine.info.get('dtype')}), {len(programs)} programs, {tokens} "
          f"program tokens, prompt {len(prompt)} tokens, {args.threads} threads")  # fmt: skip
    print(f"  prompt once a row: {per_row:.2f} s ({tokens / per_row:.0f} tok/s)")
    print(f"  prompt once:       {once:.2f} s ({tokens / once:.0f} tok/s)")
    print(f"  speed-up {per_row / once:.2f}x; largest log-prob difference {diff:.2g}")


if __name__ == "__main__":
    main()
