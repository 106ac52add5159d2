"""A test editor for the LSP tests: the client's open documents and the files on disk, the
server's workspace edits applied as an editor applies them, and the requests the tests send."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pygls.uris import to_fs_path


class Editor:
    """Applies the server's workspace edits (text edits, and CreateFile) as an editor does: to
    the buffer when the document is open (telling the server with didChange), else to the file."""

    def __init__(self, client) -> None:
        self.client = client
        self.text: dict[str, str] = {}
        self.version: dict[str, int] = {}

    def open(self, uri: str, text: str) -> None:
        self.text[uri], self.version[uri] = text, 1
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "python", 1, text))
        )

    def apply(self, params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
        for change in params.edit.document_changes or []:
            if isinstance(change, lsp.CreateFile):
                path = Path(to_fs_path(change.uri))
                assert not path.exists(), "the server creates only missing files"
                path.write_text("")
            else:
                self.edit(change.text_document.uri, change.edits)
        for uri, edits in (params.edit.changes or {}).items():
            self.edit(uri, edits)
        return lsp.ApplyWorkspaceEditResult(applied=True)

    def edit(self, uri: str, edits: list[lsp.TextEdit]) -> None:
        path = Path(to_fs_path(uri))
        text = self.text[uri] if uri in self.text else path.read_text()
        for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character))[::-1]:
            text = (
                text[: _offset(text, e.range.start)]
                + e.new_text
                + text[_offset(text, e.range.end) :]
            )
        if uri not in self.text:
            path.write_text(text)
            return
        self.text[uri] = text
        self.version[uri] += 1
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.version[uri]),
                [lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )


def attach_editor(client) -> Editor:
    """An Editor for ``client`` that receives the server's workspace/applyEdit requests."""
    editor = Editor(client)
    client.feature(lsp.WORKSPACE_APPLY_EDIT)(lambda params: editor.apply(params))
    return editor


def _offset(text: str, pos: lsp.Position) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[: pos.line]) + pos.character  # ASCII sources


async def command(client, name: str, *args):
    return await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=name, arguments=list(args))
    )


async def action_titles(client, uri: str, line: int) -> list[str]:
    """The titles of the code actions offered at the start of ``line``."""
    got = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(uri),
            lsp.Range(lsp.Position(line, 0), lsp.Position(line, 0)),
            lsp.CodeActionContext(diagnostics=[]),
        )
    )
    return [a.title for a in got or []]


def line_of(text: str, needle: str) -> int:
    """The first line of ``text`` that contains ``needle``."""
    return next(i for i, line in enumerate(text.split("\n")) if needle in line)


def at(text: str, needle: str, character: int = 0) -> dict:
    """The position (as a command argument) of ``character`` on the first line holding
    ``needle``."""
    return {"line": line_of(text, needle), "character": character}
