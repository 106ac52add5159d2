"""The B-Coder language server (pygls): thin handlers that translate between LSP and bcoder.

Features:
- code action "B-Coder: implement from docstring" on a stub (and, on a function B-Coder
  implemented, "B-Coder: next candidate" and, when the model wrote tests that its body passes,
  "B-Coder: add the N generated tests this body passes as doctests" / "... to a pytest file"),
  backed by the commands below;
- commands ``bcoder.implement`` (arguments: uri, position), ``bcoder.nextCandidate`` (uri,
  position), ``bcoder.showCandidate`` (uri, position, rank), ``bcoder.listCandidates`` (uri,
  position), ``bcoder.addGeneratedDoctests`` and ``bcoder.addGeneratedPytest`` (uri, position),
  ``bcoder.implementFromRun`` (uri, position, runId) — a position is ``{"line": n,
  "character": n}``; the arguments may also be one object ``{"uri": ..., "position": ...,
  "rank": ..., "runId": ...}``;
- custom request ``bcoder/candidates`` (params ``{"textDocument": {"uri"}, "position"?}``): the
  ranked candidates of the implemented functions with their per-token values, and the tests the
  model wrote with each candidate's verdicts on them;
- hover, inlay hints and information diagnostics with per-token V, A, r~ on generated lines;
- settings from ``initializationOptions``, ``workspace/configuration`` and
  ``workspace/didChangeConfiguration`` (see :mod:`bcoder.lsp.settings`).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams

from bcoder.lsp.apply import switch_candidate
from bcoder.lsp.generated import summary
from bcoder.lsp.implement import implement_at, implement_from_run
from bcoder.lsp.keep import ADD_DOCTESTS, ADD_PYTEST, add_doctests, add_pytest
from bcoder.lsp.keep import actions as actions_to_keep
from bcoder.lsp.language_server import BcoderServer
from bcoder.lsp.values import candidate_list, hover, inlay_hints

IMPLEMENT = "bcoder.implement"
NEXT = "bcoder.nextCandidate"
SHOW = "bcoder.showCandidate"
LIST = "bcoder.listCandidates"
FROM_RUN = "bcoder.implementFromRun"
CANDIDATES = "bcoder/candidates"
ACTION_KIND = lsp.CodeActionKind.RefactorRewrite

server = BcoderServer()


def _plain(value: Any) -> Any:
    """pygls hands custom-request params over as namedtuples; make them dicts and lists again."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _position(value: Any) -> tuple[int, int]:
    value = _plain(value)
    if isinstance(value, dict):
        line, char = value.get("line"), value.get("character", 0)
        if isinstance(line, int) and isinstance(char, int) and line >= 0 and char >= 0:
            return line, char
    raise JsonRpcInvalidParams(f"expected a position {{line, character}}, got {value!r}")


def _target(args: tuple[Any, ...], with_rank: bool = False) -> tuple[str, tuple[int, int], Any]:
    """(uri, position, rank) from ``[uri, position(, rank)]`` or ``[{uri, position(, rank)}]``
    (``runId`` stands for rank in the object form of ``bcoder.implementFromRun``)."""
    args = tuple(_plain(a) for a in args)
    if len(args) == 1 and isinstance(args[0], dict):
        d = args[0]
        uri = d.get("uri") or (d.get("textDocument") or {}).get("uri")
        args = (uri, d.get("position"), d.get("rank", d.get("runId")))
    if len(args) < 2 or not isinstance(args[0], str) or not args[0]:
        raise JsonRpcInvalidParams("expected arguments [uri, {line, character}]")
    rank = args[2] if len(args) > 2 else None
    if with_rank and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
        raise JsonRpcInvalidParams(f"expected a candidate rank >= 1, got {rank!r}")
    return args[0], _position(args[1]), rank


def _is_python(uri: str) -> bool:
    doc = server.workspace.text_documents.get(unquote(uri))
    language = getattr(doc, "language_id", None)
    return language == "python" or uri.endswith((".py", ".pyi"))


@server.feature(lsp.INITIALIZE)
def initialize(ls: BcoderServer, params: lsp.InitializeParams) -> None:
    if params.initialization_options is not None:
        ls.apply_settings(params.initialization_options, "initializationOptions")


