"""The mathematics of B-Coder as pure tensor functions (DESIGN section 2).

Notation: B batch, T action tokens, V vocabulary. Per-token tensors are aligned to actions:
index t holds quantities of (s_t, a_t), where s_t = (problem, a_<t). ``mask`` is 1 on real action
tokens and 0 on padding; padding may sit on either side, but the real tokens of a row are
contiguous. The last real token of a row is its terminal action a_T.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def advantage(logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """A(s, a) = alpha * (l(s, a) - max_b l(s, b)), always <= 0.

    Shape: logits (B, T, V) -> (B, T, V).
    """
    return alpha * (logits - logits.max(dim=-1, keepdim=True).values)


def softabs(x: torch.Tensor) -> torch.Tensor:
    """softabs(x) = (softplus(x) + softplus(-x)) / 2 - ln 2, a smooth |x|/2 with softabs(0) = 0.

    Written as |x|/2 + log1p(exp(-|x|)) - ln 2, which is the same function without overflow.
    Shape: any -> same.
    """
    a = x.abs()
    return 0.5 * a + torch.log1p(torch.exp(-a)) - LN2


def bounded_value(u: torch.Tensor, r_max: float = 1.0) -> torch.Tensor:
    """V(s) = R_max - softabs(u(s)) <= R_max, from the raw value-head output u.

    Shape: u (B, T) -> (B, T).
    """
    return r_max - softabs(u)


def q_values(
    logits: torch.Tensor, u: torch.Tensor, alpha: float, r_max: float = 1.0
) -> torch.Tensor:
    """Dueling Q(s, a) = A(s, a) + V(s), with A from the logits and V bounded.

    Shape: logits (B, T, V), u (B, T) -> (B, T, V).
    """
    return advantage(logits, alpha) + bounded_value(u, r_max).unsqueeze(-1)


def taken(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The value of the action actually taken: q[b, t, actions[b, t]].

    Shape: q (B, T, V), actions (B, T) integer -> (B, T).
    """
    return q.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def _next(x: torch.Tensor) -> torch.Tensor:
    """x shifted one step to the left along time, with 0 after the last column. (B, T) -> (B, T)."""
    return F.pad(x[:, 1:], (0, 1))


def terminal_rewards(final_reward: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token rewards r_t: 0 everywhere except ``final_reward`` at the last real token.

    Shape: final_reward (B,), mask (B, T) -> (B, T).
    """
    m = mask.to(final_reward.dtype)
    is_last = m * (1 - _next(m))  # 1 exactly at the terminal token of each row
    return is_last * final_reward.unsqueeze(-1)


def td_targets(
    q_target: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Bellman targets y_t = r_t + gamma * SG(q_target[:, t+1]); y_T = r_T at the terminal.

    ``q_target[:, t]`` holds Q(s_t, a^_t) at the target action a^_t (the checkpoint's argmax for the
    conservative operator). Targets never carry gradient; padded positions get 0.
    Shape: q_target (B, T), rewards (B, T), mask (B, T) -> (B, T).
    """
    m = mask.to(rewards.dtype)
    bootstrap = _next(q_target.detach() * m) * _next(m)  # 0 after the terminal token
    return (rewards + gamma * bootstrap) * m


def td_loss(q_taken: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L = mean over sequences of (1/T_i) sum_t (y_t - Q(s_t, a_t))^2.

    Rows without any real token are left out of the mean.
    Shape: q_taken (B, T), targets (B, T), mask (B, T) -> scalar.
    """
    m = mask.to(q_taken.dtype)
    n = m.sum(dim=1)
    per_seq = ((q_taken - targets.detach()) ** 2 * m).sum(dim=1) / n.clamp(min=1)
    return per_seq[n > 0].mean() if bool((n > 0).any()) else per_seq.sum() * 0


def advantage_loss(adv_taken: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_adv = mean over sequences of sum_t |A(s*_t, a*_t)| (on ground-truth programs).

    Shape: adv_taken (B, T), mask (B, T) -> scalar.
    """
    return (adv_taken.abs() * mask.to(adv_taken.dtype)).sum(dim=1).mean()


def cross_entropy_loss(
    logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """L_ce = token-mean cross-entropy of softmax(logits) on the taken actions.

    Shape: logits (B, T, V), actions (B, T), mask (B, T) -> scalar.
    """
    nll = F.cross_entropy(logits.transpose(1, 2), actions.long(), reduction="none")  # (B, T)
    return token_mean(nll, mask)


def token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of x over real tokens (L_ce from per-token -log pi(a_t | s_t)).

    Shape: x (B, T), mask (B, T) -> scalar.
    """
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1)


def recovered_rewards(
    q_taken: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, gamma: float
) -> torch.Tensor:
    """The free reward model: r~_t = Q(s_t, a_t) - gamma * V(s_{t+1}), V = 0 after the terminal.

    ``v[:, t]`` holds V(s_t). Padded positions get 0.
    Shape: q_taken (B, T), v (B, T), mask (B, T) -> (B, T).
    """
    m = mask.to(q_taken.dtype)
    return (q_taken - gamma * _next(v * m) * _next(m)) * m


def cumulative_reward(
    q_taken: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, gamma: float
) -> torch.Tensor:
    """R~ = sum over real tokens of r~_t; candidates are ranked by it, highest first.

    Shape: q_taken (B, T), v (B, T), mask (B, T) -> (B,).
    """
    return recovered_rewards(q_taken, v, mask, gamma).sum(dim=1)
