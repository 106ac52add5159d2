"""The B-Coder language server (``bcoder lsp``); see docs/editors.md.

Modules: ``stubs`` (functions found with tree-sitter), ``edits`` (a candidate's body, placed),
``values`` (hover, inlay hints, diagnostics), ``settings``, ``jobs`` (engine and job threads),
``protocol`` (pygls glue), ``actions`` (the server's state and long actions), ``server`` (handlers).
The VS Code client is in ``vscode/``.
"""
