"""What the editor shows after an insertion: hover, inlay hints and diagnostics with B-Coder's values.

An :class:`Implemented` remembers which candidate is in the buffer and the exact lines inserted.
It is anchored again on every request: the function is found by its qualname and its body must
still start with those lines; once the user edits them the values are no longer shown (they would
describe code that is not there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lsprotocol import types as lsp

from bcoder.core.types import Candidate, SolveResult, TokenScore
from bcoder.lsp.edits import Body, Span
from bcoder.lsp.stubs import Buffer


@dataclass
class Implemented:
    """A function whose body B-Coder wrote, and the ranked candidates it can step through."""

    uri: str
    qualname: str
    def_line: int  # where the function was (a hint when several share the qualname)
    result: SolveResult
    bodies: dict[int, Body]  # candidate index -> its extracted body (usable candidates only)
    current: int  # the candidate index in the buffer
    lines: list[str] = field(default_factory=list)  # the inserted lines, as in the buffer
    spans: list[Span] = field(default_factory=list)

    @property
    def usable(self) -> list[int]:
        """Candidate indices (= rank - 1) that gave a body, best first."""
        return sorted(self.bodies)

    @property
    def candidate(self) -> Candidate:
        return self.result.candidates[self.current]

    def locate(self, buf: Buffer) -> int | None:
        """The buffer line where the inserted lines start, or None if they are gone or edited."""
        fn = buf.find(self.qualname, near=self.def_line)
        if fn is None:
            return None
        k, n = fn.body_line, len(self.lines)
        if [line.rstrip("\r") for line in buf.lines[k : k + n]] != self.lines:
            return None
        self.def_line = fn.def_line
        return k

    def summary(self) -> str:
        c = self.candidate
        outcome = f" · {c.outcome}" if c.outcome else ""
        return (
            f"B-Coder #{self.current + 1} of {len(self.result.candidates)}"
            f" · R~ {c.reward:+.3f}{outcome}"
        )


def _cell(x: float) -> str:
    return f"{x:+.3f}"


def token_markdown(item: Implemented, token: TokenScore) -> str:
    """Hover text for one generated token: its values and the candidate's R~."""
    c = item.candidate
    tests = ""
    if c.tests:
        passed = sum(t.verdict == "pass" for t in c.tests)
        tests = f" ({passed}/{len(c.tests)} tests)"
    preferred = ""
    if token.preferred and token.preferred != token.text:
        preferred = f"\n\nThe model would rather have written `{token.preferred!r}` here."
    return (
        f"**{item.summary()}**{tests}\n\n"
        f"token `{token.text!r}`\n\n"
        "| Q | V | A | r~ | log π |\n|---|---|---|---|---|\n"
        f"| {_cell(token.q)} | {_cell(token.v)} | {_cell(token.advantage)} "
        f"| {_cell(token.reward)} | {token.logprob:.3f} |"
        f"{preferred}"
    )


def hover(item: Implemented, buf: Buffer, line: int, col: int) -> lsp.Hover | None:
    """The hover for character column ``col`` of buffer ``line``, if a generated token is there."""
    k = item.locate(buf)
    if k is None or not k <= line < k + len(item.lines):
        return None
    for off, start, end, ti in item.spans:
        if k + off == line and start <= col < end:
            rng = lsp.Range(
                lsp.Position(line, buf.units(line, start)), lsp.Position(line, buf.units(line, end))
            )
            value = token_markdown(item, item.candidate.tokens[ti])
            return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, value), rng)
    summary = f"**{item.summary()}** — hover a token for its Q, V, A and r~."
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, summary))


def inlay_hints(item: Implemented, buf: Buffer, first: int, last: int) -> list[lsp.InlayHint]:
    """R~ of the candidate after its first line; per line, the sum of r~ and the lowest A."""
    k = item.locate(buf)
    if k is None:
        return []
    tokens = item.candidate.tokens
    by_line: dict[int, list[int]] = {}
    for off, _, _, ti in item.spans:
        by_line.setdefault(off, []).append(ti)
    hints = []
    for off, line in enumerate(item.lines):
        n = k + off
        if not first <= n <= last or not line.strip():
            continue
        parts = []
        if off == 0 or not any(item.lines[:off]):
            parts.append(item.summary())
        if off in by_line:
            ts = [tokens[i] for i in dict.fromkeys(by_line[off])]
            low = min(ts, key=lambda t: t.advantage)
            parts.append(f"r~ {sum(t.reward for t in ts):+.3f} · min A {low.advantage:+.2f}")
        if parts:
            pos = lsp.Position(n, buf.units(n, len(buf.lines[n].rstrip())))
            hints.append(
                lsp.InlayHint(position=pos, label="  " + " · ".join(parts), padding_left=True)
            )
    return hints


def diagnostics(item: Implemented, buf: Buffer, threshold: float) -> list[lsp.Diagnostic]:
    """An information diagnostic on each token whose advantage is below ``threshold``."""
    k = item.locate(buf)
    if k is None:
        return []
    tokens = item.candidate.tokens
    out = []
    for off, start, end, ti in item.spans:
        t = tokens[ti]
        if t.advantage >= threshold or not t.text.strip():
            continue
        n = k + off
        rng = lsp.Range(lsp.Position(n, buf.units(n, start)), lsp.Position(n, buf.units(n, end)))
        rather = f"; it preferred {t.preferred!r}" if t.preferred else ""
        out.append(
            lsp.Diagnostic(
                range=rng,
                message=(
                    f"B-Coder was unsure here: A = {t.advantage:+.2f}{rather} "
                    f"(V = {t.v:+.3f}, r~ = {t.reward:+.3f})"
                ),
                severity=lsp.DiagnosticSeverity.Information,
                source="bcoder",
                code="unsure-token",
            )
        )
    return out


def candidate_list(item: Implemented, with_tokens: bool) -> list[dict]:
    """The ranked candidates as plain dicts (the ``bcoder/candidates`` answer and quick pick),
    with their verdicts on the tests the model wrote (``generated``, in the tests' order) and
    how many of those they pass (``generatedPassed``)."""
    out = []
    for i, c in enumerate(item.result.candidates):
        d = (
            c.to_dict()
            if with_tokens
            else {
                "code": c.code,
                "reward": c.reward,
                "outcome": c.outcome,
                "count": c.count,
                "generated": [
                    {"verdict": t.verdict, "detail": t.detail, "value": t.value}
                    for t in c.generated
                ],
            }
        )
        d.update(rank=i + 1, usable=i in item.bodies, current=i == item.current)
        d["generatedPassed"] = sum(t.verdict == "pass" for t in c.generated)
        if i in item.bodies:
            d["body"] = "\n".join(item.bodies[i].lines)
        out.append(d)
    return out
