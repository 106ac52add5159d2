"""The stage objectives against a naive per-token loop over the paper's formulas, on a tiny LoRA
(and lmhead) Q-model whose theta policy has moved away from the checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

GAMMA, ALPHA, R_MAX = 0.9, 0.7, 1.0


def softabs(x: float) -> float:
    return (math.log1p(math.exp(x)) + math.log1p(math.exp(-x))) / 2 - math.log(2)


@pytest.fixture(scope="module")
def setup(tokenizer):
    from support.tiny import tiny_causal_lm

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel

    torch.manual_seed(0)
    model = BCoderModel(tiny_causal_lm(tokenizer), QConfig(mode="lora", alpha=ALPHA, gamma=GAMMA))
    with torch.no_grad():  # move theta (adapter and residual head) away from initialisation
        for name, p in model.named_parameters():
            if "lora_B" in name or "residual_head" in name or "phi_head" in name:
                p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(1)
    B, P, T = 4, 3, 5
    lengths = torch.tensor([5, 3, 1, 4])
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    batch = {
        "prompt_ids": torch.randint(4, 300, (B, P), generator=g),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "action_ids": torch.randint(4, 300, (B, T), generator=g) * mask,
        "action_mask": mask,
        "ckpt_argmax": torch.randint(4, 300, (B, T), generator=g),
        "ckpt_adv": -torch.rand(B, T, generator=g) * mask,
        "u_phi": torch.randn(B, T, generator=g),
        "reward": torch.tensor([1.0, -0.3, -0.6, -1.0]),
        "is_ground_truth": torch.tensor([True, False, True, False]),
    }
    return model, batch, lengths


def nonzero_grads(model) -> set[str]:
    """Names of the parameters the last backward pass gave a non-zero gradient."""
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def naive_theta(model, batch, lengths, operator, imitated=None):
    """L_Q, L_adv, L_ce by loops over programs and tokens (DESIGN section 2); L_adv and L_ce on
    the rows ``imitated`` (default: the ground truths)."""
    from bcoder.train.objectives import action_batch

    with torch.no_grad():
        logits, hidden = model.run_lm("theta", action_batch(batch))
        logits = model.policy_logits(logits, hidden)  # + the logit adapter's residual (lmhead)
        h = model.residual_head(hidden) - model.residual_frozen(hidden)
    td, adv_sums, ce = [], [], []
    for b, n in enumerate(lengths.tolist()):

        def q(t, a, b=b):
            row = logits[b, t]
            value = R_MAX - softabs(float(batch["u_phi"][b, t] + h[b, t]))
            return ALPHA * float(row[a] - row.max()) + value, ALPHA * float(row[a] - row.max())

        errs = []
        for t in range(n):
            a = int(batch["action_ids"][b, t])
            q_taken, adv = q(t, a)
            if t == n - 1:
                y = float(batch["reward"][b])
            elif operator == "conservative":
                y = GAMMA * q(t + 1, int(batch["ckpt_argmax"][b, t + 1]))[0]
            else:
                y = GAMMA * q(t + 1, int(logits[b, t + 1].argmax()))[0]
            errs.append((y - q_taken) ** 2)
            if batch["is_ground_truth"][b] if imitated is None else b in imitated:
                adv_sums.append((b, abs(adv)))
                ce.append(-float(torch.log_softmax(logits[b, t], -1)[a]))
        td.append(sum(errs) / n)
    gt_rows = {b for b, _ in adv_sums}
    l_adv = sum(a for _, a in adv_sums) / len(gt_rows)
    return sum(td) / len(td), l_adv, sum(ce) / len(ce)


@pytest.mark.parametrize("operator", ["conservative", "optimality"])
def test_theta_objective_matches_the_naive_loop(setup, operator):
    from bcoder.train.objectives import ThetaObjective, set_trainable

    model, batch, lengths = setup
    set_trainable(model, "theta")
    loss, stats = ThetaObjective(model, 0.1, 0.5, operator)(batch)
    td, adv, ce = naive_theta(model, batch, lengths, operator)
    assert float(stats["loss/td"]) == pytest.approx(td, rel=1e-4)
    assert float(stats["loss/adv"]) == pytest.approx(adv, rel=1e-4)
    assert float(stats["loss/ce"]) == pytest.approx(ce, rel=1e-4)
    assert float(loss.detach()) == pytest.approx(td + 0.1 * adv + 0.5 * ce, rel=1e-4)
    other = "optimality" if operator == "conservative" else "conservative"
    assert td != pytest.approx(naive_theta(model, batch, lengths, other)[0], rel=1e-3)
    loss.backward()
    grads = nonzero_grads(model)
    assert grads and all("theta" in n or n.startswith("residual_head") for n in grads)
    model.zero_grad(set_to_none=True)


def test_imitate_passing_adds_the_passing_samples_to_l_adv_and_l_ce(setup):
    """imitate="passing": L_adv and L_ce over the ground truths and the samples that passed (here
    row 1, a sample with reward 1); the ground truth of row 2, whose cut program failed, stays."""
    from bcoder.train.objectives import ThetaObjective

    model, batch, lengths = setup
    batch = dict(batch, reward=torch.tensor([1.0, 1.0, -0.6, -1.0]))
    for imitate, rows in (("ground_truth", {0, 2}), ("passing", {0, 1, 2})):
        with torch.no_grad():
            _, stats = ThetaObjective(model, 0.1, 0.5, "conservative", imitate)(batch)
        td, adv, ce = naive_theta(model, batch, lengths, "conservative", rows)
        assert float(stats["loss/td"]) == pytest.approx(td, rel=1e-4)
        assert float(stats["loss/adv"]) == pytest.approx(adv, rel=1e-4)
        assert float(stats["loss/ce"]) == pytest.approx(ce, rel=1e-4)
    other = naive_theta(model, batch, lengths, "conservative", {0, 2})
    assert (adv, ce) != pytest.approx(other[1:], rel=1e-3)  # the sample changed both terms


@pytest.fixture(scope="module")
def lmhead_setup(tokenizer, setup):
    """An lmhead Q-model with a moved adapter, and the setup's batch with the stored features
    (hidden states, the checkpoint's top-k) featurize would write for it, k = the vocabulary."""
    from support.tiny import tiny_causal_lm

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel
    from bcoder.train.featurize import token_features
    from bcoder.train.objectives import action_batch

    torch.manual_seed(0)
    config = QConfig(mode="lmhead", alpha=ALPHA, gamma=GAMMA, lora_r=4)
    model = BCoderModel(tiny_causal_lm(tokenizer), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "logit_adapter.up" in name or "residual_head" in name or "phi_head" in name:
                p.normal_(0, 0.3)
    _, batch, lengths = setup
    batch = dict(batch)
    with torch.no_grad():
        logits, hidden = model.run_lm("ckpt", action_batch(batch))
        meta = {"hidden": True, "topk": logits.shape[-1]}
        batch.update(token_features(logits, hidden, batch["action_ids"], ALPHA, meta))
    return model, batch, lengths


@pytest.mark.parametrize("operator", ["conservative", "optimality"])
def test_lmhead_theta_objective_matches_the_naive_loop(lmhead_setup, operator):
    """With k = V the candidate set is the vocabulary, so the adapter's step computes exactly the
    paper's L_Q, L_adv and L_ce on l_theta = l_ckpt + B A h (the top-k error is tested in
    test_adapter.py); only the adapter and the residual head get gradient."""
    from bcoder.train.objectives import ThetaObjective, set_trainable

    model, batch, lengths = lmhead_setup
    set_trainable(model, "theta")
    loss, stats = ThetaObjective(model, 0.1, 0.5, operator)(batch)
    td, adv, ce = naive_theta(model, batch, lengths, operator)
    assert float(stats["loss/td"]) == pytest.approx(td, rel=1e-4)
    assert float(stats["loss/adv"]) == pytest.approx(adv, rel=1e-4)
    assert float(stats["loss/ce"]) == pytest.approx(ce, rel=1e-4)
    assert float(stats["adv/argmax_agreement"]) < 1.0  # the policy moved
    loss.backward()
    grads = nonzero_grads(model)
    assert grads == {"logit_adapter.down.weight", "logit_adapter.up.weight"} | {
        n for n in grads if n.startswith("residual_head")
    }
    assert any(n.startswith("residual_head") for n in grads)
    model.zero_grad(set_to_none=True)


def test_lmhead_theta_reports_both_policies_nll(lmhead_setup):
    """``ckpt_nll`` is the checkpoint's exact -log pi(a_t | s_t) (the candidate set plus the stored
    tail's normaliser), ``nll`` the adapted policy's: the diagnostics' nll_change compares them."""
    from bcoder.train.objectives import ThetaObjective, action_batch

    model, batch, _ = lmhead_setup
    with torch.no_grad():
        x = ThetaObjective(model).quantities(batch)
        logits, _ = model.run_lm("ckpt", action_batch(batch))
    naive = -torch.log_softmax(logits.float(), -1).gather(-1, batch["action_ids"].long()[..., None])
    m = batch["action_mask"].bool()
    torch.testing.assert_close(x["ckpt_nll"][m], naive.squeeze(-1)[m], rtol=1e-4, atol=1e-4)
    assert float((x["nll"] - x["ckpt_nll"])[m].abs().max()) > 1e-3  # the adapter moved it


def test_phi_objective_matches_the_naive_loop(setup):
    from bcoder.train.objectives import PhiObjective, action_batch, lm_hidden, set_trainable

    model, batch, lengths = setup
    set_trainable(model, "phi")
    loss, _ = PhiObjective(model)(batch)
    with torch.no_grad():
        u = model.phi_head(lm_hidden(model, "phi", action_batch(batch)))
    v = [[R_MAX - softabs(float(x)) for x in row] for row in u]
    td = []
    for b, n in enumerate(lengths.tolist()):
        errs = []
        for t in range(n):
            y = float(batch["reward"][b]) if t == n - 1 else GAMMA * v[b][t + 1]
            errs.append((y - float(batch["ckpt_adv"][b, t]) - v[b][t]) ** 2)
        td.append(sum(errs) / n)
    assert float(loss.detach()) == pytest.approx(sum(td) / len(td), rel=1e-4)
    loss.backward()
    grads = nonzero_grads(model)
    assert grads and all(".phi." in n or n.startswith("phi_head") for n in grads)
    model.zero_grad(set_to_none=True)


def theta_batch() -> dict[str, torch.Tensor]:
    """Two short programs (one ground truth) with what featurize would store for theta."""
    return {
        "prompt_ids": torch.tensor([[5, 6, 7]] * 2),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "action_ids": torch.tensor([[8, 9, 10], [11, 12, 0]]),
        "action_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
        "ckpt_argmax": torch.tensor([[8, 9, 10], [11, 12, 0]]),
        "u_phi": torch.full((2, 3), 0.5),
        "reward": torch.tensor([1.0, -1.0]),
        "is_ground_truth": torch.tensor([True, False]),
    }


def test_gradient_checkpointing_gives_the_same_gradients(tokenizer):
    from support.tiny import tiny_causal_lm

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel
    from bcoder.train.objectives import ThetaObjective, set_trainable
    from bcoder.train.setup import enable_gradient_checkpointing

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = BCoderModel(tiny_causal_lm(tokenizer), QConfig(mode="full"))
        params = set_trainable(model, "theta")
        if checkpointing:
            enable_gradient_checkpointing(model)
            # (is_activation_checkpointing in transformers 5, is_gradient_checkpointing before)
            assert any(
                getattr(m, "gradient_checkpointing", False) for m in model.theta_lm.modules()
            )
        objective = ThetaObjective(model).train()
        batch = theta_batch()
        objective(batch)[0].backward()
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        return {n: p.grad.clone() for n, p in zip(names, params, strict=True)}

    plain, ckpt = grads(False), grads(True)
    assert plain.keys() == ckpt.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], ckpt[name], rtol=1e-5, atol=1e-6)


def test_seq2seq_full_theta_step_trains_its_lm_head_not_the_encoder(tokenizer):
    """Full mode on T5: a theta step moves theta's own LM head and decoder embedding; the shared
    encoder (with its embedding, which T5 ties to both) and everything else not theta's stay
    bit-identical."""
    from support.tiny import tiny_seq2seq

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel
    from bcoder.train.objectives import ThetaObjective, set_trainable

    torch.manual_seed(0)
    model = BCoderModel(tiny_seq2seq(tokenizer), QConfig(mode="full"))
    params = set_trainable(model, "theta")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = theta_batch()
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    ThetaObjective(model).train()(batch)[0].backward()
    optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {"theta_lm.lm_head.weight", "theta_lm.decoder.embed_tokens.weight"} <= moved
    assert all(
        n.startswith(("theta_lm.decoder.", "theta_lm.lm_head", "residual_head")) for n in moved
    )
    encoder = model.lm.get_encoder()
    assert model.theta_lm.get_encoder() is encoder
    assert all(not p.requires_grad for p in encoder.parameters())
