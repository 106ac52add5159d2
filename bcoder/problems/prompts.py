"""Prompts per model family: a pure function of (problem, family[, tokenizer, limit]).

Families:
- ``apps``: Hendrycks et al. (2021), as used by CodeRL and B-Coder for CodeT5:
  ``"\\nQUESTION:\\n{question}\\n{starter}\\nUse Standard Input format|Use Call-Based format\\nANSWER:\\n"``
- ``mbpp``: zero-shot, the statement and the tests it must pass in a docstring (the tests are
  shown, as is usual for MBPP; the wording of Austin et al.'s prompt).
- ``humaneval``: the signature and docstring themselves (the HumanEval prompt); the model
  continues with the body.
- ``chat``: the tokenizer's chat template, with a system instruction to answer with one Python
  code block and a user message built from the problem (statement, starter code or signature,
  visible tests).

Prefill (``prefill``, for a stub asked of a chat model): the assistant turn starts with the
answer's first lines, the opening fence, the signature and the docstring (:func:`answer_prefix`),
so the model writes only the body instead of copying the stub first. The prefix is part of the
prompt: the sampled actions, their log-probs and R~ cover the body. It is the answer's start, not
the source: the prompt before it is fitted to ``max_source_tokens`` exactly as without prefill
(counting the stub twice would cut docstrings that fit), and it holds the docstring as cut there.

Length: a prompt of at most ``max_source_tokens`` tokens is the statement as it is. A longer
one has its question (statement / docstring) cut where that loses least, the middle of long
examples and data first, never its first sentence (:mod:`bcoder.problems.fit`); the starter
code, the format line and "ANSWER:" are never cut, and the tests an MBPP-style prompt shows are
fewer only when they and the first sentence alone are over the limit (two of MBPP's 974 rows
with Qwen2.5-Coder's tokenizer at 600 tokens); a problem that still cannot fit is refused.
:func:`fit_prompt` says what was cut.

A trained checkpoint records how its training prompts and programs were made (family, source and
target lengths): :class:`PromptSettings`, which solve, eval, the TUI and the LSP use with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem, TestSpec
from bcoder.problems.fit import FixedPartsTooLong, PromptCut, fit_statement

FAMILIES = ("apps", "mbpp", "humaneval", "chat")
SYSTEM_PROMPT = (
    "You are an expert Python programmer. Answer with exactly one Python code block "
    "(```python ... ```) that holds the complete solution, and nothing else."
)
MAX_SHOWN_TESTS = 5
# start a stub's answer in the prompt (see :func:`answer_prefix`) unless told otherwise
PREFILL = True
_MAX_TEST_CHARS = 1000  # longer tests are not shown in a prompt


@dataclass(frozen=True)
class PromptSettings:
    """How prompts and completions are made; a checkpoint records the ones it was trained with
    (its ``data.prompt_family`` and token limits), so that it is used the same way."""

    family: str = "auto"  # auto (prompt_family's choice) | apps | mbpp | humaneval | chat
    max_source_tokens: int = 600  # prompt length limit
    max_target_tokens: int = 512  # completion length limit

    def __post_init__(self) -> None:
        if self.family != "auto" and self.family not in FAMILIES:
            known = ", ".join(FAMILIES)
            raise BcoderError(f"unknown prompt family {self.family!r} (expected auto or {known})")
        if self.max_source_tokens < 1 or self.max_target_tokens < 1:
            raise BcoderError("prompt token limits must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> PromptSettings:
        """From a checkpoint's metadata (``bcoder_config.json``): its ``prompt`` entry, else the
        ``data`` section of the training config it carries (older checkpoints), else defaults."""
        if isinstance(meta.get("prompt"), dict):
            return cls(**meta["prompt"])
        data = (meta.get("train_config") or {}).get("data") or {}
        names = {"prompt_family": "family", "max_source_tokens": "max_source_tokens"}
        names["max_target_tokens"] = "max_target_tokens"
        return cls(**{ours: data[theirs] for theirs, ours in names.items() if theirs in data})


@dataclass(frozen=True)
class Prompt:
    """A problem's prompt as the model reads it."""

    family: str
    text: str
    ids: list[int]  # its token ids (empty until tokenised)
    cut: PromptCut | None = None  # what was cut from the statement to fit (None: nothing)
    # the answer's start, written at the end of the prompt (a prefilled assistant turn): the
    # model's completion continues it, and its tokens are the prompt's, not actions
    prefix: str = ""

    def answer(self, completion: str) -> str:
        """The whole answer: the prefix, then what the model wrote."""
        return self.prefix + completion


