"""The header line: what is open, what made and ranked it, and the state of the last generation.

Pure functions, no Textual. The header has ``width - HEADER_CHROME`` cells for the title and the
subtitle (Textual's header keeps 8 for its icon and 10 for the clock's place); when everything
does not fit, the least telling parts go first, so the line is never cut in the middle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.cells import cell_len

from bcoder.core.settings import policy_name
from bcoder.core.types import SolveResult
from bcoder.models.sources import DEFAULT_MODEL
from bcoder.qmodel.shipped import label

HEADER_CHROME = 8 + 10  # the header's icon and clock space
SEPARATOR = " — "  # between title and subtitle (App.format_title)


def model_name(model: object) -> str:
    """A model as the header names it: a local folder by its name, a hub id or preset as given."""
    text = str(model or DEFAULT_MODEL)
    path = Path(text).expanduser()
    local = path.is_absolute() or text.startswith((".", "~")) or path.exists()
    return path.name if local and path.name else text


def ranking(result: SolveResult | None, with_heads: bool = True) -> str:
    """``ranked by RANKER (HEADS[, base policy])``, or "" for a run not ranked yet."""
    if result is None:
        return ""
    if not with_heads:
        return f"ranked by {result.ranker}"
    sampled = ", base policy" if policy_name(result.settings.get("policy")) == "base" else ""
    return f"ranked by {result.ranker} ({label(result.heads)}{sampled})"


def header_titles(
    problem_id: object,
    result: SolveResult | None,
    settings: dict[str, Any],
    status: str,
    width: int,
) -> tuple[str, str]:
    """(title, subtitle) for a header ``width`` cells wide: the richest version that fits.

    Dropped in this order: the app's name, the model, the heads; the problem id, the run and the
    status stay (a long status is left for the header to cut)."""
    problem = str(problem_id or "no problem")
    run = result.run_id if result and result.run_id else "unsaved"
    model = model_name(settings.get("model"))
    versions = [
        (f"bcoder · {problem}", [model, ranking(result), run, status]),
        (problem, [model, ranking(result), run, status]),
        (problem, [ranking(result), run, status]),
        (problem, [ranking(result, with_heads=False), run, status]),
        (problem, [run, status]),
    ]
    room = width - HEADER_CHROME
    for title, parts in versions:
        subtitle = " · ".join(p for p in parts if p)
        if cell_len(title) + cell_len(SEPARATOR) + cell_len(subtitle) <= room:
            return title, subtitle
    return versions[-1][0], " · ".join(p for p in versions[-1][1] if p)
