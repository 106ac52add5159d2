"""The body of the TUI's generation worker: load (once) and solve, on a worker thread.

No Textual here: events go to ``on_event`` (the app forwards them with ``call_from_thread``), the
finished run is saved in the store, and cancellation is ``cancel.set()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bcoder.core.cancel import Cancelled
from bcoder.core.errors import BcoderError
from bcoder.core.settings import NO_HEADS
from bcoder.core.spec import Problem
from bcoder.core.types import Progress, SolveResult
from bcoder.pipeline.engine import Engine
from bcoder.pipeline.settings import SolveSettings
from bcoder.pipeline.solve import solve
from bcoder.pipeline.store import Store


def settings_from(values: dict[str, Any]) -> SolveSettings:
    """A ``SolveSettings`` from a run's settings dict (keys it does not know are ignored). A run
    records ``"checkpoint": null`` when it had no trained heads: it is solved again without."""
    if "checkpoint" in values and values["checkpoint"] is None:
        values = {**values, "checkpoint": NO_HEADS}
    return SolveSettings.from_dict(values)


def generate(
    problem: Problem,
    values: dict[str, Any],
    engines: dict[tuple, Any],
    store: Store,
    on_event: Callable[[object], None],
    cancel: threading.Event,
) -> SolveResult:
    """Solve ``problem`` with settings ``values``, reusing a loaded engine from ``engines``.

    Returns the saved result; raises ``bcoder.core.cancel.Cancelled`` when ``cancel`` is set.
    """
    config = settings_from(values)
    key = (config.model, config.checkpoint, config.dtype, config.device, config.backend)
    if key not in engines:
        on_event(Progress("load", 0, 0, f"loading {config.model}"))
        engines[key] = Engine.load(
            config.model,
            checkpoint=config.checkpoint,
            dtype=config.dtype,
            device=config.device,
            backend=config.backend,
            threads=int(values.get("threads") or 0),
            on_event=on_event,
        )
    if cancel.is_set():  # loading cannot be interrupted; stop before sampling
        raise Cancelled("cancelled")
    result = solve(problem, engines[key], config, on_event=on_event, cancel=cancel, store=store)
    if result.run_id is None:
        store.save(result)
    return result


def attempt(
    problem: Problem,
    values: dict[str, Any],
    engines: dict[tuple, Any],
    store: Store,
    on_event: Callable[[object], None],
    cancel: threading.Event,
) -> tuple[SolveResult | None, str]:
    """:func:`generate`, never raising: (the saved result, "") or (None, "cancelled" or
    "error: ..."), for the app to show. A bug is reported rather than lost in a thread."""
    try:
        return generate(problem, values, engines, store, on_event, cancel), ""
    except Cancelled:
        return None, "cancelled"
    except BcoderError as err:
        return None, f"error: {err}"
    except Exception as err:
        return None, f"error: {type(err).__name__}: {err}"