def prompt_family(problem: Problem, tokenizer: Any = None) -> str:
    """The default family: ``chat`` when the tokenizer has a chat template, else by source."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return "chat"
    if problem.source in ("humaneval", "python"):
        return "humaneval"
    if problem.source == "mbpp" or (problem.tests is not None and problem.tests.kind == "assert"):
        return "mbpp"
    return "apps"


def build_prompt(
    problem: Problem, family: str, tokenizer: Any = None, max_source_tokens: int = 600
) -> str:
    """The prompt for ``problem`` in ``family`` (see the module docstring), at most
    ``max_source_tokens`` long; a problem that cannot fit raises BcoderError."""
    return fit_prompt(problem, family, tokenizer, max_source_tokens)[0]


def fit_prompt(
    problem: Problem,
    family: str,
    tokenizer: Any = None,
    max_source_tokens: int = 600,
    prefill: bool = False,
) -> tuple[str, PromptCut | None]:
    """:func:`build_prompt`'s prompt and what was cut from the statement to fit (None when it
    fits as it is); with ``prefill``, the prompt ends with :func:`answer_prefix`."""
    prompt = make_prompt(problem, family, tokenizer, max_source_tokens, prefill)
    return prompt.text, prompt.cut


def make_prompt(
    problem: Problem,
    family: str,
    tokenizer: Any = None,
    max_source_tokens: int = 600,
    prefill: bool = False,
) -> Prompt:
    """The prompt text of ``problem`` (no token ids), fitted to ``max_source_tokens``."""
    if family not in FAMILIES:
        raise BcoderError(f"unknown prompt family {family!r} (expected {', '.join(FAMILIES)})")
    if family == "chat" and not getattr(tokenizer, "chat_template", None):
        raise BcoderError("the chat prompt needs a tokenizer with a chat template")
    prefill = prefill and prefills(problem, family)
    tests = visible_tests(problem)
    shown = len(_shown_tests(tests)) if tests is not None and family in ("mbpp", "chat") else 0
    tokens, k = None, shown
    while True:  # as many of the tests it shows as fit: fewer only when the rest cannot fit
        render = _renderer(problem, family, tokenizer, k)
        try:
            text, question, cut = fit_statement(render, problem.text, tokenizer, max_source_tokens)
        except FixedPartsTooLong as err:
            if k <= 1:
                raise
            tokens, k = tokens or err.tokens, k - 1
            continue
        prefix = answer_prefix(problem, question) if prefill else ""
        text += prefix
        if tokens is not None:
            n = len(problem.text)
            cut = cut or PromptCut(max_source_tokens, tokens, n, n, 0)
            cut = replace(cut, tokens=tokens, tests_left_out=shown - k)
        return Prompt(family, text, [], cut, prefix)


def prefills(problem: Problem, family: str) -> bool:
    """Whether a prefilled answer applies: a stub (a signature and its docstring) asked of a chat
    model, whose answer would begin by writing the stub again."""
    return family == "chat" and is_stub(problem)


def answer_prefix(problem: Problem, question: str) -> str:
    """The start of a stub's answer, written into the prompt (the assistant turn is prefilled):
    the opening fence, the signature and the docstring. The model continues with the body."""
    return f"```python\n{code_context(problem, question).rstrip()}\n"


def _renderer(problem: Problem, family: str, tokenizer: Any, shown: int) -> Callable[[str], str]:
    """The prompt of ``problem`` as a function of its statement, showing ``shown`` tests."""
    if family == "apps":
        return lambda q: _apps(problem, q)
    if family == "mbpp":
        return lambda q: _mbpp(problem, q, shown)
    if family == "humaneval":
        return lambda q: code_context(problem, q)
    return lambda q: _chat(problem, q, tokenizer, shown)


def is_stub(problem: Problem) -> bool:
    """A function to complete from its signature and docstring (HumanEval, a .py stub)."""
    return problem.source in ("humaneval", "python") and bool(problem.starter_code)


# --- pieces --------------------------------------------------------------------------------


def is_call_based(problem: Problem) -> bool:
    """Call-based (a function is called) rather than a stdin/stdout program."""
    if problem.tests is not None and problem.tests.kind != "assert":
        return problem.tests.kind == "call"
    return bool(problem.entry_point or problem.starter_code.strip())


def visible_tests(problem: Problem) -> TestSpec | None:
    """Tests a prompt may show: all of MBPP's (the usual zero-shot setting) and a text problem's
    own tests (nothing is hidden from their author). Others stay hidden: APPS and HumanEval
    examples are already in the statement or docstring."""
    return problem.tests if problem.source in ("mbpp", "text") else None


def format_tests(spec: TestSpec, limit: int = MAX_SHOWN_TESTS) -> str:
    """Tests as a reader would write them: asserts, ``f(args) == out``, or Input/Output blocks."""
    return ("\n" if spec.kind != "stdio" else "\n\n").join(_shown_tests(spec, limit))


def _shown_tests(spec: TestSpec, limit: int = MAX_SHOWN_TESTS) -> list[str]:
    """The tests :func:`format_tests` shows, each as it writes it."""
    shown: list[str] = []
    if spec.kind == "assert":
        shown = [a.strip() for a in spec.asserts or ()]
    else:
        for inp, out in zip(spec.inputs or (), spec.outputs or (), strict=True):
            if spec.kind == "call":
                args = ", ".join(repr(a) for a in inp) if isinstance(inp, list) else repr(inp)
                shown.append(f"assert {spec.fn_name}({args}) == {out!r}")
            else:
                shown.append(f"Input:\n{str(inp).rstrip()}\nOutput:\n{str(out).rstrip()}")
    return [s for s in shown if len(s) <= _MAX_TEST_CHARS][:limit]


def _docstring_code(signature: str, doc: str) -> str:
    """``signature`` followed by ``doc`` as its docstring, indented one level below the def."""
    defs = re.findall(r"^([ \t]*)(?:async\s+)?def\s", signature, re.M)
    indent = (defs[-1] if defs else "") + "    "
    body = "\n".join(indent + line if line.strip() else "" for line in doc.strip("\n").split("\n"))
    body = body.replace('"""', '\\"\\"\\"')
    return f'{signature.rstrip()}\n{indent}"""\n{body}\n{indent}"""\n'


