"""The lmhead mode's logit adapter: the top-k approximation against the exact full-vocabulary
computation on a tiny model, the numpy entry point for other backends, and standalone loading."""

import numpy as np
import pytest
import torch
from support.tiny import tiny_causal_lm

from bcoder import rl
from bcoder.qmodel.adapter import (
    LogitAdapter,
    candidate_max_and_lse,
    candidate_set,
    load_logit_adapter,
    topk_features,
)
from bcoder.qmodel.batch import make_batch
from bcoder.qmodel.config import QConfig, read_checkpoint_config
from bcoder.qmodel.model import BCoderModel

PROMPTS = ["Write a function to add two numbers.\n", "QUESTION:\nPrint n.\nANSWER:\n"]
PROGRAMS = ["def add(a, b):\n    return a + b\n", "print(int(input()))"]
ALPHA = 0.8


def _lmhead_model(tokenizer, adapter_std: float, sharpen: float = 1.0) -> BCoderModel:
    """A tiny lmhead model whose adapter's B ~ N(0, adapter_std^2); ``sharpen`` scales the LM
    head, so that its logits are as peaked as a trained LM's (a random tiny LM's are flat)."""
    model = BCoderModel(tiny_causal_lm(tokenizer), QConfig(mode="lmhead", alpha=ALPHA, lora_r=4))
    torch.manual_seed(2)
    with torch.no_grad():
        model.logit_adapter.up.weight.normal_(0, adapter_std)
        model.lm.lm_head.weight.mul_(sharpen)
    return model.eval()


def _batch(tokenizer):
    p = [tokenizer(x).input_ids for x in PROMPTS]
    a = [tokenizer(x).input_ids + [tokenizer.eos_token_id] for x in PROGRAMS]
    return make_batch(p, a, tokenizer.pad_token_id)


def _exact_and_approx(model, batch, k):
    """(exact, approximate) A_theta(s_t, a_t), max_b l_theta, logsumexp and per-token CE, and the
    quantities the stated bounds need. Shapes: (B, T) each."""
    with torch.no_grad():
        ckpt_logits, hidden = model.run_lm("ckpt", batch)  # (B, T, V), (B, T, H)
        delta = model.logit_adapter(hidden)  # (B, T, V)
        theta = ckpt_logits.float() + delta
        actions = batch.action_ids
        exact = {
            "adv": rl.taken(rl.advantage(theta, ALPHA), actions),
            "max": theta.max(dim=-1).values,
            "lse": theta.logsumexp(dim=-1),
        }
        exact["ce"] = exact["lse"] - rl.taken(theta, actions)
        # what featurize stores, then what a training step computes from it
        top_l, top_i, taken_l, tail = topk_features(ckpt_logits, actions, k)
        ids, cand_ckpt = candidate_set(top_i, top_l, actions, taken_l)
        cand = cand_ckpt + model.logit_adapter.delta_at(hidden, ids)
        best, _, lse = candidate_max_and_lse(cand, tail)
        taken = taken_l + model.logit_adapter.delta_at(hidden, actions[..., None])[..., 0]
        approx = {"adv": ALPHA * (taken - best), "max": best, "lse": lse, "ce": lse - taken}
        # d = max |delta| outside S, and the argmax's delta, per token (for the bounds)
        outside = torch.ones_like(delta, dtype=torch.bool).scatter(-1, ids, False)
        d_abs = delta.abs().masked_fill(~outside, 0).amax(dim=-1)
        d_max = delta.masked_fill(~outside, float("-inf")).amax(dim=-1)
        w = torch.exp(tail - lse)  # the tail's share of the approximate mass
        bounds = {"d_abs": d_abs, "d_max": d_max, "d_top": delta.gather(-1, ids[..., :1])[..., 0]}
        bounds["w"] = w
    return exact, approx, bounds


