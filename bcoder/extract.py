"""Extract the program from a model's completion.

Rules, in order:
1. Line endings become ``\\n``; anything up to a closing ``</think>`` is dropped; the text is cut
   at the first end-of-turn token (``<|im_end|>``, ``<|endoftext|>``, ``</s>``, ...) and at a line
   that starts a new prompt (``QUESTION:``, ``ANSWER:``, ``[DONE]``, ``### Instruction`` ...).
2. Fenced blocks (````` ``` ````` or ``~~~``, an unterminated last fence runs to the end): the
   block that defines the entry point wins, then one that parses, then the longest; blocks in
   another language (``bash``, ``text``, ...) only when there is no Python or untagged block.
3. No fence: the text is code, except that prose lines at its start and end are dropped when
   the whole does not parse (the smallest cut that parses; otherwise every prose line at both
   ends goes). Code is never edited, reindented or reordered.
4. A completion that continues the starter code (its first line is indented and it does not
   define the entry point, e.g. a HumanEval body) gets the starter code put in front; a complete
   function whose starter had imports (``from typing import List``) gets the missing import lines.

So every line of the result comes from the completion or the problem's starter code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from bcoder.errors import BcoderError
from bcoder.spec import Problem

_END_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|EOT|>",
    "<|end|>",
    "<|im_start|>",
    "<|file_separator|>",
    "<end_of_turn>",
    "</s>",
)
_STOP_LINE = re.compile(
    r"^(QUESTION:|ANSWER:|\[DONE\]|\[BEGIN\]|\[END\]|### (Instruction|Response|Input)\b)"
)
_OPEN_FENCE = re.compile(r"(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+#.-]*)[ \t]*$")
_CLOSE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "python2", "sage"}
_BLOCK_OPENER = re.compile(
    r"^(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b.*:\s*(#.*)?$"
)
_MAX_TRIM = 12  # prose lines tried at each end before giving up on finding a parse


@dataclass(frozen=True)
class Block:
    """One fenced block of a completion."""

    lang: str  # the info string's first word, lower case ('' when untagged)
    code: str
    closed: bool


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text`` in order (an unterminated last one included)."""
    blocks: list[Block] = []
    fence, lang, body = "", "", []
    for line in text.split("\n"):
        if not fence:
            m = _OPEN_FENCE.search(line)
            if m:
                fence, lang, body = m.group(1), m.group(2).lower(), []
        else:
            m = _CLOSE_FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                blocks.append(Block(lang, "\n".join(body), True))
                fence = ""
            else:
                body.append(line)
    if fence:
        blocks.append(Block(lang, "\n".join(body), False))
    return blocks


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes
        return False
    return True


def defines(code: str, name: str | None) -> bool:
    """Whether ``code`` defines a function or class called ``name``."""
    if not name:
        return False
    return (
        re.search(rf"^[ \t]*(async[ \t]+)?(def|class)[ \t]+{re.escape(name)}\b", code, re.M)
        is not None
    )


def _choose(blocks: list[Block], entry: str | None) -> str:
    python = [b for b in blocks if b.lang in _PYTHON_TAGS and b.code.strip()]
    pool = python or [b for b in blocks if b.code.strip()]
    if not pool:
        return ""
    # max() keeps the first of equals, so ties go to the earlier block.
    best = max(pool, key=lambda b: (defines(b.code, entry), parses(b.code), len(b.code.strip())))
    return best.code


def _is_prose(line: str) -> bool:
    """A non-empty, unindented line that is not Python on its own."""
    s = line.strip()
    if not s or line[0] in " \t" or s.startswith(("#", "@")) or _BLOCK_OPENER.match(s):
        return False
    return not parses(s)


def strip_prose(text: str) -> str:
    """Drop prose lines at the start and end of unfenced code that does not parse as is."""
    if parses(text):
        return text
    lines = text.split("\n")

    def run(indices: range) -> int:  # leading (or trailing) lines that are prose or blank
        n = 0
        for i in indices:
            if lines[i].strip() and not _is_prose(lines[i]):
                break
            n += 1
        return n

    lead = run(range(len(lines)))
    if lead == len(lines):
        return ""
    trail = run(range(len(lines) - 1, -1, -1))
    for a in range(min(lead, _MAX_TRIM) + 1):
        for b in range(min(trail, _MAX_TRIM) + 1):
            if (a < lead and not lines[a].strip()) or (b < trail and not lines[-1 - b].strip()):
                continue  # cutting at a blank line changes nothing: try the next prose line
            candidate = "\n".join(lines[a : len(lines) - b])
            if parses(candidate):
                return candidate
    return "\n".join(lines[lead : len(lines) - trail])


def _imports(code: str) -> list[str]:
    return [ln for ln in code.split("\n") if re.match(r"(import|from)\s+\w", ln)]


def _with_starter(code: str, problem: Problem | None, family: str | None) -> str:
    if problem is None or not problem.starter_code.strip():
        return code
    starter, entry = problem.starter_code, problem.entry_point
    first = next((ln for ln in code.split("\n") if ln.strip()), "")
    if not defines(code, entry) and (first[:1] in (" ", "\t") or (family == "humaneval" and entry)):
        if not defines(starter, entry) and not starter.rstrip().endswith(":"):
            return code  # the starter is not a signature to continue
        return starter.rstrip() + "\n" + code
    missing = [ln for ln in _imports(starter) if ln not in code.split("\n")]
    if missing and defines(code, entry):
        return "\n".join(missing) + "\n" + code
    return code


def extract_code(completion: str, problem: Problem | None = None, family: str | None = None) -> str:
    """The program in ``completion`` (see the module docstring); '' when there is none.

    ``family`` is the prompt family the completion answers (``apps``, ``mbpp``, ``humaneval``,
    ``chat``) or None; with ``humaneval`` an unindented completion that does not define the entry
    point is still taken as the continuation of the signature.
    """
    if family is not None and family not in ("apps", "mbpp", "humaneval", "chat"):
        raise BcoderError(f"unknown prompt family {family!r}")
    text = completion.replace("\r\n", "\n").replace("\r", "\n")
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    cut = min((i for i in (text.find(t) for t in _END_TOKENS) if i >= 0), default=len(text))
    text = text[:cut]
    lines = text.split("\n")
    stop = next((i for i, ln in enumerate(lines) if _STOP_LINE.match(ln)), len(lines))
    text = "\n".join(lines[:stop])
    entry = problem.entry_point if problem is not None else None
    blocks = fenced_blocks(text)
    code = _choose(blocks, entry) if blocks else strip_prose(text)
    code = code.strip("\n")
    if not code.strip():
        return ""
    return _with_starter(code, problem, family).rstrip() + "\n"