def code_context(problem: Problem, question: str) -> str:
    """The code the answer continues: a stub's signature + docstring, else the starter code."""
    prompt = problem.metadata.get("prompt")
    if isinstance(prompt, str) and question == problem.text:
        return prompt
    if is_stub(problem):
        return _docstring_code(problem.starter_code, question)
    return f'"""\n{question.strip()}\n"""\n' + problem.starter_code


def _apps(problem: Problem, question: str) -> str:
    prompt = "\nQUESTION:\n" + question
    if problem.starter_code:
        prompt += "\n" + problem.starter_code
    prompt += "\nUse Call-Based format" if is_call_based(problem) else "\nUse Standard Input format"
    return prompt + "\nANSWER:\n"


def _mbpp(problem: Problem, question: str, limit: int = MAX_SHOWN_TESTS) -> str:
    tests = visible_tests(problem)
    shown = format_tests(tests, limit) if tests is not None else ""
    body = question.strip()
    if shown:
        body += " Your code should pass these tests:\n\n" + shown
    return f'"""\n{body}\n"""\n' + problem.starter_code


def _chat_user(problem: Problem, question: str, limit: int = MAX_SHOWN_TESTS) -> str:
    if is_stub(problem):
        code = code_context(problem, question)
        return f"Complete this Python function; answer with the whole function.\n\n```python\n{code.rstrip()}\n```"
    parts = [question.strip()]
    if problem.starter_code.strip():
        parts.append(
            "Complete this starter code (keep its signatures):\n\n"
            f"```python\n{problem.starter_code.rstrip()}\n```"
        )
    elif is_call_based(problem) and problem.entry_point:
        parts.append(f"Write a Python function named `{problem.entry_point}`.")
    else:
        parts.append(
            "Write a Python program that reads from standard input and writes to standard output."
        )
    tests = visible_tests(problem)
    shown = format_tests(tests, limit) if tests is not None else ""
    if shown:
        parts.append(f"Your code should pass these tests:\n\n{shown}")
    return "\n\n".join(parts)


