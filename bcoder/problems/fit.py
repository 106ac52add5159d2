"""Fit a problem statement into a prompt's token limit, cutting where it loses least.

A prompt that fits is returned as it is. A statement too long for its prompt loses text from
the middle of its longest parts (paragraphs), each cut part keeping its first and last lines
around a ``[...]`` mark, in this order:

1. examples and data: paragraphs under an Example / Sample / Note heading, and paragraphs that
   are mostly not words (numbers, grids, dumps);
2. the other paragraphs, except the first;
3. the first paragraph, whose first sentence (what to do) is always kept.

Within a tier the longest parts are cut first, down to a common length, so short parts stay
whole. The prompt's fixed parts (starter code, instructions, the tests it shows) are not cut:
when they and the first sentence alone are over the limit, :class:`FixedPartsTooLong` is raised
(:func:`bcoder.problems.prompts.fit_prompt` then shows fewer tests, else refuses the problem).

Tokens are counted with the tokenizer (``add_special_tokens=False``); without one as
``len(text) / CHARS_PER_TOKEN``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bcoder.core.errors import BcoderError

CHARS_PER_TOKEN = 4
_MAX_CHARS_PER_TOKEN = 32  # more than any tokenizer's average on text
MARK = "[...]"
_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n\s*)")
_SENTENCE_END = re.compile(r"[.!?:](?=\s|$)|\n")
# A heading line: "-----Examples-----", "Example 1:", "Sample Input 2", "Note".
_HEADING = re.compile(r"^\s*(-{3,}\s*)?([A-Za-z][A-Za-z ]{0,30}?)\s*\d*\s*:?\s*(-{3,})?\s*$")
_EXAMPLE_HEADING = re.compile(r"^(examples?|samples?|sample (input|output)|notes?|explanation)\b")


class FixedPartsTooLong(BcoderError):
    """The parts of a prompt that are not cut, with the statement's first sentence, are over the
    limit. ``tokens``: the whole prompt's."""

    def __init__(self, message: str, tokens: int):
        super().__init__(message)
        self.tokens = tokens


@dataclass(frozen=True)
class PromptCut:
    """What was cut from a problem to fit the prompt (None when nothing was)."""

    limit: int  # the prompt's token limit (max_source_tokens)
    tokens: int  # the uncut prompt's tokens
    chars: int  # the statement's characters
    kept: int  # its characters after the cut, marks included
    parts: int  # paragraphs cut
    tests_left_out: int = 0  # tests the prompt shows (MBPP's) that it no longer shows
    exact: bool = True  # False: ``tokens`` estimated from the head of a huge prompt

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)

    def message(self) -> str:
        """One line for the user."""
        what = []
        if self.parts:
            parts = f"{self.parts} long part{'s' if self.parts != 1 else ''}"
            what.append(
                f"{self.chars - self.kept:,} of the statement's {self.chars:,} characters were cut "
                f"from the middle of {parts} ({MARK} marks each cut); its first sentence is kept"
            )
        if self.tests_left_out:
            n = self.tests_left_out
            what.append(f"{n} of the tests it shows {'are' if n > 1 else 'is'} left out")
        about = "" if self.exact else "about "
        return (
            f"the problem is too long for the {self.limit}-token prompt ({about}{self.tokens:,} "
            "tokens): " + "; ".join(what)
        )


