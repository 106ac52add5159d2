"""Assemble a run directory's report: figures, configuration, identity, timings; JSON, Markdown, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_write_text
from bcoder.evaluate import markdown
from bcoder.evaluate.paper import comparison_rows
from bcoder.evaluate.records import CONFIG, MODEL, SELECTION, ProblemRecord, load_records
from bcoder.evaluate.report import compute_figures

REPORT_JSON, REPORT_MD, PLOTS = "report.json", "report.md", "plots"
_SOURCES = {"mbpp": "mbpp", "apps": "apps"}


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        raise BcoderError(f"{path}: cannot read ({err})") from None


def timings(records: list[ProblemRecord], model: dict[str, Any]) -> dict[str, Any]:
    """Model work summed over problems (seconds), whichever process or session did it."""
    out: dict[str, Any] = {"problems": len(records), "load": model.get("load_seconds")}
    for key in ("generate", "score", "execute", "total"):
        out[key] = sum(r.timings.get(key, 0.0) for r in records)
    if any("write_tests" in r.timings for r in records):  # the no-tests protocol's (only then)
        out["write_tests"] = sum(r.timings.get("write_tests", 0.0) for r in records)
    out["per_problem"] = out["total"] / len(records) if records else None
    return out


def dataset_family(config: dict[str, Any], records: list[ProblemRecord]) -> str | None:
    """apps | mbpp when the run's problems come from one of the paper's datasets."""
    name = str(config["settings"]["dataset"]).lower()
    if name in _SOURCES:
        return _SOURCES[name]
    prefixes = {r.problem_id.split("/", 1)[0] for r in records}
    return next(iter(prefixes)) if len(prefixes) == 1 and prefixes <= set(_SOURCES) else None


def build_report(
    run_dir: Path,
    *,
    ks: list[int] | None = None,
    paper: bool = False,
    partial: bool = False,
) -> tuple[dict[str, Any], list[ProblemRecord]]:
    """The report of ``run_dir`` over its latest selection (see records.py for the layout)."""
    config = _read(run_dir / CONFIG)
    selection = _read(run_dir / SELECTION)
    if config is None or selection is None:
        raise BcoderError(f"{run_dir}: not an eval run directory (no config.json)")
    records, missing = load_records(run_dir, selection["problem_ids"])
    if missing and not partial:
        raise BcoderError(
            f"{run_dir}: {len(missing)} of {len(selection['problem_ids'])} problems have no "
            f"results yet (first: {missing[0]}); wait for the other shards, or resume the run"
        )
    if not records:
        raise BcoderError(f"{run_dir}: no problem has results yet")
    settings = dict(config["settings"])  # as first run, with the latest selection's choices
    settings.update({key: selection.get(key) for key in ("limit", "ids", "bootstrap")})
    settings["ks"] = sorted(set(ks or selection["ks"]))
    model = _read(run_dir / MODEL) or {}
    figures = compute_figures(records, settings["ks"], settings["seed"], selection["bootstrap"])
    report: dict[str, Any] = {
        "bcoder_eval_report": 1,
        "config": settings,
        "data": {
            "path": settings["data_path"],
            "sha256": settings["data_sha256"],
            "split": settings["split"],
        },
        "model": model,
        "timings": timings(records, model),
        "missing": missing,
        "figures": figures,
        "paper": None,
    }
    family = dataset_family(config, records)
    if paper and family:
        report["paper"] = comparison_rows(
            family, figures["metrics"], settings["temperature"], bool(settings.get("rank_only"))
        )
    return report, records


def write_report(
    run_dir: Path,
    *,
    ks: list[int] | None = None,
    paper: bool = False,
    partial: bool = False,
    plots: bool = True,
) -> dict[str, Any]:
    """Write report.json, report.md and plots/*.png into ``run_dir``; return the report."""
    report, records = build_report(run_dir, ks=ks, paper=paper, partial=partial)
    if plots:
        from bcoder.evaluate.plots import write_plots

        paths = write_plots(records, report["figures"], run_dir / PLOTS)
        report["plots"] = [str(p.relative_to(run_dir)) for p in paths]
    atomic_write_text(run_dir / REPORT_JSON, json.dumps(report, indent=1, default=_jsonable) + "\n")
    atomic_write_text(run_dir / REPORT_MD, markdown.render(report))
    return report


def _jsonable(x: Any) -> Any:
    return str(x)
