"""Lay a candidate's tokens out as display lines: pure functions, no Textual.

The heatmap and the comparison view both need to know which token owns which cells of which line.
A token may span lines (``":\\n    "``), be only a newline, or be empty (EOS): every token gets at
least one cell somewhere, so that each one can be coloured and selected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len

from bcoder.core.types import Candidate

EMPTY_TOKEN = "◌"  # shown for a token with no text of its own (part of a multi-byte character)
TAB = "    "


@dataclass(frozen=True)
class Span:
    """A run of cells on one display line that belongs to one token (-1: no token)."""

    text: str
    token: int
    start: int  # first cell (column) on the line
    end: int  # one past the last cell


@dataclass
class Layout:
    """Display lines of one candidate, and where each token first appears."""

    lines: list[list[Span]] = field(default_factory=list)
    token_line: list[int] = field(default_factory=list)  # line of each token's first span
    width: int = 0  # the widest line, in cells

    def span_at(self, line: int, column: int) -> Span | None:
        """The span at (line, column), or the nearest one on that line."""
        if not 0 <= line < len(self.lines) or not self.lines[line]:
            return None
        spans = self.lines[line]
        for span in spans:
            if span.start <= column < span.end:
                return span
        return spans[-1] if column >= spans[-1].end else spans[0]

    def first_span(self, token: int) -> Span | None:
        """The first span of ``token``."""
        if not 0 <= token < len(self.token_line):
            return None
        for span in self.lines[self.token_line[token]]:
            if span.token == token:
                return span
        return None


def _clean(text: str) -> str:
    """Make text safe to draw in one cell per character: tabs expanded, controls replaced."""
    text = text.replace("\t", TAB).replace("\r", "")
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def layout_tokens(texts: list[str]) -> Layout:
    """Split token texts into display lines; a token that adds no visible cell gets one blank cell."""
    out = Layout(lines=[[]])
    col = 0

    def add(text: str, token: int) -> None:
        nonlocal col
        width = cell_len(text)
        out.lines[-1].append(Span(text, token, col, col + width))
        col += width

    for i, raw in enumerate(texts):
        parts = raw.split("\n")
        out.token_line.append(len(out.lines) - 1)
        if raw == "":
            add(EMPTY_TOKEN, i)
            continue
        for j, part in enumerate(parts):
            if j > 0:
                out.lines.append([])
                col = 0
            text = _clean(part)
            if j == 0 and not text:
                text = " "  # a bare newline (or control character): one coloured cell
            if text:
                add(text, i)
    if out.lines and not out.lines[-1]:
        out.lines.pop()  # a trailing newline does not open an empty last line
    out.width = max((line[-1].end for line in out.lines if line), default=0)
    return out


def layout_code(code: str) -> Layout:
    """Lines of a program with no per-token values (every span has token -1)."""
    out = Layout()
    for raw in code.splitlines() or [""]:
        text = _clean(raw)
        out.lines.append([Span(text, -1, 0, cell_len(text))] if text else [])
    out.width = max((line[-1].end for line in out.lines if line), default=0)
    return out


def layout_candidate(candidate: Candidate) -> Layout:
    """The per-token layout when the candidate has token scores, else the plain code."""
    if candidate.tokens:
        return layout_tokens([t.text for t in candidate.tokens])
    return layout_code(candidate.code)


def line_sums(candidate: Candidate, layout: Layout, attr: str = "reward") -> list[float]:
    """Per display line, the sum of a token value (r~ by default) over the tokens starting there."""
    sums = [0.0] * len(layout.lines)
    for token, line in zip(candidate.tokens, layout.token_line, strict=False):
        if line < len(sums):
            sums[line] += float(getattr(token, attr))
    return sums