def _chat(problem: Problem, question: str, tokenizer: Any, limit: int = MAX_SHOWN_TESTS) -> str:
    return chat_text(tokenizer, SYSTEM_PROMPT, _chat_user(problem, question, limit))


def chat_text(tokenizer: Any, system: str, user: str) -> str:
    """The tokenizer's chat template with a ``system`` and a ``user`` turn, ready for the answer;
    a template that refuses a system turn gets it folded into the user turn."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # some templates refuse a system turn: fold it into the user turn
        messages = [{"role": "user", "content": f"{system}\n\n{user}"}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def completion_for(code: str, family: str, prompt: str) -> str:
    """The completion a model would have written for ``code`` under a ``family`` prompt."""
    if family == "chat":
        return f"```python\n{code.strip(chr(10))}\n```"
    if family == "humaneval" and code.startswith(prompt.rstrip("\n")):
        return code[len(prompt.rstrip("\n")) :].lstrip("\n")  # the body that continues the stub
    return code


@dataclass(frozen=True)
class Prompter:
    """Prompts and completions as token ids, made one way for sampling (solve, eval), scoring
    programs written elsewhere (rank) and training data (collect, import): if they drifted apart,
    the heads would be trained on other token sequences than they score."""

    tokenizer: Any
    settings: PromptSettings = PromptSettings()  # a checkpoint's (or the defaults)
    is_seq2seq: bool = False  # an encoder-decoder reads the plain problem, no chat turns

    def family(self, problem: Problem) -> str:
        """The checkpoint's family, else :func:`prompt_family`'s choice."""
        if self.settings.family != "auto":
            return self.settings.family
        return prompt_family(problem, None if self.is_seq2seq else self.tokenizer)

    def prompt(self, problem: Problem) -> tuple[str, str, list[int]]:
        """(family, prompt text, prompt token ids) for ``problem``."""
        p = self.fitted(problem)
        return p.family, p.text, p.ids

    def fitted(self, problem: Problem, prefill: bool = False) -> Prompt:
        """The prompt of ``problem``, tokenised; with ``prefill``, a stub's answer starts in the
        prompt (:func:`answer_prefix`) where it applies (:func:`prefills`)."""
        family = self.family(problem)
        limit = self.settings.max_source_tokens
        prompt = make_prompt(problem, family, self.tokenizer, limit, prefill)
        ids = self.tokenizer(prompt.text, add_special_tokens=family != "chat").input_ids
        return replace(prompt, ids=list(ids))

    def actions(
        self, code: str, family: str, prompt: str, limit: int | None = None
    ) -> tuple[list[int], str, str]:
        """(action ids, completion, finish reason) of ``code`` written as the policy would:
        inside a fenced block for chat prompts (ending at the closing fence, where sampling
        stops), else followed by EOS; cut to ``limit`` tokens when given."""
        tok = self.tokenizer
        completion = completion_for(code, family, prompt)
        ids = tok(completion, add_special_tokens=False).input_ids
        reason = "code_block_end" if family == "chat" else "eos"
        if family != "chat":
            ids = ids + [tok.eos_token_id]
        if limit is not None and len(ids) > limit:
            ids, reason = ids[:limit], "length"
        return ids or [tok.eos_token_id], completion, reason
