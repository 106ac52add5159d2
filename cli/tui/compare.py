"""Two candidates side by side, their r~ curves aligned by line.

Each row shows, for line i of each program, a bar of the summed r~ of the tokens that start on that
line (diverging from the centre: left and orange-red for negative, right and blue for positive) and
the code itself. A one-line curve above each side shows the whole program at a glance, on the same
scale for both candidates.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer, Label

from bcoder.cli.tui import colors
from bcoder.cli.tui.layout import Layout, layout_candidate, line_sums
from bcoder.core.types import Candidate

BAR = 9  # cells per bar; the middle cell is zero
EIGHTHS = " ▏▎▍▌▋▊▉█"
LEVELS = "▁▂▃▄▅▆▇█"


def compare_pair(
    candidates: list[Candidate], marked: Candidate | None, selected: Candidate
) -> tuple[Candidate, Candidate]:
    """The two candidates to compare (of at least two): the marked one if it is still listed, else
    the best, against the selected one, or against the best or runner-up if that is the same."""
    a = marked if any(c is marked for c in candidates) else candidates[0]
    b = selected
    if b is a:
        b = candidates[1] if a is candidates[0] else candidates[0]
    return a, b


def bar_cells(value: float, limit: float, half: int = BAR // 2) -> tuple[str, str]:
    """A diverging bar as (left half, right half) strings of ``half`` cells each.

    Negative values fill the left half from its right end; positive values the right half from its
    left end; the fill is in eighths of a cell, proportional to ``|value| / limit`` (clipped).
    """
    eighths = round(min(1.0, abs(value) / limit) * half * 8) if limit > 0 else 0
    full, part = divmod(eighths, 8)
    if value >= 0:
        right = ("█" * full + (EIGHTHS[part] if part else "")).ljust(half)
        return " " * half, right[:half]
    # the left bar grows leftwards: partial cells cannot be right-aligned with block glyphs,
    # so round to whole cells there
    cells = min(half, full + (1 if part >= 4 else 0))
    return (" " * (half - cells) + "█" * cells), " " * half


def curve_text(values: list[float], limit: float, width: int) -> Text:
    """A one-line curve of ``values`` in ``width`` cells: height = |mean| of each bucket of lines
    relative to ``limit``, colour = sign (the heatmap's palette)."""
    text = Text()
    if not values or width <= 0:
        return text
    cells = min(width, len(values))
    for i in range(cells):
        bucket = values[i * len(values) // cells : (i + 1) * len(values) // cells] or [0.0]
        mean = sum(bucket) / len(bucket)
        height = min(1.0, abs(mean) / limit) if limit > 0 else 0.0
        char = LEVELS[min(len(LEVELS) - 1, int(height * len(LEVELS)))]
        text.append(char, style=colors.POSITIVE if mean > 0 else colors.NEGATIVE)
    return text


class Curve(Widget):
    """One candidate's per-line r~ as a one-line curve, resampled to the widget's width."""

    def __init__(self, values: list[float], limit: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.values, self.limit = values, limit

    def render(self) -> Text:
        return curve_text(self.values, self.limit, self.size.width)


class CompareView(ScrollView):
    """Rows of ``line | bar A | code A ┃ bar B | code B``; one scroll position for both sides."""

    def __init__(self, a: Candidate, b: Candidate, **kwargs) -> None:
        super().__init__(**kwargs)
        self.a, self.b = a, b
        self.layouts: tuple[Layout, Layout] = (layout_candidate(a), layout_candidate(b))
        self.sums = (line_sums(a, self.layouts[0]), line_sums(b, self.layouts[1]))
        self.limit = colors.scale_limit([*self.sums[0], *self.sums[1]], quantile=1.0)
        rows = max(len(lay.lines) for lay in self.layouts)
        self.virtual_size = Size(0, rows)

    def _side(self, side: int, line: int, width: int) -> list[Segment]:
        layout, sums = self.layouts[side], self.sums[side]
        base = self.rich_style
        dim = base + Style(dim=True)
        if line >= len(layout.lines):
            return [Segment(" " * width, base)]
        left, right = bar_cells(sums[line], self.limit)
        text = "".join(span.text for span in layout.lines[line])
        code_width = max(0, width - BAR - 1)
        text = text[:code_width].ljust(code_width)
        return [
            Segment(left, base + Style(color=colors.NEGATIVE)),
            Segment("│", dim),
            Segment(right, base + Style(color=colors.POSITIVE)),
            Segment(" ", base),
            Segment(text, base),
        ]

    def render_line(self, y: int) -> Strip:
        line = int(self.scroll_y) + y
        width = self.size.width
        rows = self.virtual_size.height
        if line >= rows:
            return Strip.blank(width, self.rich_style)
        number = f"{line + 1:>3} "
        side_width = max(0, (width - len(number) - 1) // 2)
        segments = [Segment(number, self.rich_style + Style(dim=True))]
        segments += self._side(0, line, side_width)
        segments.append(Segment("┃", self.rich_style + Style(dim=True)))
        segments += self._side(1, line, side_width)
        return Strip(segments).crop_extend(0, width, self.rich_style)


class CompareScreen(Screen[None]):
    """Compare two candidates (ranks ``ranks``) line by line."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,c,q", "app.pop_screen", "Back")]

    def __init__(self, a: Candidate, b: Candidate, ranks: tuple[int, int]) -> None:
        super().__init__()
        self.a, self.b, self.ranks = a, b, ranks

    def compose(self) -> ComposeResult:
        view = CompareView(self.a, self.b, id="compare-view")
        with Vertical(id="compare-head"):
            for side, cand, rank in ((0, self.a, self.ranks[0]), (1, self.b, self.ranks[1])):
                with Horizontal(classes="compare-row"):
                    yield Label(
                        Text(f"#{rank} R~ {cand.reward:+.3f} {cand.outcome or 'untested'}"),
                        classes="compare-label",
                    )
                    yield Curve(view.sums[side], view.limit, classes="compare-curve")
        yield view
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(
            CompareView
        ).border_title = f"per-line r~ — #{self.ranks[0]} (left) vs #{self.ranks[1]} (right)"
