"""The value heads: u(s) from a hidden state, and the inverse of the softabs bound."""

from __future__ import annotations

import torch
from torch import nn

from bcoder import rl


class ValueHead(nn.Module):
    """u(s): a raw scalar per state from a hidden state (linear, or one hidden layer).

    Initialised to output exactly 0, so an untrained head gives V = R_max everywhere. Note that
    softabs'(0) = 0: a head trained from u = 0 gets no gradient, so training recipes call
    :meth:`start_at` to move the starting point off zero.
    """

    def __init__(self, hidden_size: int, head_hidden: int = 0):
        super().__init__()
        if head_hidden:
            self.net = nn.Sequential(
                nn.Linear(hidden_size, head_hidden), nn.GELU(), nn.Linear(head_hidden, 1)
            )
        else:
            self.net = nn.Sequential(nn.Linear(hidden_size, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Shape: hidden (..., H) -> u (...)."""
        return self.net(hidden.float()).squeeze(-1)

    @torch.no_grad()
    def start_at(self, value: float, r_max: float = 1.0) -> None:
        """Set the output bias so that V = R_max - softabs(u) starts at ``value`` (< R_max)."""
        self.net[-1].bias.fill_(inverse_softabs(r_max - value))


def inverse_softabs(y: float) -> float:
    """The positive x with softabs(x) = y, for y > 0 (by bisection; softabs is increasing on x>0)."""
    if y <= 0:
        raise ValueError("softabs only reaches y > 0 away from 0")
    lo, hi = 0.0, 2 * y + 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if float(rl.softabs(torch.tensor(mid, dtype=torch.float64))) < y:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
