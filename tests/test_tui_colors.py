"""The TUI's pure parts: the value -> colour formatter, the token layout and small helpers."""

from __future__ import annotations

import math

import pytest

from bcoder.cli.tui import colors
from bcoder.cli.tui.compare import bar_cells, compare_pair
from bcoder.cli.tui.layout import EMPTY_TOKEN, layout_code, layout_tokens, line_sums
from bcoder.cli.tui.screens import save_name
from bcoder.core.types import Candidate, TokenScore

DARK, LIGHT = "#121212", "#fafafa"


def test_blend_and_luminance_endpoints():
    assert colors.blend("#000000", "#ffffff", 0) == "#000000"
    assert colors.blend("#000000", "#ffffff", 1) == "#ffffff"
    assert colors.blend("#000000", "#ff8000", 0.5) == "#804000"
    assert colors.luminance("#000000") == 0
    assert colors.luminance("#ffffff") == pytest.approx(1)
    assert colors.contrast("#000000", "#ffffff") == pytest.approx(21)
    with pytest.raises(ValueError):
        colors.blend("red", "#ffffff", 0.5)


def test_levels_are_symmetric_clipped_and_zero_near_zero():
    limit, steps = 2.0, 6
    assert colors.level(0.0, limit, steps) == 0
    assert colors.level(0.1, limit, steps) == 0  # below half a step (2/6/2 = 0.167)
    assert colors.level(0.2, limit, steps) == 1
    assert colors.level(2.0, limit, steps) == 6
    assert colors.level(-2.0, limit, steps) == -6
    assert colors.level(50.0, limit, steps) == 6  # clipped
    assert colors.level(-50.0, limit, steps) == -6
    assert colors.level(math.nan, limit, steps) == 0
    for v in (0.3, 0.9, 1.4):
        assert colors.level(-v, limit, steps) == -colors.level(v, limit, steps)
    # monotone
    values = [x / 10 for x in range(-30, 31)]
    levels = [colors.level(v, limit, steps) for v in values]
    assert levels == sorted(levels)


@pytest.mark.parametrize("base", [DARK, LIGHT])
def test_value_colours_diverge_around_the_theme_background(base):
    assert colors.value_colours(0.0, 1.0, base)[0] == base  # zero keeps the background
    neg, _ = colors.value_colours(-1.0, 1.0, base)
    pos, _ = colors.value_colours(1.0, 1.0, base)
    assert neg == colors.NEGATIVE and pos == colors.POSITIVE  # full scale: the palette's ends
    # the hue says the sign at every level: more red than blue below zero, the reverse above
    for value in (-0.5, -0.2, 0.2, 0.5):
        r, _, b = colors._rgb(colors.value_colours(value, 1.0, base)[0])
        assert (b > r) == (value > 0), (base, value)
    # stronger values move further from the background
    d = [colors.contrast(colors.value_colours(v, 1.0, base)[0], base) for v in (0.2, 0.5, 0.8, 1.0)]
    assert d == sorted(d) and d[0] > 1


def test_palette_ends_read_on_dark_and_light_themes():
    """Both end colours keep at least 3:1 against black and white (WCAG for graphics)."""
    for end in (colors.NEGATIVE, colors.POSITIVE):
        assert colors.contrast(end, "#000000") >= 3
        assert colors.contrast(end, "#ffffff") >= 3


@pytest.mark.parametrize("base", [DARK, LIGHT, "#1e1e2e", "#ffffff", "#000000"])
def test_token_text_is_readable_on_every_legend_cell(base):
    cells = colors.legend(1.5, base)
    assert len(cells) == 2 * colors.STEPS + 1
    assert cells[colors.STEPS].value == 0 and cells[colors.STEPS].background == base
    assert cells[0].value == -1.5 and cells[-1].value == 1.5
    for cell in cells:
        assert colors.contrast(cell.background, cell.text) >= 4.5, (base, cell)


def test_scale_limit_uses_a_quantile_and_ignores_non_finite():
    values = [0.1] * 97 + [0.4, -0.5, 100.0]
    assert colors.scale_limit(values) == 0.4  # the 98th percentile: the outlier does not count
    assert colors.scale_limit(values, quantile=1.0) == 100.0
    assert colors.scale_limit([-3.0, 1.0, math.inf, math.nan]) == 3.0
    assert colors.scale_limit([]) == 1.0
    assert colors.scale_limit([0.0, 0.0]) == 1.0  # never zero: no division by zero
    # mostly-zero values (advantages of argmax tokens) do not shrink the scale to nothing
    assert colors.scale_limit([0.0] * 95 + [-0.2, -0.3, -0.4, -0.5, -2.0], quantile=0.8) == 0.5


def test_metric_value_and_format():
    tok = TokenScore("x", 1, q=0.5, v=0.9, advantage=-0.4, reward=-0.3995, logprob=-1.0)
    assert [colors.metric_value(tok, m) for m in ("q", "v", "advantage", "reward")] == [
        0.5,
        0.9,
        -0.4,
        -0.3995,
    ]
    assert colors.format_value(-0.3995) == "-0.400"
    assert colors.format_value(-0.0) == colors.format_value(-1e-9) == "+0.000"
    assert colors.format_value(12.3456) == "+12.35"
    assert colors.format_value(-123.456) == "-123.4"
    assert all(
        len(colors.format_value(v)) == 6 for v in (0, 1, -9.9999, 99.9, -999.9, 1234.5, -1e9)
    )


