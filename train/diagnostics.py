"""Is training healthy? Figures computed at every evaluation and at the end of each stage.

On held-out problems (never trained on):

- ``heldout/td``: the TD error as the stage's loss sees it (no gradient): ground-truth programs
  weigh ``rho_real``, sampled ones ``1 - rho_real`` (count-weighted) -- should fall.
  ``heldout/td_sampled`` is the TD error over the sampled programs alone, as they were sampled.
- ``heldout/value_saturated_frac``: the fraction of states whose V sits at the cap R_max (within
  0.01). A value head stuck at u = 0 (no gradient: softabs'(0) = 0) shows up as ~1.0.
- ``heldout/argmax_agreement``: how often the learned policy's argmax equals the checkpoint's
  (1.0 by construction in the phi-stage and in head mode; falls as lora/full theta learns).
- ``heldout/R~/<outcome>``: the mean recovered reward R~ = sum_t (Q(s_t, a_t) - gamma V(s_{t+1}))
  of the held-out *generated* programs of each true outcome (count-weighted, as they were
  sampled; ground truths, which the model did not write, are ``heldout/R~/ground_truth``), with
  ``heldout/n/<outcome>``; ``heldout/R~_ordered`` is 1.0 when correct programs score highest and
  compile errors lowest (the paper's Figure 3), else 0.0.
- ``heldout/nll_change/<outcome>`` (lmhead theta): how much the trained policy's -log pi per
  token moved from the checkpoint's on those programs (nats; exact on the taken tokens up to the
  normaliser's approximation, bcoder.qmodel.adapter). A policy that learned from the rewards lowers it
  on passing programs and raises it on failing ones; equal changes mean it only drifted.

``train/td`` (and ``train/td_sampled``) is the same on a fixed subset of the training programs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bcoder import rl
from bcoder.train.data import TrainingData
from bcoder.train.objectives import SATURATION_EPS

OUTCOMES = ("pass", "fail", "runtime_error", "compile_error")


@torch.no_grad()
def td_and_rewards(
    objective: Any,
    data: TrainingData,
    rows: Sequence[int],
    columns: Sequence[str],
    pad_id: int,
    device: Any,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Per program: TD error, R~, saturated and agreeing states, token count, and (lmhead mode)
    the mean per-token change of -log pi from the checkpoint's. Shapes: (N,)."""
    rows = list(rows)
    lengths = data.action_ids.lengths()[rows]
    order = np.argsort(-lengths, kind="stable")
    keys = ("td", "reward", "saturated", "agree", "tokens", "nll_change")
    out = {k: np.zeros(len(rows)) for k in keys}
    gamma, r_max = objective.model.config.gamma, objective.model.config.r_max
    for start in range(0, len(rows), batch_size):
        idx = order[start : start + batch_size]
        batch = data.collate([rows[i] for i in idx], pad_id, columns)
        batch = {k: v.to(device) for k, v in batch.items()}
        x = objective.quantities(batch)
        m = x["mask"].float()
        n = m.sum(dim=1).clamp(min=1)
        td = ((x["q"] - x["targets"]) ** 2 * m).sum(dim=1) / n
        reward = rl.cumulative_reward(x["q"], x["value"], x["mask"], gamma)
        saturated = ((x["value"] >= r_max - SATURATION_EPS).float() * m).sum(dim=1)
        if "argmax" in x:
            agree = ((x["argmax"] == batch["ckpt_argmax"]).float() * m).sum(dim=1)
        else:  # the phi-stage's policy is the checkpoint's
            agree = m.sum(dim=1)
        if "nll" in x:
            out["nll_change"][idx] = (((x["nll"] - x["ckpt_nll"]) * m).sum(dim=1) / n).cpu().numpy()
        for key, val in (("td", td), ("reward", reward), ("saturated", saturated)):
            out[key][idx] = val.float().cpu().numpy()
        out["agree"][idx] = agree.cpu().numpy()
        out["tokens"][idx] = m.sum(dim=1).cpu().numpy()
    return out


