"""The B-Coder math: hand-computed values and a naive per-token loop for every function."""

import math

import pytest
import torch

from bcoder import rl


def test_advantage_hand_computed():
    logits = torch.tensor([[[1.0, 3.0, 2.0]]])
    assert torch.allclose(rl.advantage(logits, 0.5), torch.tensor([[[-1.0, 0.0, -0.5]]]))


def test_softabs_and_bounded_value():
    assert rl.softabs(torch.tensor(0.0)).item() == 0.0
    x = torch.tensor([-3.0, -0.5, 0.7, 40.0])
    naive = (torch.nn.functional.softplus(x) + torch.nn.functional.softplus(-x)) / 2 - math.log(2)
    assert torch.allclose(rl.softabs(x), naive, atol=1e-6)
    # softabs(2) = (softplus(2) + softplus(-2)) / 2 - ln 2 = (2.126928 + 0.126928) / 2 - 0.693147
    assert rl.softabs(torch.tensor(2.0)).item() == pytest.approx(0.433781, abs=1e-5)
    u = torch.randn(4, 7) * 10
    assert (rl.bounded_value(u, 1.0) <= 1.0).all()
    assert rl.bounded_value(torch.zeros(1), 1.0).item() == 1.0


def test_q_values_taken_and_policy_invariance():
    logits = torch.randn(2, 5, 11)
    u = torch.randn(2, 5)
    q = rl.q_values(logits, u, 0.7, 1.0)
    assert (q <= 1.0 + 1e-6).all()
    # softmax(Q / alpha) is the LM's own policy softmax(logits).
    assert torch.allclose(torch.softmax(q / 0.7, -1), torch.softmax(logits, -1), atol=1e-5)
    actions = torch.randint(0, 11, (2, 5))
    t = rl.taken(q, actions)
    for b in range(2):
        for i in range(5):
            assert t[b, i] == q[b, i, actions[b, i]]


def test_td_targets_hand_computed():
    q_target = torch.tensor([[0.5, 0.4, 0.3, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    rewards = rl.terminal_rewards(torch.tensor([-0.3]), mask)
    assert torch.allclose(rewards, torch.tensor([[0.0, 0.0, -0.3, 0.0]]))
    y = rl.td_targets(q_target, rewards, mask, 0.5)
    assert torch.allclose(y, torch.tensor([[0.2, 0.15, -0.3, 0.0]]))


def test_td_loss_and_advantage_loss_hand_computed():
    q = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    y = torch.tensor([[0.0, 0.0, 5.0], [0.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    # row 0: (1 + 4) / 2 = 2.5 ; row 1: (1 + 4) / 2 = 2.5
    assert rl.td_loss(q, y, mask).item() == pytest.approx(2.5)
    adv = torch.tensor([[-1.0, -2.0, -7.0], [-9.0, 0.0, -0.5]])
    # row 0: 3 ; row 1: 0.5 ; mean 1.75
    assert rl.advantage_loss(adv, mask).item() == pytest.approx(1.75)


def test_recovered_rewards_hand_computed():
    q = torch.tensor([[0.9, 0.8, 0.5]])
    v = torch.tensor([[1.0, 0.7, 0.6]])
    mask = torch.tensor([[1, 1, 1]])
    r = rl.recovered_rewards(q, v, mask, 0.5)
    assert torch.allclose(r, torch.tensor([[0.9 - 0.35, 0.8 - 0.3, 0.5]]))
    assert rl.cumulative_reward(q, v, mask, 0.5).item() == pytest.approx(1.55)


def _random_padded(B=5, T=9, V=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b in range(B):
        n = int(torch.randint(1, T + 1, (1,), generator=g))
        if b % 2:  # right padding
            mask[b, :n] = 1
        else:  # left padding
            mask[b, T - n :] = 1
    return (
        torch.randn(B, T, V, generator=g),
        torch.randn(B, T, generator=g),
        torch.randn(B, T, generator=g),
        mask,
        torch.randint(0, V, (B, T), generator=g),
    )


def _real_positions(mask_row):
    return [t for t in range(len(mask_row)) if mask_row[t]]


def test_vectorised_matches_naive_loop():
    logits, u, qt, mask, actions = _random_padded()
    gamma, alpha = 0.9, 0.8
    B, T, _ = logits.shape
    final = torch.tensor([1.0, -0.3, -0.6, -1.0, 1.0])
    rewards = rl.terminal_rewards(final, mask)
    y = rl.td_targets(qt, rewards, mask, gamma)
    v = rl.bounded_value(u)
    q = rl.taken(rl.q_values(logits, u, alpha), actions)
    rr = rl.recovered_rewards(q, v, mask, gamma)
    td_rows, adv_rows = [], []
    adv = rl.taken(rl.advantage(logits, alpha), actions)
    for b in range(B):
        pos = _real_positions(mask[b])
        td = 0.0
        for j, t in enumerate(pos):
            last = j == len(pos) - 1
            r_t = final[b].item() if last else 0.0
            assert rewards[b, t].item() == pytest.approx(r_t)
            y_t = r_t if last else r_t + gamma * qt[b, pos[j + 1]].item()
            assert y[b, t].item() == pytest.approx(y_t, abs=1e-5)
            a = actions[b, t]
            q_bt = alpha * (logits[b, t, a] - logits[b, t].max()).item() + (
                1 - rl.softabs(u[b, t]).item()
            )
            assert q[b, t].item() == pytest.approx(q_bt, abs=1e-5)
            v_next = 0.0 if last else v[b, pos[j + 1]].item()
            assert rr[b, t].item() == pytest.approx(q_bt - gamma * v_next, abs=1e-5)
            td += (y_t - q_bt) ** 2
        td_rows.append(td / len(pos))
        adv_rows.append(sum(abs(adv[b, t].item()) for t in pos))
        for t in range(T):
            if not mask[b, t]:
                assert y[b, t] == 0 and rr[b, t] == 0
    assert rl.td_loss(q, y, mask).item() == pytest.approx(sum(td_rows) / B, rel=1e-5)
    assert rl.advantage_loss(adv, mask).item() == pytest.approx(sum(adv_rows) / B, rel=1e-5)
    cum = rl.cumulative_reward(q, v, mask, gamma)
    for b in range(B):
        assert cum[b].item() == pytest.approx(rr[b].sum().item(), abs=1e-5)


def test_cross_entropy_loss_matches_loop():
    logits, _, _, mask, actions = _random_padded(seed=3)
    total, n = 0.0, 0
    for b in range(logits.shape[0]):
        for t in _real_positions(mask[b]):
            total += -torch.log_softmax(logits[b, t], -1)[actions[b, t]].item()
            n += 1
    assert rl.cross_entropy_loss(logits, actions, mask).item() == pytest.approx(total / n, rel=1e-5)


def test_no_gradient_through_targets():
    q_target = torch.randn(2, 4, requires_grad=True)
    q_taken = torch.randn(2, 4, requires_grad=True)
    mask = torch.ones(2, 4)
    y = rl.td_targets(q_target, torch.zeros(2, 4), mask, 0.99)
    assert not y.requires_grad
    # Even a target that carries gradient is stopped inside the loss.
    rl.td_loss(q_taken, q_target * 1.0, mask).backward()
    assert q_target.grad is None and q_taken.grad is not None