@server.feature(lsp.INITIALIZED)
async def initialized(ls: BcoderServer, params: lsp.InitializedParams) -> None:
    ls.loop = asyncio.get_running_loop()
    await ls.pull_settings()


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(
    ls: BcoderServer, params: lsp.DidChangeConfigurationParams
) -> None:
    settings = params.settings
    if isinstance(settings, dict) and isinstance(settings.get("bcoder"), dict):
        ls.apply_settings(settings, "workspace/didChangeConfiguration")
    else:  # VS Code and most clients send nothing useful: ask
        await ls.pull_settings()
    for uri in {u for u, _ in ls.implemented}:
        ls.publish(uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: BcoderServer, params: Any) -> None:
    uri = params.text_document.uri
    if any(u == uri for u, _ in ls.implemented):
        ls.publish(uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: BcoderServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    for key in [k for k in ls.implemented if k[0] == uri]:
        del ls.implemented[key]
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=[ACTION_KIND])
)
def code_action(ls: BcoderServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    uri = params.text_document.uri
    only = params.context.only
    if only and not any(ACTION_KIND.value.startswith(str(getattr(k, "value", k))) for k in only):
        return None
    buf = ls.document(uri)
    if buf is None or not _is_python(uri):
        return None
    start = params.range.start
    fn = buf.function_at((start.line, buf.column(start.line, start.character)))
    if fn is None:
        return None
    where = {"line": start.line, "character": start.character}
    actions = []
    if fn.is_stub:
        title = "B-Coder: implement from docstring"
        actions.append(
            lsp.CodeAction(
                title,
                kind=ACTION_KIND,
                command=lsp.Command(title, IMPLEMENT, arguments=[uri, where]),
            )
        )
    item = ls.implemented.get((uri, fn.qualname))
    if item is not None and len(item.usable) > 1 and item.locate(buf) is not None:
        title = (
            f"B-Coder: next candidate (now #{item.current + 1} of {len(item.result.candidates)})"
        )
        actions.append(
            lsp.CodeAction(
                title, kind=ACTION_KIND, command=lsp.Command(title, NEXT, arguments=[uri, where])
            )
        )
    for title, name in actions_to_keep(ls, uri, item, buf) if item is not None else []:
        command = lsp.Command(title, name, arguments=[uri, where])
        actions.append(lsp.CodeAction(title, kind=ACTION_KIND, command=command))
    return actions or None


@server.command(IMPLEMENT)
async def implement(ls: BcoderServer, *args: Any) -> dict[str, Any]:
    uri, pos, _ = _target(args)
    ls.loop = asyncio.get_running_loop()
    return await implement_at(ls, uri, pos)


def _implemented(ls: BcoderServer, uri: str, pos: tuple[int, int]) -> Any:
    item = ls.find_implemented(uri, pos)
    if item is None:
        return None, ls.fail(
            "B-Coder: no candidates here — run “B-Coder: implement from docstring” on a stub first"
        )
    return item, None


@server.command(NEXT)
async def next_candidate(ls: BcoderServer, *args: Any) -> dict[str, Any]:
    uri, pos, _ = _target(args)
    item, error = _implemented(ls, uri, pos)
    return error or await switch_candidate(ls, item, None)


@server.command(SHOW)
async def show_candidate(ls: BcoderServer, *args: Any) -> dict[str, Any]:
    uri, pos, rank = _target(args, with_rank=True)
    item, error = _implemented(ls, uri, pos)
    if error:
        return error
    if rank > len(item.result.candidates):
        raise JsonRpcInvalidParams(
            f"there are {len(item.result.candidates)} candidates, not {rank}"
        )
    return await switch_candidate(ls, item, rank - 1)


@server.command(ADD_DOCTESTS)
async def add_generated_doctests(ls: BcoderServer, *args: Any) -> dict[str, Any]:
    uri, pos, _ = _target(args)
    item, error = _implemented(ls, uri, pos)
    return error or await add_doctests(ls, item)


@server.command(ADD_PYTEST)
async def add_generated_pytest(ls: BcoderServer, *args: Any) -> dict[str, Any]:
    uri, pos, _ = _target(args)
    item, error = _implemented(ls, uri, pos)
    return error or await add_pytest(ls, item)


@server.command(FROM_RUN)
async def implement_run(ls: BcoderServer, *args: Any) -> dict[str, Any]:
    uri, pos, run_id = _target(args)
    if not isinstance(run_id, str) or not run_id:
        raise JsonRpcInvalidParams(f"expected a run id (bcoder runs list), got {run_id!r}")
    ls.loop = asyncio.get_running_loop()
    return await implement_from_run(ls, uri, pos, run_id)


@server.command(LIST)
def list_candidates(ls: BcoderServer, *args: Any) -> dict[str, Any]:
    uri, pos, _ = _target(args)
    item, error = _implemented(ls, uri, pos)
    if error:
        return error
    return {
        "qualname": item.qualname,
        "candidates": candidate_list(item, with_tokens=False),
        "generated": summary(item.result),
    }


@server.feature(CANDIDATES)
def candidates(ls: BcoderServer, params: Any) -> list[dict[str, Any]]:
    p = _plain(params)
    doc = p.get("textDocument") if isinstance(p, dict) else None
    uri = doc.get("uri") if isinstance(doc, dict) else None
    if not isinstance(uri, str):
        raise JsonRpcInvalidParams("expected {textDocument: {uri}, position?}")
    if p.get("position") is not None:
        item = ls.find_implemented(uri, _position(p["position"]))
        items = [item] if item is not None else []
    else:
        items = [it for (u, _), it in ls.implemented.items() if u == uri]
    return [
        {
            "qualname": it.qualname,
            "current": it.current + 1,
            "runId": it.result.run_id,
            "heads": it.result.heads,
            "settings": it.result.settings,
            "candidates": candidate_list(it, with_tokens=True),
            "generated": summary(it.result),
        }
        for it in items
    ]


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: BcoderServer, params: lsp.HoverParams) -> lsp.Hover | None:
    uri, pos = params.text_document.uri, params.position
    item = ls.find_implemented(uri, (pos.line, 0))
    buf = ls.document(uri)
    if item is None or buf is None or pos.line >= len(buf.lines):
        return None
    return hover(item, buf, pos.line, buf.column(pos.line, pos.character))


@server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
def on_inlay_hint(ls: BcoderServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint] | None:
    uri = params.text_document.uri
    buf = ls.document(uri)
    if buf is None or not ls.settings.inlayHints:
        return None
    hints = []
    for (u, _), item in list(ls.implemented.items()):
        if u == uri:
            hints += inlay_hints(item, buf, params.range.start.line, params.range.end.line)
    return hints


@server.feature(lsp.SHUTDOWN)
def on_shutdown(ls: BcoderServer, params: Any) -> None:
    ls.jobs.cancel_all("the server is shutting down")


def start(tcp: tuple[str, int] | None = None) -> None:
    """Serve on stdio, or on TCP ``(host, port)``."""
    try:
        if tcp is None:
            server.start_io()
        else:
            server.start_tcp(*tcp)
    finally:  # the client went away: stop running jobs so that their threads let the process exit
        server.jobs.cancel_all("the connection to the client closed")
