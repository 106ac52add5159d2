"""Errors a user can act on. The CLI, TUI and LSP show their message on one line, no traceback."""


class BcoderError(Exception):
    """A problem with the user's input or environment, explained in the message."""