def test_layout_splits_tokens_into_lines():
    lay = layout_tokens(["def", " f", "():\n", "    ", "return", "", " 1", "\n", "<|eos|>"])
    texts = [[(s.text, s.token) for s in line] for line in lay.lines]
    assert texts == [
        [("def", 0), (" f", 1), ("():", 2)],
        [("    ", 3), ("return", 4), (EMPTY_TOKEN, 5), (" 1", 6), (" ", 7)],
        [("<|eos|>", 8)],
    ]
    assert lay.token_line == [0, 0, 0, 1, 1, 1, 1, 1, 2]
    assert lay.width == 4 + 6 + 1 + 2 + 1
    span = lay.span_at(1, 5)
    assert span is not None and span.token == 4 and (span.start, span.end) == (4, 10)
    assert lay.span_at(1, 999).token == 7  # past the end: the last span
    assert lay.first_span(8).text == "<|eos|>"
    assert lay.span_at(5, 0) is None


def test_layout_blank_lines_tabs_and_controls():
    lay = layout_tokens(["a\n\n", "\tb\x07"])
    assert [[s.text for s in line] for line in lay.lines] == [["a"], [], ["    b?"]]
    assert lay.token_line == [0, 2]
    plain = layout_code("x = 1\n\n  y\n")
    assert [[s.text for s in line] for line in plain.lines] == [["x = 1"], [], ["  y"]]
    assert all(s.token == -1 for line in plain.lines for s in line)


def test_line_sums_attribute_tokens_to_their_first_line():
    def tok(text: str, r: float) -> TokenScore:
        return TokenScore(text, 0, q=0, v=0, advantage=0, reward=r, logprob=0)

    cand = Candidate(code="", completion="", tokens=[tok("a", 1), tok("\n", 2), tok("b", -4)])
    lay = layout_tokens([t.text for t in cand.tokens])
    assert line_sums(cand, lay) == [3.0, -4.0]


def test_metrics_cycle_and_share_one_scale_per_run():
    seen = ["reward"]
    for _ in range(4):
        seen.append(colors.next_metric(seen[-1]))
    assert seen == ["reward", "q", "v", "advantage", "reward"]

    def tok(v: float) -> TokenScore:
        return TokenScore("x", 1, q=v, v=1.0, advantage=0.0, reward=-v, logprob=0.0)

    a = Candidate("a", "a", tokens=[tok(0.5)])
    b = Candidate("b", "b", tokens=[tok(-2.0)])
    limits = colors.scale_limits([a, b])
    assert limits["q"] == limits["reward"] == 2.0  # over both candidates
    assert limits["v"] == 1.0 and limits["advantage"] == 1.0  # all-zero: the default scale


def test_compare_pair_marked_or_best_against_selected():
    a, b, c = (Candidate(x, x) for x in "abc")
    assert compare_pair([a, b, c], None, c) == (a, c)  # nothing marked: the best
    assert compare_pair([a, b, c], b, c) == (b, c)
    assert compare_pair([a, b, c], b, b) == (b, a)  # never a candidate against itself
    assert compare_pair([a, b, c], None, a) == (a, b)
    gone = Candidate("gone", "gone")  # marked, then a new run replaced the list
    assert compare_pair([a, b, c], gone, c) == (a, c)


def test_save_name_is_a_safe_file_name():
    assert save_name("mbpp/11", 2) == "mbpp_11_2.py"
    assert save_name("stub.py:Stack.push", 1) == "stub.py_Stack.push_1.py"
    assert save_name("../../etc", 3) == ".._.._etc_3.py"  # no "/" left: it stays a file name
    assert save_name(None, 1) == save_name("///", 1) == "candidate_1.py"


def test_compare_bars_diverge_from_the_middle():
    assert bar_cells(0.0, 1.0) == ("    ", "    ")
    assert bar_cells(1.0, 1.0) == ("    ", "████")
    assert bar_cells(-1.0, 1.0) == ("████", "    ")
    assert bar_cells(-0.5, 1.0) == ("  ██", "    ")
    left, right = bar_cells(0.5 + 1 / 8, 1.0)  # 2.5 of 4 cells
    assert left == "    " and right.startswith("██▌")
    assert bar_cells(5.0, 1.0)[1] == "████"  # clipped


def test_compare_curve_heights_and_signs():
    from bcoder.cli.tui.compare import curve_text

    text = curve_text([1.0, -0.5, 0.0, 2.0], limit=1.0, width=10)
    assert text.plain == "█▅▁█"  # one cell per line when there is room; clipped at the limit
    colours = [str(span.style) for span in text.spans]
    assert colours == [colors.POSITIVE, colors.NEGATIVE, colors.NEGATIVE, colors.POSITIVE]
    assert len(curve_text([0.5] * 100, 1.0, 7).plain) == 7  # resampled to the width
    assert curve_text([], 1.0, 5).plain == ""
