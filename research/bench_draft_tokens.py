"""Would prompt-lookup speculative decoding pay on this CPU? The cost of k tokens per row.

    python3 research/bench_draft_tokens.py [--rows 8] [--out docs/bench/draft-tokens-avx2.json]

Speculative decoding feeds each row its sampled token plus k-1 drafted ones in one
``llama_decode`` and keeps the accepted prefix: it pays when a decode of k tokens per row costs
much less than k decodes of one. This loads the default model on llama.cpp, copies one prompt to
``--rows`` sequences (as sampling does) and times decodes of k = 1, 2, 4, 8 tokens per row with
logits and hidden states for every token (what verification and in-loop scoring need), in
alternating rounds. Reports milliseconds per token and per decode, and the best possible gain
(every draft accepted): ms/token at k = 1 over ms/token at k.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bcoder.pipeline.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
KS = (1, 2, 4, 8)


def one(lm, prompt: list[int], rows: int, k: int, tokens_per_row: int = 24) -> float:
    """Seconds per token of decoding ``tokens_per_row`` tokens per row, k at a time."""
    lm.context(rows, len(prompt) + tokens_per_row + 8)
    lm.feed([(prompt, 0, 0, False)], False, lambda *a: None)
    for seq in range(1, rows):
        lm.copy_seq(0, seq)
    pos, steps = len(prompt), tokens_per_row // k
    t0 = time.perf_counter()
    for _ in range(steps):
        lm.decode([(100 + j, s, pos + j, True) for s in range(rows) for j in range(k)], True)
        pos += k
    return (time.perf_counter() - t0) / (steps * rows * k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    engine = Engine.load("qwen2.5-coder-1.5b", backend="llama.cpp", threads=args.threads)
    lm = engine.backend.lm
    prompt = list(engine.tokenizer((ROOT / "examples" / "max_of_list.py").read_text()).input_ids)
    one(lm, prompt, args.rows, 1, 4)  # warm-up
    times: dict[int, list[float]] = {k: [] for k in KS}
    for r in range(args.rounds):
        for k in KS if r % 2 == 0 else KS[::-1]:
            times[k].append(one(lm, prompt, args.rows, k))
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    out = {
        "model": "qwen2.5-coder-1.5b",
        "backend": "llama.cpp",
        "threads": lm.threads,
        "rows": args.rows,
        "ms_per_token": {k: round(v, 1) for k, v in ms.items()},
        "ms_per_decode": {k: round(v * args.rows * k, 1) for k, v in ms.items()},
        "best_gain": {k: round(ms[1] / v, 2) for k, v in ms.items()},
    }
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
