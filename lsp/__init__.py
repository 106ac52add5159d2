"""The B-Coder language server (``bcoder lsp``); see docs/editors.md.

Modules: ``stubs`` (functions found with tree-sitter), ``edits`` (a candidate's body, placed),
``values`` (hover, inlay hints, diagnostics), ``settings``, ``jobs`` (engine and job threads),
``protocol`` (pygls glue), ``language_server`` (the server's state, messages, progress and
diagnostics), ``implement`` (the implement job), ``apply`` (a candidate into the document, switching
candidates), ``generated`` (the tests the model wrote that a body passes), ``doctests`` and
``pytests`` (those tests as doctests, as a pytest file), ``keep`` (the actions that put them
there), ``server`` (the handlers).
The VS Code client is in ``vscode/``.
"""