def mixed_td(
    td: np.ndarray, is_gt: np.ndarray, count: np.ndarray, rho_real: float
) -> tuple[float, float | None]:
    """(TD error weighted as the mini-batches mix programs, TD error of the sampled programs).

    Shape: td, is_gt, count (N,) -> two floats (the second None without sampled programs).
    """
    gen = ~is_gt
    sampled = float((td[gen] * count[gen]).sum() / count[gen].sum()) if gen.any() else None
    if not is_gt.any():
        return float(sampled), sampled  # type: ignore[arg-type]
    real = float(td[is_gt].mean())
    if sampled is None:
        return real, None
    return rho_real * real + (1 - rho_real) * sampled, sampled


def summarize(
    values: dict[str, np.ndarray],
    data: TrainingData,
    rows: Sequence[int],
    prefix: str,
    rho_real: float = 0.5,
) -> dict[str, float]:
    """Aggregate per-program figures into the diagnostics named in the module docstring."""
    rows = list(rows)
    if not rows:
        return {}
    tokens = values["tokens"].sum()
    count = data.count[rows].astype(float)
    td, td_sampled = mixed_td(values["td"], data.is_ground_truth[rows], count, rho_real)
    d = {
        f"{prefix}/td": td,
        f"{prefix}/value_saturated_frac": float(values["saturated"].sum() / max(tokens, 1)),
        f"{prefix}/argmax_agreement": float(values["agree"].sum() / max(tokens, 1)),
    }
    if td_sampled is not None:
        d[f"{prefix}/td_sampled"] = td_sampled
    outcome, gt = data.outcome[rows], data.is_ground_truth[rows]
    if gt.any():
        d[f"{prefix}/R~/ground_truth"] = float(values["reward"][gt].mean())
    nll = values["nll_change"]
    adapted = bool(np.any(nll != 0))  # lmhead theta: the policy moved
    if adapted and gt.any():
        d[f"{prefix}/nll_change/ground_truth"] = float(nll[gt].mean())
    means = {}
    for name in OUTCOMES:
        sel = (outcome == name) & ~gt  # generated programs, as candidates are at solve time
        if sel.any():
            means[name] = float((values["reward"][sel] * count[sel]).sum() / count[sel].sum())
            d[f"{prefix}/R~/{name}"] = means[name]
            d[f"{prefix}/n/{name}"] = float(count[sel].sum())
            if adapted:
                change = float((nll[sel] * count[sel]).sum() / count[sel].sum())
                d[f"{prefix}/nll_change/{name}"] = change
    if len(means) >= 2:
        top = "pass" not in means or means["pass"] == max(means.values())
        bottom = "compile_error" not in means or means["compile_error"] == min(means.values())
        d[f"{prefix}/R~_ordered"] = float(top and bottom)
    return d


def diagnose(
    objective: Any,
    data: TrainingData,
    heldout_rows: Sequence[int],
    train_rows: Sequence[int],
    columns: Sequence[str],
    pad_id: int,
    device: Any,
    rho_real: float = 0.5,
    batch_size: int = 16,
    max_train_rows: int = 512,
) -> dict[str, float]:
    """Held-out diagnostics plus the TD error on a fixed subset of the training programs."""
    d: dict[str, float] = {}
    if len(heldout_rows):
        v = td_and_rewards(objective, data, heldout_rows, columns, pad_id, device, batch_size)
        d.update(summarize(v, data, heldout_rows, "heldout", rho_real))
    subset = list(train_rows)[:: max(1, len(train_rows) // max_train_rows)][:max_train_rows]
    if subset:
        v = td_and_rewards(objective, data, subset, columns, pad_id, device, batch_size)
        gt, count = data.is_ground_truth[subset], data.count[subset].astype(float)
        d["train/td"], sampled = mixed_td(v["td"], gt, count, rho_real)
        if sampled is not None:
            d["train/td_sampled"] = sampled
    return d
