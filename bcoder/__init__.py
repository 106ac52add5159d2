"""bcoder: B-Coder (value-based deep RL for program synthesis) as a local tool.

The ``bcoder`` package is an import-safe library: no CLI, TUI or LSP imports, no printing.
"""

__version__ = "0.1.0"
