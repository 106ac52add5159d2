"""The code view: a candidate's tokens coloured by one metric, drawn line by line.

:class:`HeatmapView` is a Line API widget (a ``ScrollView`` that renders only the visible lines),
so a long program scrolls as smoothly as a short one. A token cursor (arrows, or a click) selects a
token; the app shows that token's values in the details line.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from bcoder.cli.tui import colors
from bcoder.cli.tui.layout import Layout, layout_candidate
from bcoder.core.types import Candidate, TokenScore


def base_colour(widget: ScrollView | Static) -> str:
    """The widget's opaque background as #rrggbb (what a value of zero is drawn on)."""
    r, g, b = widget.background_colors[1].rgb
    return f"#{r:02x}{g:02x}{b:02x}"


class HeatmapView(ScrollView, can_focus=True):
    """A candidate's code with a per-token heatmap and a token cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("up", "line(-1)", "Line up", show=False),
        Binding("down", "line(1)", "Line down", show=False),
        Binding("home", "move_to(0)", "First token", show=False),
        Binding("end", "move_to(-1)", "Last token", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("escape", "app.focus('candidates')", "Back to the list", show=False),
    ]

    metric: reactive[str] = reactive("reward")
    cursor: reactive[int] = reactive(0)

    class TokenChanged(Message):
        """The token under the cursor changed (``token`` is None when there is none)."""

        def __init__(self, token: TokenScore | None, index: int) -> None:
            super().__init__()
            self.token = token
            self.index = index

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.candidate: Candidate | None = None
        self.layout_: Layout = Layout()
        self.limits: dict[str, float] = {}
        self._styles: list[Style] = []
        self._gutter = 4

    # -- state ---------------------------------------------------------------------------------

    def show(self, candidate: Candidate | None, limits: dict[str, float]) -> None:
        """Display ``candidate`` with colour scales ``limits`` (metric -> magnitude)."""
        self.candidate = candidate
        self.limits = limits
        self.layout_ = layout_candidate(candidate) if candidate else Layout()
        self._gutter = len(str(max(1, len(self.layout_.lines)))) + 1
        self.virtual_size = Size(self._gutter + self.layout_.width + 1, len(self.layout_.lines))
        self._restyle()
        self.set_reactive(HeatmapView.cursor, 0)
        self.scroll_to(0, 0, animate=False)
        self._announce()

    @property
    def tokens(self) -> list[TokenScore]:
        return self.candidate.tokens if self.candidate else []

    def _restyle(self) -> None:
        base = base_colour(self)
        limit = self.limits.get(self.metric, 1.0)
        self._styles = []
        for token in self.tokens:
            bg, fg = colors.value_colours(colors.metric_value(token, self.metric), limit, base)
            self._styles.append(Style(color=fg, bgcolor=bg))
        self.refresh()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())

    def watch_metric(self) -> None:
        self._restyle()

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.tokens) - 1)) if self.tokens else 0

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()
        span = self.layout_.first_span(new)
        if span is not None:
            line = self.layout_.token_line[new]
            region = Region(self._gutter + span.start, line, max(1, span.end - span.start), 1)
            self.scroll_to_region(region, animate=False, spacing=None)
        self._announce()

    def _announce(self) -> None:
        tokens = self.tokens
        token = tokens[self.cursor] if tokens else None
        self.post_message(self.TokenChanged(token, self.cursor))

    # -- drawing -------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line_no = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if line_no >= len(self.layout_.lines):
            return Strip.blank(width, base)
        gutter_style = base + Style(dim=True)
        gutter = Strip([Segment(f"{line_no + 1:>{self._gutter - 1}} ", gutter_style)])
        cursor = self.cursor if self.tokens else -1
        segments = []
        for span in self.layout_.lines[line_no]:
            if span.token < 0 or span.token >= len(self._styles):
                style = base
            else:
                style = self._styles[span.token]
                if span.token == cursor:
                    style = style + Style(reverse=True, bold=True, underline=True)
            segments.append(Segment(span.text, style))
        code_width = max(0, width - self._gutter)
        code = Strip(segments).crop_extend(scroll_x, scroll_x + code_width, base)
        return Strip.join([gutter, code]).simplify()

    # -- cursor --------------------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.cursor += delta

    def action_move_to(self, index: int) -> None:
        self.cursor = index if index >= 0 else len(self.tokens) - 1

    def action_line(self, delta: int) -> None:
        if not self.tokens:
            self.scroll_relative(y=delta, animate=False)
            return
        span = self.layout_.first_span(self.cursor)
        line = self.layout_.token_line[self.cursor]
        target = line + delta
        while 0 <= target < len(self.layout_.lines) and not any(
            s.token >= 0 for s in self.layout_.lines[target]
        ):
            target += delta  # skip lines with no token of their own
        found = self.layout_.span_at(target, span.start if span else 0)
        if found is not None and found.token >= 0:
            self.cursor = found.token

    def action_page(self, delta: int) -> None:
        if not self.tokens:
            self.scroll_relative(y=delta * max(1, self.size.height - 1), animate=False)
            return
        for _ in range(max(1, self.size.height - 1)):
            self.action_line(delta)

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:  # on the border or a scrollbar
            return
        line = offset.y + int(self.scroll_y)
        column = offset.x - self._gutter + int(self.scroll_x)
        span = self.layout_.span_at(line, column)
        if span is not None and span.token >= 0:
            self.cursor = span.token


def legend_text(metric: str, limit: float, base: str) -> Text:
    """The colour scale of ``metric``: one swatch per level, labelled at the ends and the middle."""
    label = colors.METRICS[metric][1]
    text = Text()
    text.append(f"{label:>2} ", style="bold")
    text.append(f"{colors.format_value(-limit)} ")
    cells = colors.legend(limit, base)
    for i, cell in enumerate(cells):
        mark = "0" if i == len(cells) // 2 else " "
        text.append(
            f"{mark} " if mark == "0" else "  ",
            style=Style(bgcolor=cell.background, color=cell.text),
        )
    text.append(f" {colors.format_value(limit)}")
    return text


def details_text(token: TokenScore | None, index: int, total: int, shown: bool = True) -> Text:
    """The details line: the token under the cursor, its values and the checkpoint's choice.

    ``shown``: whether a candidate is displayed at all (else the line is empty)."""
    if token is None:
        return Text("no per-token scores for this candidate" if shown else "", style="dim")
    text = Text()
    text.append(f"tok {index + 1}/{total} ", style="dim")
    text.append(repr(token.text)[:24], style="bold")
    for name, value in (
        ("Q", token.q),
        ("V", token.v),
        ("A", token.advantage),
        ("r~", token.reward),
    ):
        text.append(f"  {name} ", style="dim")
        text.append(colors.format_value(value))
    if token.preferred:
        same = token.preferred == token.text
        text.append("  pref ", style="dim")
        text.append(repr(token.preferred)[:16], style="" if same else "bold italic")
    return text
