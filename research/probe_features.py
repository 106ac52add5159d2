"""Per-program features of the checkpoint LM for ranker experiments (issue 14).

    python3 research/probe_features.py train  --out /work/runs/probe/train
    python3 research/probe_features.py test   --out /work/runs/probe/test

train: every program of the shipped run's collection (results/runs/qwen2.5-coder-1.5b-lmhead);
test: every candidate of results/runs/eval-init (MBPP test, 8 samples a problem), prompted as the
shipped checkpoint prompts. One teacher-forced bf16/fp32 pass per problem: the prompt once (KV
cache), then its programs. Per program: the last hidden state after the final token (s_T), the
mean hidden state over s_0..s_{T-1}, and the checkpoint's per-token log-probabilities and
advantages. One .npz per problem in --out; a rerun skips the problems done.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "runs" / "qwen2.5-coder-1.5b-lmhead"
CKPT = ROOT / "bcoder" / "checkpoints" / "qwen2.5-coder-1.5b-lmhead"


def train_groups():
    from datasets import load_from_disk

    groups: dict[str, dict] = {}
    for shard in sorted((RUN / "data" / "collect").glob("shard-*/")):
        d = load_from_disk(str(shard))
        for r in d:
            g = groups.setdefault(r["problem_id"], {"prompt": r["prompt_ids"], "programs": []})
            assert g["prompt"] == r["prompt_ids"]
            g["programs"].append(
                {
                    "actions": r["action_ids"],
                    "source": r["source"],
                    "outcome": r["outcome"],
                    "reward": r["reward"],
                    "count": r["count"],
                    "passed_examples": None,
                }
            )
    return groups


def read_gz(path: Path) -> dict:
    with gzip.open(path) as f:
        return json.loads(f.read())


def test_groups(engine):
    from bcoder.problems.load import load_problems

    ids = []
    for f in sorted((ROOT / "results/runs/eval-init/problems").glob("*.json.gz")):
        ids.append(read_gz(f)["problem_id"])
    problems = {p.id: p for p in load_problems("mbpp", split="test", ids=ids)}
    groups = {}
    for f in sorted((ROOT / "results/runs/eval-init/problems").glob("*.json.gz")):
        d = read_gz(f)
        _, _, prompt = engine.prompt(problems[d["problem_id"]])
        progs = [
            {
                "actions": c["tokens"]["id"],
                "source": "sample",
                "outcome": c["outcome"],
                "reward": c["true_reward"],
                "count": c["count"],
                "passed_examples": c["passed_examples"],
            }
            for c in d["candidates"]
        ]
        groups[d["problem_id"]] = {"prompt": prompt, "programs": progs}
    return groups


@torch.inference_mode()
def run_group(lm, prompt: list[int], programs: list[list[int]], alpha: float, batch: int = 8):
    out = []
    body = lm.model
    ids = torch.tensor([prompt])
    pre = body(input_ids=ids, use_cache=True)
    h0 = pre.last_hidden_state[0, -1]  # s_0
    P = len(prompt)
    for start in range(0, len(programs), batch):
        rows = programs[start : start + batch]
        B, T = len(rows), max(len(a) for a in rows)
        acts = torch.zeros((B, T), dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        for i, a in enumerate(rows):
            acts[i, : len(a)] = torch.tensor(a)
            mask[i, : len(a)] = 1
        import copy

        cache = copy.deepcopy(pre.past_key_values)
        cache.batch_repeat_interleave(B)
        attn = torch.cat([torch.ones((B, P), dtype=torch.long), mask], dim=1)
        pos = torch.arange(P, P + T)[None].expand(B, -1)
        o = body(input_ids=acts, attention_mask=attn, position_ids=pos, past_key_values=cache,
                 use_cache=False)  # fmt: skip
        h = o.last_hidden_state  # (B, T, H): state after a_t = s_{t+1}
        states = torch.cat([h0[None, None].expand(B, 1, -1), h[:, :-1]], dim=1)  # s_0..s_{T-1}
        logits = lm.lm_head(states).float()  # (B, T, V)
        lse = logits.logsumexp(-1)
        taken = logits.gather(-1, acts[..., None])[..., 0]
        best = logits.max(-1).values
        for i, a in enumerate(rows):
            n = len(a)
            out.append(
                {
                    "h_last": h[i, n - 1].float().numpy(),
                    "h_mean": states[i, :n].float().mean(0).numpy(),
                    "logprob": (taken[i, :n] - lse[i, :n]).numpy(),
                    "adv": (alpha * (taken[i, :n] - best[i, :n])).numpy(),
                }
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["train", "test"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from bcoder.pipeline.engine import Engine

    torch.set_num_threads(args.threads)
    engine = Engine.load("qwen2.5-coder-1.5b", str(CKPT), backend="transformers")
    lm = engine.backend.qmodel.lm
    alpha = engine.backend.qmodel.config.alpha
    groups = train_groups() if args.which == "train" else test_groups(engine)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, tokens = time.perf_counter(), 0
    for k, (pid, g) in enumerate(sorted(groups.items())):
        path = out / (pid.replace("/", "_") + ".npz")
        if path.exists():
            continue
        progs = g["programs"]
        res = run_group(lm, g["prompt"], [p["actions"] for p in progs], alpha)
        meta = [{k2: v for k2, v in p.items() if k2 != "actions"} for p in progs]
        arrays = {
            "h_last": np.stack([r["h_last"] for r in res]).astype(np.float16),
            "h_mean": np.stack([r["h_mean"] for r in res]).astype(np.float16),
        }
        lens = np.array([len(r["logprob"]) for r in res])
        arrays["lens"] = lens
        arrays["logprob"] = np.concatenate([r["logprob"] for r in res])
        arrays["adv"] = np.concatenate([r["adv"] for r in res])
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, meta=json.dumps(meta), **arrays)
        tmp.rename(path)
        tokens += int(lens.sum())
        dt = time.perf_counter() - t0
        print(f"{k + 1}/{len(groups)} {pid}: {tokens} tokens, {tokens / dt:.0f} tok/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
