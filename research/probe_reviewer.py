"""Reviewer log-likelihoods of programs for ranker experiments (issue 14).

    python3 research/probe_reviewer.py train --out /work/runs/reviewer/train [--limit N]
    python3 research/probe_reviewer.py report --out /work/runs/reviewer/train --probe /work/runs/probe/train

The "reviewer" direction of Coder-Reviewer reranking (Zhang et al., 2022): how likely the
checkpoint LM finds the problem's tests *after* reading a program, log p(tests | program), with
the program shown alone (no prompt). Every candidate of a problem is followed by the same test
text, so the sums compare across a problem's candidates. Only problems whose candidates both pass
and fail are scored (the others rank the same under every scorer). Programs and problems are
research/probe_features.py's: the shipped run's collection (train) and results/runs/eval-init (test).
One .npz per problem in --out with each program's per-token log-probabilities of the test text;
a rerun skips the problems done. ``report`` compares, on the problems scored, the top candidate
by mean log-prob (from research/probe_features.py's output), by the reviewer sum and by mixtures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from probe_features import test_groups, train_groups  # beside this file: run it as a script


def tests_text(problem) -> str:
    from bcoder.problems.prompts import format_tests, visible_tests

    return "\n\n# Tests\n" + format_tests(visible_tests(problem)) + "\n"


@torch.inference_mode()
def score(lm, pad: int, seqs: list[tuple[list[int], list[int]]], batch: int = 8) -> list:
    """Per-token log-probs of each (program, suffix) pair's suffix tokens."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    out: list = [None] * len(seqs)
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        T = max(len(seqs[i][0]) + len(seqs[i][1]) for i in rows)
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for r, i in enumerate(rows):
            full = seqs[i][0] + seqs[i][1]
            ids[r, : len(full)] = torch.tensor(full)
            mask[r, : len(full)] = 1
        logits = lm(input_ids=ids, attention_mask=mask).logits.float()
        logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
        for r, i in enumerate(rows):
            p, s = len(seqs[i][0]), len(seqs[i][1])
            out[i] = logp[r, p - 1 : p - 1 + s].numpy()
    return out


def report(out: Path, probe: str) -> None:
    from probe_rank import load

    features = {p["id"]: p for p in load(probe)}
    rows = []
    for f in sorted(out.glob("*.npz")):
        if not f.name.endswith(".tmp.npz"):
            p, z = features[f.stem], np.load(f)
            assert [m["outcome"] == "pass" for m in json.loads(str(z["meta"]))] == list(p["passed"])
            rows.append((p["scalars"][:, 0], p["scalars"][:, 1], z["review"].sum(1), p["passed"]))
    base = sum(y[np.argmax(mean)] for mean, _, _, y in rows)
    print(
        f"{len(rows)} problems with passing and failing samples; random {np.mean([y.mean() for *_, y in rows]):.3f}"
    )
    scorers = {"mean log-prob": lambda m, s, r: m, "reviewer sum": lambda m, s, r: r}
    for w in (0.02, 0.05, 0.1, 0.2, 0.5):
        scorers[f"mean log-prob + {w} reviewer"] = lambda m, s, r, w=w: m + w * r
    for w in (0.5, 1.0, 2.0):
        scorers[f"sum log-prob + {w} reviewer"] = lambda m, s, r, w=w: s + w * r
    for name, fn in scorers.items():
        wins = sum(y[np.argmax(fn(m, s, r))] for m, s, r, y in rows)
        print(
            f"{name:32s} top passes {wins / len(rows):.3f}  vs mean log-prob {wins - base:+.0f} problems"
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["train", "test", "report"])
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--probe", help="report: research/probe_features.py's output for the same problems"
    )
    ap.add_argument("--limit", type=int, default=0, help="score the first N mixed problems only")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.which == "report":
        report(Path(args.out), args.probe)
        return 0
    from probe_features import CKPT

    from bcoder.pipeline.engine import Engine
    from bcoder.problems.load import load_problems

    torch.set_num_threads(args.threads)
    engine = Engine.load("qwen2.5-coder-1.5b", str(CKPT), backend="transformers")
    lm, tok = engine.backend.qmodel.lm, engine.tokenizer
    groups = train_groups() if args.which == "train" else test_groups(engine)
    split = "train+validation+prompt" if args.which == "train" else "test"
    problems = {p.id: p for p in load_problems("mbpp", split=split, ids=list(groups))}
    mixed = sorted(
        pid
        for pid, g in groups.items()
        if len({p["outcome"] == "pass" for p in g["programs"] if p["source"] == "sample"}) == 2
    )
    if args.limit:
        mixed = mixed[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, tokens = time.perf_counter(), 0
    for k, pid in enumerate(mixed):
        path = out / (pid.replace("/", "_") + ".npz")
        if path.exists():
            continue
        progs = [p for p in groups[pid]["programs"] if p["source"] == "sample"]
        suffix = tok.encode(tests_text(problems[pid]), add_special_tokens=False)
        codes = [tok.decode(p["actions"], skip_special_tokens=True).rstrip() for p in progs]
        seqs = [(tok.encode(c, add_special_tokens=False) or [engine.pad_id], suffix) for c in codes]
        lps = score(lm, engine.pad_id, seqs)
        meta = [{k2: v for k2, v in p.items() if k2 != "actions"} for p in progs]
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, meta=json.dumps(meta), review=np.stack(lps))
        tmp.rename(path)
        tokens += sum(len(a) + len(b) for a, b in seqs)
        dt = time.perf_counter() - t0
        print(f"{k + 1}/{len(mixed)} {pid}: {tokens} tokens, {tokens / dt:.0f} tok/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