def test_at_initialisation_the_approximation_is_exact(tokenizer):
    model = _lmhead_model(tokenizer, adapter_std=0.0)  # B = 0: l_theta = l_ckpt
    batch = _batch(tokenizer)
    exact, approx, _ = _exact_and_approx(model, batch, k=8)
    m = batch.action_mask.bool()
    for key in exact:
        torch.testing.assert_close(approx[key][m], exact[key][m], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k", [4, 32])
def test_the_approximation_stays_within_its_stated_bounds(tokenizer, k):
    """The hard case: a random tiny LM's flat logits (the top-32 of 384 tokens hold ~10% of the
    mass) and a random adapter (|delta| ~ 0.35 on average, up to ~2). The approximate max, lse,
    A_theta and CE are within the bounds stated in candidate_max_and_lse."""
    model = _lmhead_model(tokenizer, adapter_std=0.05)
    batch = _batch(tokenizer)
    exact, approx, b = _exact_and_approx(model, batch, k)
    m = batch.action_mask.bool()
    assert b["d_abs"][m].mean() > 0.3  # the adapter really moves the logits
    eps = 1e-4
    err_max = exact["max"] - approx["max"]
    assert (err_max[m] >= -eps).all()  # the approximate max never exceeds the exact one
    limit = (b["d_max"] - b["d_top"]).clamp(min=0)
    assert (err_max[m] <= limit[m] + eps).all()
    torch.testing.assert_close(exact["adv"] - approx["adv"], -ALPHA * err_max)  # taken is exact
    err_lse = exact["lse"] - approx["lse"]
    upper = torch.log1p(b["w"] * torch.expm1(b["d_abs"]))
    lower = torch.log1p(-b["w"] * -torch.expm1(-b["d_abs"]))
    assert (err_lse[m] <= upper[m] + eps).all() and (err_lse[m] >= lower[m] - eps).all()
    assert (err_lse[m].abs() <= b["d_abs"][m] + eps).all()
    torch.testing.assert_close(exact["ce"] - approx["ce"], err_lse)
    assert err_lse[m].abs().max() > 1e-3  # (a case where the approximation is not exact)


def test_on_a_peaked_checkpoint_the_approximation_is_close(tokenizer):
    """A trained LM's logits are peaked: here the top-32 hold ~95% of the mass (the LM head
    scaled up). With the same random adapter as above, the max (so A_theta) is exact on every
    token and the logsumexp (so the CE) is off by less than 0.03 nats."""
    model = _lmhead_model(tokenizer, adapter_std=0.05, sharpen=30.0)
    batch = _batch(tokenizer)
    exact, approx, b = _exact_and_approx(model, batch, k=32)
    m = batch.action_mask.bool()
    assert b["d_abs"][m].mean() > 0.3 and b["w"][m].mean() < 0.1
    torch.testing.assert_close(approx["max"][m], exact["max"][m], atol=1e-5, rtol=0)
    torch.testing.assert_close(approx["adv"][m], exact["adv"][m], atol=1e-5, rtol=0)
    assert (approx["lse"] - exact["lse"])[m].abs().max() < 0.03
    assert (approx["ce"] - exact["ce"])[m].abs().max() < 0.03


def test_the_candidate_set_counts_the_taken_action_once():
    top_i = torch.tensor([[[3, 1, 2]]])
    top_l = torch.tensor([[[2.0, 1.0, 0.5]]])
    ids, cand = candidate_set(top_i, top_l, torch.tensor([[1]]), torch.tensor([[1.0]]))
    assert ids.tolist() == [[[3, 1, 2, 1]]] and cand[0, 0, -1] == float("-inf")
    ids, cand = candidate_set(top_i, top_l, torch.tensor([[7]]), torch.tensor([[-1.0]]))
    assert ids.tolist() == [[[3, 1, 2, 7]]] and cand[0, 0, -1] == -1.0
    # gradients stay finite through the -inf slot
    delta = torch.zeros(1, 1, 4, requires_grad=True)
    best, idx, lse = candidate_max_and_lse(cand + delta, torch.tensor([[0.0]]))
    (best + lse).sum().backward()
    assert torch.isfinite(delta.grad).all() and idx.item() == 0


def test_apply_takes_numpy_and_torch_alike(tokenizer):
    adapter = LogitAdapter(hidden_size=8, vocab_size=20, rank=2, scale=2.0)
    torch.manual_seed(0)
    with torch.no_grad():
        adapter.up.weight.normal_()
    logits, hidden = torch.randn(3, 20), torch.randn(3, 8)
    out = adapter.apply(logits, hidden)
    out_np = adapter.apply(logits.numpy(), hidden.numpy())
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    np.testing.assert_allclose(out_np, out.detach().numpy(), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out, logits)
    expected = logits + 2.0 * hidden @ adapter.down.weight.T @ adapter.up.weight.T
    torch.testing.assert_close(out.detach(), expected.detach())


def test_a_checkpoint_adapter_loads_without_the_base(tokenizer, tmp_path):
    """A backend with only logits and hidden states (llama.cpp) gets the trained policy from the
    checkpoint directory alone, with the numbers of BCoderModel.policy_logits."""
    model = _lmhead_model(tokenizer, adapter_std=0.5)
    model.save_checkpoint(tmp_path / "ckpt")
    config = read_checkpoint_config(tmp_path / "ckpt")["config"]
    adapter = load_logit_adapter(tmp_path / "ckpt", config)
    logits, hidden = torch.randn(2, len(tokenizer)), torch.randn(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            adapter.apply(logits.numpy(), hidden.numpy()),
            model.policy_logits(logits, hidden).numpy(),
        )
    assert load_logit_adapter(tmp_path / "ckpt", {**config, "mode": "head"}) is None
