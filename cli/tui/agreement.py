"""The tests the model wrote, each with how many candidates pass it (``a``).

Candidates that agree on a test's answer back each other: a test most candidates pass is one the
agreement rankers trust, and a test none passes is often a wrong expectation of the model's. The
counts include duplicates (a program sampled three times counts three times).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from bcoder.cli.tui.generated import PASS, agreement, call_of, origin, sampled
from bcoder.core.types import Candidate, GeneratedTests

BAR = 10  # cells of the share bar


def share_bar(passing: int, total: int, width: int = BAR) -> Text:
    """``passing / total`` as a bar of ``width`` cells."""
    filled = round(width * passing / total) if total else 0
    bar = Text("█" * filled, style=PASS)
    bar.append("░" * (width - filled), style="dim")
    return bar


def ranks_text(ranks: list[int], room: int = 14) -> Text:
    """``#1 #2 #5`` (cut with … when it does not fit ``room`` cells)."""
    text = " ".join(f"#{r}" for r in ranks)
    if len(text) > room:
        text = text[: room - 1].rsplit(" ", 1)[0] + " …"
    return Text(text or "none", style="" if ranks else "dim")


class AgreementScreen(Screen[None]):
    """One row per generated test: candidates passing it, a share bar, their ranks, the test."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,a,q", "app.pop_screen", "Back")]

    def __init__(self, generated: GeneratedTests, candidates: list[Candidate]) -> None:
        super().__init__()
        self.generated, self.candidates = generated, candidates

    def compose(self) -> ComposeResult:
        total = sampled(self.candidates)
        with Vertical(id="agreement-head"):
            yield Label(Text(f"tests written by the model ({origin(self.generated)})"))
            yield Label(
                Text(
                    f"candidates that pass each, of the {total} sampled (duplicates counted)",
                    style="dim",
                )
            )
        table = DataTable(id="agreement-table", cursor_type="row", zebra_stripes=True)
        table.add_column("#", width=3, key="n")
        table.add_column("pass", width=5, key="passing")
        table.add_column("share", width=BAR, key="share")
        table.add_column("by", width=14, key="ranks")
        table.add_column("test", key="test")
        for i, row in enumerate(agreement(self.generated, self.candidates), start=1):
            table.add_row(
                f"g{i}",
                Text(f"{row.passing}/{total}", justify="right"),
                share_bar(row.passing, total),
                ranks_text(row.ranks),
                Text(call_of(row.test)),  # the model's text: never markup
            )
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.border_title = "which tests the candidates agree on"
        table.focus()
