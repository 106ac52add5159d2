"""The report's plots (PNG, matplotlib with the Agg backend; nothing is shown on screen).

- ``reward_density.png``: kernel density of R~ per true outcome (the paper's Figure 3);
- ``pass_at_k_vs_m.png``: ranked (by R~) and unranked pass@k against the budget m (Figure 5);
- ``calibration.png``: mean true reward and pass rate per R~ bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bcoder.core.fs import writing
from bcoder.evaluate.records import ProblemRecord
from bcoder.evaluate.report import OUTCOMES, expand

_COLORS = {
    "pass": "tab:green",
    "fail": "tab:orange",
    "runtime_error": "tab:red",
    "compile_error": "tab:purple",
}
_LABELS = {
    "pass": "passed unit tests",
    "fail": "failed unit test(s)",
    "runtime_error": "runtime error",
    "compile_error": "compile error",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density (Scott's bandwidth; a floor for constant values)."""
    bw = 1.06 * values.std() * values.size ** (-1 / 5) if values.size > 1 else 0.0
    bw = max(bw, 1e-3 * max(1.0, float(np.abs(values).max())), 1e-6)
    z = (grid[:, None] - values[None, :]) / bw  # (G, N)
    return np.exp(-0.5 * z**2).sum(axis=1) / (values.size * bw * np.sqrt(2 * np.pi))


def plot_reward_density(records: Sequence[ProblemRecord], path: Path) -> Path:
    plt = _pyplot()
    by_outcome: dict[str, list[float]] = {o: [] for o in OUTCOMES}
    for r in records:
        s = expand(r)
        for x, o in zip(s.reward, s.outcome, strict=True):
            if o in by_outcome:
                by_outcome[o].append(x)
    everything = np.asarray([x for xs in by_outcome.values() for x in xs], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    if everything.size:
        span = max(float(np.ptp(everything)), 1e-3)
        grid = np.linspace(everything.min() - 0.1 * span, everything.max() + 0.1 * span, 400)
        for o, xs in by_outcome.items():
            if xs:
                ax.plot(grid, _density(np.asarray(xs), grid), color=_COLORS[o])
                ax.fill_between(grid, _density(np.asarray(xs), grid), alpha=0.25, color=_COLORS[o])
                ax.plot([], [], color=_COLORS[o], label=f"{_LABELS[o]} ({len(xs)})")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no executed samples", ha="center", transform=ax.transAxes)
    ax.set_xlabel("cumulative recovered reward R~")
    ax.set_ylabel("density")
    ax.set_title("R~ by true outcome (cf. paper Fig. 3)")
    return _save(fig, path)


def plot_pass_at_k_vs_m(curves: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    ks = list(curves.get("ranked_reward", {}))
    fig, axes = plt.subplots(1, max(1, len(ks)), figsize=(3.6 * max(1, len(ks)), 3.4), dpi=120)
    axes = np.atleast_1d(axes)
    ms = curves.get("m", [])
    for ax, k in zip(axes, ks, strict=False):
        for method, style, label in (
            ("ranked_reward", "o-", "ranked by R~"),
            ("unranked", "s--", "unranked"),
        ):
            pts = [
                (m, 100 * v) for m, v in zip(ms, curves[method][k], strict=True) if v is not None
            ]
            if pts:
                ax.plot(*zip(*pts, strict=False), style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("budget m (samples ranked)")
        ax.set_ylabel(f"pass@{k} (%)")
        ax.set_title(f"pass@{k} against m")
        ax.legend(fontsize=8)
    fig.suptitle("cf. paper Fig. 5", fontsize=9)
    return _save(fig, path)


def plot_calibration(bins: list[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0), dpi=120)
    if bins:
        x = [b["reward_mean"] for b in bins]
        ax.plot(x, [b["true_reward_mean"] for b in bins], "o-", label="mean true reward")
        ax.plot(x, [b["pass_rate"] for b in bins], "s--", label="pass rate")
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no executed samples", ha="center", transform=ax.transAxes)
    ax.set_xlabel("mean R~ of the bin (equal-count bins)")
    ax.set_ylabel("true reward / pass rate")
    ax.set_title("calibration of R~ against the true reward")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(tmp, format="png")
            tmp.replace(path)
    finally:
        plt.close(fig)
    return path


def write_plots(
    records: Sequence[ProblemRecord], figures: dict[str, Any], directory: Path
) -> list[Path]:
    """All three plots under ``directory``; returns their paths."""
    return [
        plot_reward_density(records, directory / "reward_density.png"),
        plot_pass_at_k_vs_m(figures["pass_at_k_vs_m"], directory / "pass_at_k_vs_m.png"),
        plot_calibration(figures["calibration"], directory / "calibration.png"),
    ]
