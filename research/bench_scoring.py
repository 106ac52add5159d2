"""Wall-time overhead of scoring while sampling, against plain sampling of the same candidates.

    python3 research/bench_scoring.py                          # a tiny random model built here
    python3 research/bench_scoring.py --model smollm2-135m     # a preset (when cached)
    python3 research/bench_scoring.py --model qwen2.5-coder-1.5b -n 8 --max-new-tokens 128

Three timings of n candidates of max_new_tokens tokens each (EOS is ignored so every run decodes
exactly the same number of tokens, from the same seed, hence the same tokens):

- plain:   bcoder's decode loop without any value bookkeeping, then the completions' text;
- scored:  the same loop recording A, V, log-prob and the preferred token per step (head mode),
           then full Candidates with per-token Q, V, A, r~ and R~ (what ``bcoder solve`` does);
- 2-pass:  plain, then one batched scoring forward ``qmodel(batch)`` (lora / full mode's cost);
- and HF ``generate`` sampling the same shapes, as a reference for the plain loop's speed.

The figure of merit is scored / plain (the paper's sampler was 1.7-2.0x; the aim is < 1.15x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="tiny", help="'tiny' (built here) or any model source")
    ap.add_argument("-n", type=int, default=8, help="candidates")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each (median shown)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-hf", action="store_true", help="skip the HF generate reference")
    args = ap.parse_args()

    import torch

    from bcoder.core.spec import Problem
    from bcoder.decode.sampling import DecodeOptions, sample
    from bcoder.decode.scoring import make_candidate
    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel
    from bcoder.qmodel.scores import score_tokens

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "tiny":  # the test suite's tiny model (tests/support/tiny.py)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from support.tiny import tiny_causal_lm, tiny_tokenizer

        tokenizer = tiny_tokenizer()
        base = tiny_causal_lm(tokenizer, hidden_size=64, layers=2)
        info = {"name": "tiny (2-layer Llama, hidden 64)", "dtype": "float32", "device": "cpu"}
    else:
        from bcoder.models.loading import load_model_and_tokenizer

        base, tokenizer, info = load_model_and_tokenizer(args.model, allow_download=False)
    qmodel = BCoderModel(base, QConfig(mode="head")).to(next(base.parameters()).device).eval()
    problem = Problem(
        id="bench",
        source="text",
        text="Write a function that returns the sum of the squares of the even numbers in a list.",
        entry_point="sum_even_squares",
    )
    from bcoder.problems.prompts import build_prompt, prompt_family

    family = prompt_family(problem, tokenizer)
    prompt_ids = tokenizer(
        build_prompt(problem, family, tokenizer), add_special_tokens=False
    ).input_ids
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gamma = qmodel.config.gamma

    def options(score: bool) -> DecodeOptions:
        return DecodeOptions(
            temperature=0.6,
            top_p=0.95,
            max_new_tokens=args.max_new_tokens,
            eos_ids=(),
            fence=None,
            score=score,
        )

    def gens(score: bool):
        out = sample(
            qmodel, prompt_ids, args.n, options(score), pad, batch_size=args.batch_size, seed=0
        )
        return sorted(out, key=lambda g: g.index)

    def plain():
        g = gens(False)
        texts = [tokenizer.decode(x.action_ids, skip_special_tokens=True) for x in g]
        return g, texts

    def scored():
        g = gens(True)
        return g, [make_candidate(tokenizer, x.action_ids, x.scores, gamma, code="") for x in g]

    def two_pass():
        g, _ = plain()
        s = score_tokens(
            qmodel,
            [x.prompt_ids for x in g],
            [x.action_ids for x in g],
            pad,
            batch_size=args.batch_size,
        )
        return g, [
            make_candidate(tokenizer, x.action_ids, sc, gamma, code="")
            for x, sc in zip(g, s, strict=True)
        ]

    def hf_generate():
        ids = torch.tensor([prompt_ids], device=next(base.parameters()).device)
        with torch.inference_mode():
            for start in range(0, args.n, args.batch_size):
                rows = min(args.batch_size, args.n - start)
                base.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    temperature=0.6,
                    top_p=0.95,
                    max_new_tokens=args.max_new_tokens,
                    min_new_tokens=args.max_new_tokens,
                    num_return_sequences=rows,
                    pad_token_id=pad,
                )

    runs = {"plain": plain, "scored": scored, "2-pass": two_pass}
    if not args.no_hf:
        runs["hf generate"] = hf_generate
    t0 = time.perf_counter()
    plain()  # warm-up (allocations, lazy imports)
    print(f"  (warm-up: {time.perf_counter() - t0:.2f} s)", file=sys.stderr, flush=True)
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved, so a noisy neighbour hits every variant alike
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            print(
                f"  ({name}: {wall[name][-1]:.2f} s wall, {cpu[name][-1]:.2f} s cpu)",
                file=sys.stderr,
                flush=True,
            )
    same = [g.action_ids for g in plain()[0]] == [g.action_ids for g in scored()[0]]
    tokens = args.n * args.max_new_tokens
    print(
        f"model {info.get('name', args.model)}  dtype {info.get('dtype')}  device "
        f"{info.get('device')}  torch threads {torch.get_num_threads()}"
    )
    print(
        f"{args.n} candidates x {args.max_new_tokens} tokens, batch {args.batch_size}, "
        f"prompt {len(prompt_ids)} tokens, median of {args.repeats}; same tokens: {same}"
    )
    med = {k: statistics.median(v) for k, v in wall.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    for name, t in med.items():
        print(
            f"  {name:<12} wall {t:8.2f} s ({min(wall[name]):.2f}-{max(wall[name]):.2f})  "
            f"{tokens / t:7.1f} tok/s  {t / med['plain']:.3f}x plain   "
            f"cpu {mcpu[name]:8.2f} s  {mcpu[name] / mcpu['plain']:.3f}x plain"
        )
    # On a busy shared machine wall time mostly measures the neighbours; process CPU time (with
    # --threads 1 it equals the wall time of an idle machine) is the steadier figure.
    print(
        f"scoring overhead (scored / plain): wall {med['scored'] / med['plain']:.3f}x, "
        f"cpu {mcpu['scored'] / mcpu['plain']:.3f}x (medians)"
    )


if __name__ == "__main__":
    main()
