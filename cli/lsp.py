"""``bcoder lsp [--tcp HOST:PORT]``: the language server, on stdio (what editors start) or TCP."""

from __future__ import annotations

import typer

from bcoder.core.errors import BcoderError


def register(app: typer.Typer) -> None:
    app.command("lsp")(lsp_command)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BcoderError(f"--tcp expects HOST:PORT (e.g. 127.0.0.1:2087), not {value!r}")
    return host, int(port)


def lsp_command(
    tcp: str = typer.Option(
        None, "--tcp", metavar="HOST:PORT", help="Listen on TCP instead of stdio."
    ),
    log_file: str = typer.Option(
        None, "--log-file", help="Write the server's own log (debug level) to this file."
    ),
) -> None:
    """Run the B-Coder language server (code action: implement a stub from its docstring).

    Editors start it on stdio; settings arrive through the LSP client (see docs/editors.md).
    """
    import logging

    address = _host_port(tcp) if tcp else None
    if log_file:
        logging.basicConfig(filename=log_file, level=logging.DEBUG)
    else:  # stdout is the protocol channel: only warnings, and only to stderr
        logging.basicConfig(level=logging.WARNING)
    from bcoder.lsp.server import start

    start(address)
