"""Snapshots of the TUI at 80x24: the main screen with the heatmap, another metric, the comparison,
the help screen; and the header at 120 columns.

Update after an intended change with ``pytest tests/test_tui_snapshot.py --snapshot-update`` and
look at the SVGs (tests/__snapshots__/test_tui_snapshot/) before committing them.
"""

from __future__ import annotations

import pytest
from test_tui_data import synthetic_result

from bcoder.cli.tui.app import BcoderTui
from bcoder.pipeline.store import Store


@pytest.fixture
def app(tokenizer, tmp_path) -> BcoderTui:
    return BcoderTui(result=synthetic_result(tokenizer), store=Store(tmp_path / "runs.sqlite"))


def test_main_screen_heatmap(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24))


def test_advantage_metric_and_token_cursor(app, snap_compare):
    # second candidate, colour by A, enter the code view, cursor on its 6th token
    keys = ["down", "4", "enter", "right", "right", "right", "right", "right"]
    assert snap_compare(app, press=keys, terminal_size=(80, 24))


def test_compare_screen(app, snap_compare):
    assert snap_compare(app, press=["down", "down", "c"], terminal_size=(80, 24))


def test_help_screen(app, snap_compare):
    assert snap_compare(app, press=["question_mark"], terminal_size=(80, 24))


def test_main_screen_at_120_columns(app, snap_compare):
    assert snap_compare(app, terminal_size=(120, 30))