def count_tokens(text: str, tokenizer: Any = None) -> int:
    """Tokens in ``text`` (no special tokens added); ~len/4 without a tokenizer."""
    if tokenizer is None:
        return -(-len(text) // CHARS_PER_TOKEN)
    return len(tokenizer.encode(text, add_special_tokens=False))


def fit_statement(
    render: Callable[[str], str], statement: str, tokenizer: Any, limit: int
) -> tuple[str, str, PromptCut | None]:
    """``render(statement)`` if it has at most ``limit`` tokens, else ``render`` of the statement
    cut as the module docstring says: (prompt, the statement it renders, what was cut or None);
    raises when it cannot fit."""
    prompt = render(statement)
    tokens, exact = count_at_least(prompt, tokenizer, limit)
    if tokens <= limit:
        return prompt, statement, None
    fixed = count_tokens(render(""), tokenizer)
    parts = paragraphs(statement)
    task = task_sentence(statement)
    task_tokens = count_at_least(task, tokenizer, limit)[0]
    if fixed + task_tokens > limit:
        raise FixedPartsTooLong(
            f"the problem cannot fit in the {limit}-token prompt: its fixed parts (starter code, "
            f"tests shown, instructions) take {fixed:,} tokens and the statement's first sentence "
            f"{task_tokens:,}; shorten them",
            tokens,
        )
    per_token = len(statement) / max(1, tokens - fixed)  # characters per token of the statement
    best = _largest_that_fits(
        lambda budget: shorten(parts, budget, len(task)),
        lambda cut: count_tokens(render(cut), tokenizer),
        limit,
        (len(task), len(statement)),
        int((limit - fixed) * per_token),
        per_token,
    )
    if best is None:
        raise BcoderError(
            f"the problem cannot fit in the {limit}-token prompt, even with all but the "
            "statement's first sentence cut; shorten it"
        )
    cut, n_cut = best
    what = PromptCut(limit, tokens, len(statement), len(cut), n_cut, exact=exact)
    return render(cut), cut, what


def count_at_least(text: str, tokenizer: Any, limit: int) -> tuple[int, bool]:
    """(tokens in ``text``, True) when it has at most about ``limit``; for a text far over
    (megabytes: tokenizing 5 MB takes 40 s) an estimate from its head, and False."""
    head = (limit + 1) * _MAX_CHARS_PER_TOKEN
    if len(text) <= head:
        return count_tokens(text, tokenizer), True
    n = count_tokens(text[:head], tokenizer)
    if n <= limit + 1:  # the head alone fits: count it all
        return count_tokens(text, tokenizer), True
    return round(n * len(text) / head), False


def _largest_that_fits(
    shortened: Callable[[int], tuple[str, int]],
    tokens: Callable[[str], int],
    limit: int,
    bounds: tuple[int, int],
    guess: int,
    per_token: float,
) -> tuple[str, int] | None:
    """The statement shortened to the largest character budget whose prompt fits (to within
    1% of ``limit``): steps of ``per_token`` characters a token missing or over, bisection when
    a step leaves the bracket (tokens are not additive across cuts, and data and prose differ
    in characters per token)."""
    lo, hi = bounds[0] - 1, bounds[1]  # the budget ``hi`` does not fit (the whole statement)
    slack = max(2, limit // 100)
    best, budget = None, guess
    for _ in range(40):
        if hi - lo <= 1:
            break
        if not lo < budget < hi:
            budget = (lo + hi) // 2
        cut = shortened(budget)
        n = tokens(cut[0])
        if n <= limit:
            lo, best = budget, cut
            if limit - n <= slack:
                break
        else:
            hi = budget
        budget += int((limit - n) * per_token) or (1 if n <= limit else -1)
    return best


# --- the statement's parts ------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A paragraph of a statement, or the blank lines between two (``tier`` 0: never cut)."""

    text: str
    tier: int  # 0: a paragraph break; 1: examples and data; 2: other paragraphs; 3: the first


def task_sentence(statement: str) -> str:
    """The statement up to the end of its first sentence (or first line), leading space kept."""
    start = len(statement) - len(statement.lstrip())
    m = _SENTENCE_END.search(statement, start)
    return statement[: m.end() if m else len(statement)]


def paragraphs(statement: str) -> list[Part]:
    """``statement`` as parts that join back to it, each paragraph with its tier."""
    parts: list[Part] = []
    examples = False  # under an Example / Sample / Note heading
    first = True
    for i, text in enumerate(_PARAGRAPH_BREAK.split(statement)):
        if i % 2 or not text.strip():
            parts.append(Part(text, 0))
            continue
        heading = _HEADING.match(text.split("\n", 1)[0])
        name = heading.group(2).strip().lower() if heading else ""
        # "Input" / "Output" alone label an example's data; "-----Input-----" is a section
        if heading and (heading.group(1) or name not in ("input", "output")):
            examples = bool(_EXAMPLE_HEADING.match(name))
        if heading and "\n" not in text.strip() and not first:
            parts.append(Part(text, 0))  # a heading alone: short, and it says what follows
            continue
        if first:
            parts.append(Part(text, 3))
            first = False
        else:
            parts.append(Part(text, 1 if examples or _mostly_data(text) else 2))
    return parts


def _mostly_data(text: str) -> bool:
    """Fewer letters than other visible characters: numbers, grids, dumps (judged by the first
    and last 4,000 characters of a long paragraph)."""
    if len(text) > 8000:
        text = text[:4000] + text[-4000:]
    visible = sum(not c.isspace() for c in text)
    return sum(c.isalpha() for c in text) * 2 < visible


# --- cutting ---------------------------------------------------------------------------------


def shorten(parts: list[Part], budget: int, task_chars: int) -> tuple[str, int]:
    """The statement at about ``budget`` characters (never fewer than the first paragraph's
    first ``task_chars``), and how many parts were cut: tier by tier, the longest parts of a
    tier cut to a common length first."""
    keep = [len(p.text) for p in parts]  # characters each part keeps
    need = sum(keep) - budget
    for tier in (1, 2, 3):
        if need <= 0:
            break
        floor = task_chars if tier == 3 else 0
        index = [i for i, p in enumerate(parts) if p.tier == tier]
        cap = _common_length([len(parts[i].text) for i in index], need, floor)
        for i in index:
            keep[i] = min(keep[i], max(cap, floor))
        need = sum(_kept(len(p.text), k) for p, k in zip(parts, keep, strict=True)) - budget
    out: list[str] = []
    n_cut, gone = 0, False  # gone: the last paragraph written was cut away whole
    for p, k in zip(parts, keep, strict=True):
        if not _saves(len(p.text), k):
            out.append(p.text)
            gone = gone and p.tier == 0 and not p.text.strip()
            continue
        n_cut += 1
        if k == 0 and gone:  # one mark for paragraphs cut away one after another
            while out and not out[-1].strip():
                out.pop()
            continue
        out.append(cut_middle(p.text, k, task_chars if p.tier == 3 else 0))
        gone = k == 0
    return "".join(out), n_cut


def _saves(length: int, keep: int) -> bool:
    """Whether cutting a part of ``length`` to ``keep`` characters (plus the mark) saves any."""
    return length - keep > len(MARK) + 2


def _kept(length: int, keep: int) -> int:
    return keep + len(MARK) + 2 if _saves(length, keep) else length


def _common_length(lengths: list[int], need: int, floor: int) -> int:
    """The largest length L such that cutting every part longer than L (but not below
    ``floor``) to L saves at least ``need`` characters; ``floor`` when none does."""

    def saved(cap: int) -> int:
        c = max(cap, floor)
        return sum(n - _kept(n, c) for n in lengths)

    lo, hi = floor, max(lengths, default=floor)
    if saved(lo) < need:
        return floor
    while lo < hi:  # saved() does not increase with cap
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if saved(mid) >= need else (lo, mid - 1)
    return lo


def cut_middle(text: str, keep: int, head_min: int = 0) -> str:
    """``text`` with its middle replaced by the mark, keeping about ``keep`` characters: at
    least its first ``head_min`` and otherwise as much of its head as of its tail, cut at line
    ends where that loses little, else at spaces."""
    if keep <= 0:
        return MARK
    head = _snap_end(text, max(head_min, keep // 2), head_min)
    tail = _snap_start(text, len(text) - max(0, keep - head), head)
    at_lines = (head == 0 or text[head - 1] == "\n") and (
        tail >= len(text) or text[tail - 1] == "\n"
    )
    sep = "\n" if at_lines else " "
    body, rest = text[:head].rstrip(), text[tail:].lstrip()
    return (body + sep if body else "") + MARK + (sep + rest if rest else "")


def _snap_end(text: str, end: int, least: int) -> int:
    """A cut point at or before ``end``: after a newline, else a space, within the last half."""
    end = min(end, len(text))
    for char in ("\n", " "):
        at = text.rfind(char, max(least, end // 2), end)
        if at >= 0:
            return at + 1
    return end


def _snap_start(text: str, start: int, least: int) -> int:
    """A cut point at or after ``start`` (and after ``least``): a line start, else a word start,
    within the first half of what is left."""
    start = max(start, least)
    stop = start + (len(text) - start) // 2
    for char in ("\n", " "):
        at = text.find(char, start, stop)
        if at >= 0:
            return at + 1
    return start
