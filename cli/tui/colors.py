"""Map per-token values to heatmap colours: a pure, theme-independent formatter.

The palette is diverging and centred on zero: negative values shade towards orange-red, positive
values towards blue (a pair that colour-blind readers can tell apart). Both end colours have a
relative luminance near 0.2, so they keep the same contrast on a black and on a white background;
a value near zero keeps the theme's own background, so a dark theme stays dark and a light theme
stays light. Values are quantised to a few levels so that the legend shows exactly the colours used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bcoder.core.types import Candidate, TokenScore

NEGATIVE = "#e34a33"  # orange-red, luminance ~0.21
POSITIVE = "#3b82d6"  # blue, luminance ~0.22
DARK_TEXT = "#101010"
LIGHT_TEXT = "#f5f5f5"
STEPS = 6  # levels on each side of zero

# metric key -> (TokenScore attribute, label shown in the legend and details line)
METRICS: dict[str, tuple[str, str]] = {
    "q": ("q", "Q"),
    "v": ("v", "V"),
    "advantage": ("advantage", "A"),
    "reward": ("reward", "r~"),
}
METRIC_ORDER = ["reward", "q", "v", "advantage"]  # the order the "m" key cycles through


def metric_value(token: TokenScore, metric: str) -> float:
    """The value of ``metric`` (a key of :data:`METRICS`) for one token."""
    return float(getattr(token, METRICS[metric][0]))


def next_metric(metric: str) -> str:
    """The metric after ``metric`` in :data:`METRIC_ORDER` (wrapping round)."""
    return METRIC_ORDER[(METRIC_ORDER.index(metric) + 1) % len(METRIC_ORDER)]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    if len(h) != 6:
        raise ValueError(f"not a #rrggbb colour: {hex_colour!r}")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def blend(a: str, b: str, t: float) -> str:
    """The colour a fraction ``t`` (0..1) of the way from ``a`` to ``b``."""
    ra, rb = _rgb(a), _rgb(b)
    return _hex([x + (y - x) * t for x, y in zip(ra, rb, strict=True)])


def luminance(hex_colour: str) -> float:
    """WCAG relative luminance of a #rrggbb colour (0 = black, 1 = white)."""

    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = _rgb(hex_colour)
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background: str) -> str:
    """Dark or light text, whichever reads better on ``background``."""
    if contrast(background, DARK_TEXT) >= contrast(background, LIGHT_TEXT):
        return DARK_TEXT
    return LIGHT_TEXT


def scale_limit(values: Iterable[float], quantile: float = 0.98, floor: float = 1e-3) -> float:
    """The magnitude that maps to the strongest colour: a high quantile of the non-zero ``|value|``.

    A quantile rather than the maximum, so that one extreme token does not wash out the others; of
    the non-zero values, because most advantages are exactly 0 (the sampled token was the argmax)
    and would otherwise pull the scale to nothing. Non-finite values are ignored; the result is at
    least ``floor``.
    """
    mags = sorted(abs(v) for v in values if math.isfinite(v) and abs(v) >= floor)
    if not mags:
        return 1.0
    k = min(len(mags) - 1, max(0, math.ceil(quantile * len(mags)) - 1))
    return mags[k]


def scale_limits(candidates: Sequence[Candidate]) -> dict[str, float]:
    """Per metric, the :func:`scale_limit` of all tokens of ``candidates``: one scale for a run,
    so that colours compare across its candidates."""
    return {
        m: scale_limit(metric_value(t, m) for c in candidates for t in c.tokens) for m in METRICS
    }


def level(value: float, limit: float, steps: int = STEPS) -> int:
    """The quantised level of ``value`` in ``[-steps, steps]`` (0 for |value| below half a step)."""
    if not math.isfinite(value):
        return 0
    t = max(-1.0, min(1.0, value / limit))
    return int(math.copysign(math.floor(abs(t) * steps + 0.5), t))


def level_colour(lvl: int, base: str, steps: int = STEPS) -> str:
    """Background colour of a level: ``base`` at 0, the palette's end colour at +-steps."""
    if lvl == 0:
        return base
    end = POSITIVE if lvl > 0 else NEGATIVE
    return blend(base, end, min(abs(lvl), steps) / steps)


def value_colours(value: float, limit: float, base: str, steps: int = STEPS) -> tuple[str, str]:
    """(background, text) colours of a token with ``value`` on a scale of +-``limit``."""
    bg = level_colour(level(value, limit, steps), base, steps)
    return bg, text_colour(bg)


@dataclass(frozen=True)
class LegendCell:
    value: float  # the centre value of the level
    background: str
    text: str


def legend(limit: float, base: str, steps: int = STEPS) -> list[LegendCell]:
    """One cell per level from -limit to +limit: the colour scale shown under the code."""
    cells = []
    for lvl in range(-steps, steps + 1):
        bg = level_colour(lvl, base, steps)
        cells.append(LegendCell(value=limit * lvl / steps, background=bg, text=text_colour(bg)))
    return cells


def format_value(value: float) -> str:
    """A signed value in a fixed width of 6 (``+0.123``, ``-12.35``)."""
    if not math.isfinite(value):
        return f"{value!s:>6}"
    if abs(value) < 9.9995:
        return f"{value if abs(value) >= 0.0005 else 0.0:+.3f}"  # no "-0.000"
    if abs(value) < 999.95:
        return f"{value:+.2f}"[:6]
    return f"{value:+.0e}".replace("e+0", "e+").replace("e-0", "e-").rjust(6)[:6]
