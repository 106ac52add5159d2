"""Keep the tests the model wrote: put those the inserted body passes into the function's
docstring as doctests, or into a pytest file beside the module.

Offered (:func:`actions`) on a function B-Coder implemented whose result has generated tests, while
the inserted body is in the buffer unedited (the verdicts are that body's), for a top-level
function, when at least one passing test is not there yet. Before writing, the sandbox tells what
the body returns for each call (:func:`bcoder.lsp.generated.returned_reprs`), so that a doctest's
expected text and the choice of ``==`` or ``pytest.approx`` hold for this body. The edits go
through ``workspace/applyEdit``; a missing test file is created with a ``CreateFile``
operation (the client must support it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp
from pygls.uris import from_fs_path, to_fs_path

from bcoder.lsp.apply import workspace_edit
from bcoder.lsp.doctests import docstring_edit, example_lines, missing
from bcoder.lsp.generated import Test, offered, returned_reprs
from bcoder.lsp.language_server import BcoderServer
from bcoder.lsp.pytests import additions, assert_line, file_for_tests, module_name, new_tests
from bcoder.lsp.stubs import Buffer, FunctionInfo
from bcoder.lsp.values import Implemented

ADD_DOCTESTS = "bcoder.addGeneratedDoctests"
ADD_PYTEST = "bcoder.addGeneratedPytest"


def _function(item: Implemented, buf: Buffer) -> FunctionInfo | None:
    """The implemented function, while the body B-Coder inserted is there unedited."""
    return buf.find(item.qualname, near=item.def_line) if item.locate(buf) is not None else None


def _count(tests: list[Any]) -> str:
    return f"{len(tests)} generated test{'s' * (len(tests) != 1)}"


def source_path(uri: str) -> Path | None:
    """The file of a ``file:`` document (None for an unsaved or remote one)."""
    if urlparse(uri).scheme != "file":
        return None
    path = to_fs_path(uri)
    return Path(path) if path else None


def _test_file(ls: BcoderServer, source: Path) -> tuple[str, str | None]:
    """The test file's uri and its text: the editor's copy if open, else the disk's; None when
    it does not exist."""
    uri = from_fs_path(str(file_for_tests(source))) or file_for_tests(source).as_uri()
    doc = ls.workspace.text_documents.get(unquote(uri))
    if doc is not None:
        return uri, doc.source
    try:
        return uri, file_for_tests(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        return uri, None
    except (OSError, UnicodeDecodeError):
        return uri, ""  # unreadable here: appended to by the editor, never read again


def actions(ls: BcoderServer, uri: str, item: Implemented, buf: Buffer) -> list[tuple[str, str]]:
    """(title, command) of the keep actions that apply to ``item`` now."""
    fn = _function(item, buf)
    tests = offered(item, fn.kind, fn.name) if fn is not None else []
    if fn is None or not tests:
        return []
    out = []
    if doc := missing(tests, fn.docstring):
        out.append((f"B-Coder: add the {_count(doc)} this body passes as doctests", ADD_DOCTESTS))
    source = source_path(uri)
    if source is not None and (py := new_tests(tests, _test_file(ls, source)[1] or "", fn.name)):
        name = file_for_tests(source).name
        title = f"B-Coder: add the {_count(py)} this body passes to a pytest file ({name})"
        out.append((title, ADD_PYTEST))
    return out


async def _reprs(ls: BcoderServer, item: Implemented, tests: list[Test]) -> list[str | None]:
    """What the inserted candidate returns for each test's call, from the sandbox (off the loop)."""

    def run() -> list[str | None]:
        warn = lambda message: ls.call_soon(ls.log, message, lsp.MessageType.Warning)  # noqa: E731
        return returned_reprs(item.candidate.code, tests, ls.settings.timeout, warn)

    return await asyncio.wrap_future(ls.pool.submit(run))


def _located(ls: BcoderServer, item: Implemented) -> tuple[Buffer, FunctionInfo] | str:
    """The buffer and the function, or why the tests cannot go in."""
    buf = ls.document(item.uri)
    fn = _function(item, buf) if buf is not None else None
    if buf is None or fn is None:
        return f"the body of `{item.qualname}` was edited since B-Coder inserted it"
    if not offered(item, fn.kind, fn.name):
        return f"`{item.qualname}` passes none of the tests the model wrote (or is not top-level)"
    return buf, fn


async def _apply(ls: BcoderServer, edit: lsp.WorkspaceEdit, label: str) -> str:
    """Ask the editor to apply ``edit``; "" or why it did not."""
    answer = await ls.workspace_apply_edit_async(
        lsp.ApplyWorkspaceEditParams(edit=edit, label=label)
    )
    return "" if answer.applied else f"the editor did not apply the edit ({answer.failure_reason})"


