"""Learned rankers on the checkpoint LM's per-program features (issue 14 experiment).

    python3 research/probe_rank.py --train /work/runs/probe/train [--test /work/runs/probe/test]

Reads research/probe_features.py's output. Cross-validates on the training problems (5 folds by
problem) and, with --test, fits on all of them and ranks MBPP test's candidates. Reports ranked
pass@1 of each learned ranker beside mean / sum log-prob, with paired bootstrap CIs of the
difference to mean log-prob.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def load(dirname: str, samples_only: bool = True) -> list[dict]:
    problems = []
    for f in sorted(Path(dirname).glob("*.npz")):
        z = np.load(f)
        meta = json.loads(str(z["meta"]))
        lens = z["lens"]
        cuts = np.cumsum(lens)[:-1]
        lp = np.split(z["logprob"], cuts)
        adv = np.split(z["adv"], cuts)
        keep = [i for i, m in enumerate(meta) if m["source"] == "sample" or not samples_only]
        if not keep:
            continue
        scal = np.array(
            [[lp[i].mean(), lp[i].sum(), lp[i].min(), np.log(lens[i]), adv[i].sum(),
              np.sort(lp[i])[: max(1, len(lp[i]) // 10)].mean()] for i in keep]
        )  # fmt: skip
        problems.append(
            {
                "id": f.stem,
                "h_last": z["h_last"][keep].astype(np.float32),
                "h_mean": z["h_mean"][keep].astype(np.float32),
                "scalars": scal,
                "passed": np.array([meta[i]["outcome"] == "pass" for i in keep], dtype=float),
                "examples": np.array([bool(meta[i].get("passed_examples")) for i in keep]),
                "count": np.array([meta[i]["count"] for i in keep], dtype=float),
            }
        )
    return problems


SCALARS = ["mean_lp", "sum_lp", "min_lp", "log_len", "sum_adv", "low10_lp"]


def design(p: dict, kind: str) -> np.ndarray:
    parts = []
    if "last" in kind:
        parts.append(p["h_last"])
    if "mean" in kind:
        parts.append(p["h_mean"])
    if "scal" in kind:
        parts.append(p["scalars"])
    return np.concatenate(parts, axis=1)


def fit(problems: list[dict], kind: str, loss: str, l2: float, steps: int = 300) -> tuple:
    X = np.concatenate([design(p, kind) for p in problems])
    mu, sd = X.mean(0), X.std(0) + 1e-6
    xs = [torch.tensor((design(p, kind) - mu) / sd, dtype=torch.float32) for p in problems]
    ys = [torch.tensor(p["passed"], dtype=torch.float32) for p in problems]
    base = [torch.tensor(p["scalars"][:, 0], dtype=torch.float32) for p in problems]
    w = torch.zeros(X.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")
    mixed = [i for i, y in enumerate(ys) if 0 < y.sum() < len(y)]

    def closure():
        opt.zero_grad()
        terms = []
        if loss == "listwise":
            for i in mixed:
                s = base[i] + xs[i] @ w  # a correction to mean log-prob
                terms.append(-(torch.logsumexp(s[ys[i] > 0], 0) - torch.logsumexp(s, 0)))
        elif loss == "pairwise":  # every (passing, failing) pair of a problem
            for i in mixed:
                s = xs[i] @ w
                d = s[ys[i] > 0][:, None] - s[ys[i] == 0][None, :]
                terms.append(torch.nn.functional.softplus(-d).mean())
        else:  # pointwise logistic
            for x, y in zip(xs, ys, strict=True):
                terms.append(
                    torch.nn.functional.binary_cross_entropy_with_logits(
                        x @ w + b, y, reduction="sum"
                    )
                )
        total = torch.stack(terms).sum() / max(1, len(terms)) + l2 * (w * w).sum()
        total.backward()
        return total

    opt.step(closure)
    w_, b_ = w.detach(), b.detach()

    def score(p: dict) -> np.ndarray:
        x = torch.tensor((design(p, kind) - mu) / sd, dtype=torch.float32)
        s = x @ w_ + (b_ if loss == "pointwise" else 0)
        if loss == "listwise":
            s = s + torch.tensor(p["scalars"][:, 0], dtype=torch.float32)
        return s.numpy()

    return score


def top1(p: dict, s: np.ndarray, examples_first: bool = False) -> float:
    """Pass of the top-scored candidate (ties: the mean over the tied)."""
    s = s.astype(float)
    if examples_first:
        s = s + 1e6 * p["examples"]
    best = s.max()
    tied = np.isclose(s, best, rtol=0, atol=1e-9)
    return float(p["passed"][tied].mean())


def bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    d = a - b
    idx = rng.integers(0, len(d), (n, len(d)))
    means = d[idx].mean(1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def cross_validate(train: list[dict], fold: np.ndarray, config: tuple, n: int = 0) -> np.ndarray:
    """Each problem's top-1 pass under ``config`` fitted on the other folds (their first ``n``
    problems, all when 0)."""
    out = np.zeros(len(train))
    for k in np.unique(fold):
        rest = [p for p, f in zip(train, fold, strict=True) if f != k]
        score = fit(rest[:n] if n else rest, *config)
        for i in np.flatnonzero(fold == k):
            out[i] = top1(train[i], score(train[i]))
    return out


CONFIGS = [
    ("last", "listwise", 1e-2),
    ("last", "listwise", 1e-3),
    ("last+mean", "listwise", 1e-2),
    ("last+mean", "listwise", 1e-3),
    ("scal", "listwise", 1e-3),
    ("last+scal", "listwise", 1e-2),
    ("last", "pointwise", 1e-2),
    ("last+mean+scal", "pointwise", 1e-2),
    ("last+mean+scal", "pointwise", 1e-1),
    ("scal", "pairwise", 1e-3),
    ("last+mean+scal", "pairwise", 1e-2),
    ("last+mean+scal", "pairwise", 1e-1),
    ("last+mean+scal", "pairwise", 3e-1),
    ("last+mean+scal", "pairwise", 1.0),
    ("last+mean", "pairwise", 1e-1),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--curve", type=lambda x: [int(v) for v in x.split(",")], default=[])
    args = ap.parse_args()
    train = load(args.train)
    print(f"train: {len(train)} problems, {sum(len(p['passed']) for p in train)} programs")
    rng = np.random.default_rng(0)
    fold = rng.permutation(len(train)) % args.folds
    base = {
        "mean-logprob": lambda p: p["scalars"][:, 0],
        "sum-logprob": lambda p: p["scalars"][:, 1],
        "upper": lambda p: p["passed"],
    }
    res: dict[str, np.ndarray] = {k: np.zeros(len(train)) for k in base}
    for name, f in base.items():
        res[name] = np.array([top1(p, f(p)) for p in train])
    for config in CONFIGS:
        name = "{}/{}/{:g}".format(*config)
        res[name] = out = cross_validate(train, fold, config)
        d = bootstrap(out, res["mean-logprob"])
        print(f"cv {name:32s} pass@1 {100 * out.mean():5.1f}  - mean-lp {100 * d[0]:+5.1f} "
              f"[{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]", flush=True)  # fmt: skip
    for name in base:
        print(f"cv {name:32s} pass@1 {100 * res[name].mean():5.1f}")
    best = max(CONFIGS, key=lambda c: res[f"{c[0]}/{c[1]}/{c[2]:g}"].mean())
    print(f"best in cross-validation: {best}")
    for n in args.curve:  # the best config trained on fewer problems: does more data help?
        out = cross_validate(train, fold, best, n)
        d = bootstrap(out, res["mean-logprob"])
        used = min(n, int((fold != fold.max()).sum()))  # the last fold's
        print(f"curve: {used} training problems: pass@1 {100 * out.mean():5.1f} - mean-lp "
              f"{100 * d[0]:+5.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]", flush=True)  # fmt: skip
    if not args.test:
        return
    test = load(args.test)
    print(f"test: {len(test)} problems")
    tres = {n: np.array([top1(p, f(p)) for p in test]) for n, f in base.items()}
    tex = {n: np.array([top1(p, f(p), True) for p in test]) for n, f in base.items()}
    for kind, loss, l2 in CONFIGS:
        name = f"{kind}/{loss}/{l2:g}"
        score = fit(train, kind, loss, l2)
        tres[name] = np.array([top1(p, score(p)) for p in test])
        tex[name] = np.array([top1(p, score(p), True) for p in test])
    for name in tres:
        d = bootstrap(tres[name], tres["mean-logprob"])
        e = bootstrap(tex[name], tex["mean-logprob"])
        print(f"test {name:32s} pass@1 {100 * tres[name].mean():5.1f} (- mean-lp "
              f"{100 * d[0]:+5.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]); examples first "
              f"{100 * tex[name].mean():5.1f} ({100 * e[0]:+5.1f} [{100 * e[1]:+.1f}, "
              f"{100 * e[2]:+.1f}])")  # fmt: skip


if __name__ == "__main__":
    main()
