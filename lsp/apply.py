"""Putting a candidate into the document, and switching to another of the ranked candidates.

A candidate's body (:mod:`bcoder.lsp.edits`) replaces a range inside the function with one
``workspace/applyEdit``; the server then remembers what went in (the :class:`Implemented`) and
publishes its diagnostics. :func:`switch_candidate` puts another candidate in place of the one in
the buffer, as long as the user has not edited the inserted lines.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from lsprotocol import types as lsp

from bcoder.core.types import SolveResult
from bcoder.lsp.edits import Body, Insertion, extract_body, place
from bcoder.lsp.language_server import BcoderServer
from bcoder.lsp.stubs import Buffer
from bcoder.lsp.values import Implemented


def usable_bodies(result: SolveResult, entry: str, imports: Any) -> dict[int, Body]:
    """Candidate index -> the body to insert, for the candidates that give a non-empty one."""
    bodies = {}
    for i, c in enumerate(result.candidates):
        body = extract_body(c.code, entry, imports)
        if body is not None and any(line.strip() for line in body.lines):
            bodies[i] = body
    return bodies


async def show(
    ls: BcoderServer, item: Implemented, buf: Buffer, start: tuple[int, int], end: tuple[int, int]
) -> dict[str, Any]:
    """Replace ``[start, end)`` of the buffer by the current candidate's body."""
    fn = buf.find(item.qualname, near=item.def_line)
    assert fn is not None
    ins = place(item.bodies[item.current], fn.body_indent, item.candidate)
    rng = lsp.Range(
        lsp.Position(start[0], buf.units(*start)),
        lsp.Position(end[0], buf.units(*end)),
    )
    edit = lsp.TextEdit(range=rng, new_text=buf.eol + ins.text(buf.eol))
    label = f"B-Coder: {item.qualname} (candidate #{item.current + 1})"
    answer = await ls.workspace_apply_edit_async(
        lsp.ApplyWorkspaceEditParams(edit=workspace_edit(ls, item.uri, [edit]), label=label)
    )
    if not answer.applied:
        return ls.fail(f"B-Coder: the editor did not apply the edit ({answer.failure_reason})")
    item.lines, item.spans = ins.lines, ins.spans
    ls.implemented[(item.uri, item.qualname)] = item
    ls.log(f"{label}: {item.summary()}")
    ls.publish(item.uri)
    caps = ls.client_capabilities.workspace
    refresh = caps and caps.inlay_hint and caps.inlay_hint.refresh_support
    if refresh:
        ls.workspace_inlay_hint_refresh(None)
    return _applied(item, ins)


def workspace_edit(ls: BcoderServer, uri: str, edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
    """``edits`` of document ``uri``, on its current version when the client takes versioned
    changes (no version for a file the editor has not opened)."""
    caps = ls.client_capabilities.workspace
    if caps and caps.workspace_edit and caps.workspace_edit.document_changes:
        doc = ls.workspace.text_documents.get(unquote(uri))
        version = doc.version if doc is not None else None
        ident = lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(ident, edits)])
    return lsp.WorkspaceEdit(changes={uri: edits})


def _applied(item: Implemented, ins: Insertion) -> dict[str, Any]:
    """The command's result once the candidate is in the buffer."""
    c = item.candidate
    return {
        "applied": True,
        "qualname": item.qualname,
        "rank": item.current + 1,
        "of": len(item.result.candidates),
        "ranker": item.result.ranker,
        "reward": c.reward,
        "outcome": c.outcome,
        "runId": item.result.run_id,
        "usable": [i + 1 for i in item.usable],
        "lines": len(ins.lines),
    }


async def switch_candidate(
    ls: BcoderServer, item: Implemented, index: int | None
) -> dict[str, Any]:
    """Put candidate ``index`` (default: the next usable one) in place of the current one."""
    buf = ls.document(item.uri)
    k = item.locate(buf) if buf is not None else None
    if buf is None or k is None:
        return ls.fail(
            f"B-Coder: the body of `{item.qualname}` was edited since B-Coder inserted it; "
            "not replacing it"
        )
    usable = item.usable
    if index is None:
        later = [i for i in usable if i > item.current]
        index = later[0] if later else usable[0]
    if index not in item.bodies:
        return ls.fail(f"B-Coder: candidate #{index + 1} has no usable body")
    item.current = index
    start = (k - 1, len(buf.lines[k - 1].rstrip("\r")))
    last = k + len(item.lines) - 1
    return await show(ls, item, buf, start, (last, len(buf.lines[last].rstrip("\r"))))