async def add_doctests(ls: BcoderServer, item: Implemented) -> dict[str, Any]:
    """Put the passing generated tests the docstring lacks into it, as doctests."""
    found = _located(ls, item)
    if isinstance(found, str):
        return ls.fail(f"B-Coder: {found}")
    tests = missing(offered(item, found[1].kind, found[1].name), found[1].docstring)
    if not tests:
        return ls.fail(f"B-Coder: the docstring of `{item.qualname}` has its generated tests")
    reprs = dict(zip([t.call for t in tests], await _reprs(ls, item, tests), strict=True))
    found = _located(ls, item)  # the buffer may have changed while the sandbox ran
    if isinstance(found, str):
        return ls.fail(f"B-Coder: {found}")
    buf, fn = found
    keep = [t for t in missing(offered(item, fn.kind, fn.name), fn.docstring) if t.call in reprs]
    edit = docstring_edit(buf, fn, [example_lines(t, reprs[t.call]) for t in keep])
    if not keep or isinstance(edit, str):
        why = edit if isinstance(edit, str) else "the docstring has them now"
        return ls.fail(f"B-Coder: cannot add doctests to `{fn.qualname}`: {why}")
    (l0, c0), (l1, c1), text = edit
    rng = lsp.Range(lsp.Position(l0, buf.units(l0, c0)), lsp.Position(l1, buf.units(l1, c1)))
    label = f"B-Coder: {_count(keep)} as doctests of {fn.qualname}"
    if error := await _apply(ls, workspace_edit(ls, item.uri, [lsp.TextEdit(rng, text)]), label):
        return ls.fail(f"B-Coder: {error}")
    ls.log(label)
    ls.publish(item.uri)  # the body moved down: its diagnostics with it
    return {"applied": True, "qualname": fn.qualname, "added": len(keep)}


def _can_create(ls: BcoderServer) -> bool:
    """Whether the client creates files in a workspace edit (resource operations only exist in
    ``documentChanges``: Neovim lists ``create`` without saying ``documentChanges``, and takes
    them)."""
    caps = ls.client_capabilities.workspace
    edit = caps.workspace_edit if caps is not None else None
    operations = (edit.resource_operations or []) if edit is not None else []
    return lsp.ResourceOperationKind.Create in operations


def _file_edit(ls: BcoderServer, uri: str, text: str | None, adds: list) -> lsp.WorkspaceEdit:
    """Insert ``adds`` (``(line, text)``, line -1: the end) into the test file ``uri`` whose text
    is ``text``; a file that does not exist (``text`` None) is created first."""
    if text is None:
        ident = lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None)
        start = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        create = lsp.CreateFile(uri=uri, options=lsp.CreateFileOptions(ignore_if_exists=True))
        insert = lsp.TextDocumentEdit(ident, [lsp.TextEdit(start, "".join(t for _, t in adds))])
        return lsp.WorkspaceEdit(document_changes=[create, insert])
    encoding = ls.workspace.position_encoding or "utf-16"
    buf = ls.document(uri) or Buffer(text, str(getattr(encoding, "value", encoding)))
    edits = []
    for line, added in adds:
        at, new = (line, 0), added
        if not 0 <= line < len(buf.lines):  # the end: after its last line
            at, new = buf.line_end(len(buf.lines) - 1), ("" if line < 0 else buf.eol) + added
        pos = lsp.Position(at[0], buf.units(*at))
        edits.append(lsp.TextEdit(lsp.Range(pos, pos), new))
    return workspace_edit(ls, uri, edits)


async def add_pytest(ls: BcoderServer, item: Implemented) -> dict[str, Any]:
    """Put the passing generated tests into ``test_<module>.py`` beside the module."""
    found, source = _located(ls, item), source_path(item.uri)
    if isinstance(found, str) or source is None:
        return ls.fail(f"B-Coder: {found if isinstance(found, str) else 'not a file on disk'}")
    uri, text = _test_file(ls, source)
    tests = new_tests(offered(item, found[1].kind, found[1].name), text or "", found[1].name)
    if not tests:
        return ls.fail(f"B-Coder: {file_for_tests(source).name} has the generated tests already")
    if text is None and not _can_create(ls):
        return ls.fail(
            f"B-Coder: the editor cannot create {file_for_tests(source).name} (no CreateFile in "
            "workspace edits): create it, empty, and ask again"
        )
    lines = [assert_line(t, r) for t, r in zip(tests, await _reprs(ls, item, tests), strict=True)]
    kept = [line for line in lines if line is not None]
    if not kept:
        return ls.fail("B-Coder: pytest cannot compare these answers (floats in nested values)")
    fn = found[1].name
    origin = f"{fn}: tests written by B-Coder's model, passed by the body it wrote"
    if item.result.run_id:
        origin += f" (run {item.result.run_id})"
    adds = additions(text or "", module_name(source), fn, kept, origin)
    label = f"B-Coder: {_count(kept)} of {fn} in {file_for_tests(source).name}"
    if error := await _apply(ls, _file_edit(ls, uri, text, adds), label):
        return ls.fail(f"B-Coder: {error}")
    ls.log(
        label + (f" ({len(lines) - len(kept)} left out: nested floats)" if None in lines else "")
    )
    return {"applied": True, "qualname": item.qualname, "file": uri, "added": len(kept)}
