"""An eval run's directory: what makes two runs the same run, and what a resume may change.

A run directory holds ``config.json`` (the resolved settings), ``model.json`` (what sampled and
scored), ``selection.json`` and a record per problem and stage (:mod:`bcoder.evaluate.records`).
A resume goes on only with the settings that made the records (``IDENTITY_FIELDS``), except:

- a rank-only run may be given another candidates file that holds the programs it scored
  (:func:`check_same_candidates`; one exported for more problems);
- a run under the ``tests`` protocol may be resumed under ``no-tests`` when that protocol shows
  its problems as they were (HumanEval: its prompt is its own stub either way). The run then
  *gains the model's tests*: every problem keeps its candidates, and the model writes tests
  for it (:func:`gains_tests`). So one set of samples serves both protocols.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_write_text
from bcoder.core.settings import TestWriting, policy_name
from bcoder.evaluate.config import IDENTITY_FIELDS
from bcoder.evaluate.records import (
    CONFIG,
    MODEL,
    PROBLEMS,
    SAMPLES,
    has_record,
    read_record,
    record_path,
)

# what runs from before these fields ran
BEFORE = {"prefill": False, "protocol": "tests", "test_writing": TestWriting().to_dict()}


def gains_tests(stored: dict[str, Any], asked: dict[str, Any], same_prompts: bool) -> bool:
    """Whether a run made with ``stored`` settings resumed with ``asked`` ones gains the model's
    tests: from the ``tests`` protocol to ``no-tests``, on problems that it shows as they were."""
    return same_prompts and stored["protocol"] == "tests" and asked["protocol"] == "no-tests"


def distinct_codes(codes: list[str]) -> dict[str, int]:
    """{the first program of each code_key: how many of ``codes`` share its key}, in order."""
    from bcoder.pipeline.solve import code_key

    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for code in codes:
        key = code_key(code)
        first.setdefault(key, code)
        counts[key] = counts.get(key, 0) + 1
    return {first[key]: n for key, n in counts.items()}


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BcoderError(f"{path}: cannot read ({err})") from None


def prepare_run_dir(
    run_dir: Path,
    config: dict[str, Any],
    resume: bool,
    sharded: bool,
    same_prompts: bool = False,
) -> dict[str, Any]:
    """Create the run directory's config, or check that an existing one describes this run (see
    the module docstring). ``same_prompts``: the asked protocol shows every selected problem as
    the ``tests`` protocol does. Returns the run's config as stored (updated when it gains tests).
    """
    path = run_dir / CONFIG
    if run_dir.exists() and not run_dir.is_dir():
        raise BcoderError(f"{run_dir} is a file, not a run directory; choose another --out")
    if path.is_file():
        old = read_json(path)
        if not (resume or sharded):
            raise BcoderError(
                f"{run_dir} already holds an eval run: add --resume to continue it, "
                "or choose another --out"
            )
        # the checkpoint's weights, not only its path: a re-shipped checkpoint is another run, and
        # the same weights at another path (a candidate, then shipped) are the same run
        fields = [*IDENTITY_FIELDS, "data_sha256", "checkpoint_sha256"]
        if old["settings"].get("checkpoint_sha256") and config["settings"].get("checkpoint_sha256"):
            fields.remove("checkpoint")
        if old["settings"].get("rank_only") and config["settings"].get("rank_only"):
            fields.remove("rank_only")  # its programs are checked problem by problem: run_eval
        stored = {**BEFORE, **old["settings"]}
        asked = {**BEFORE, **config["settings"]}
        if stored["protocol"] == "tests":  # it wrote no test: how tests are written is not its
            fields.remove("test_writing")  # (when it gains tests, the asked way becomes the run's)
        gains = gains_tests(stored, asked, same_prompts)
        if gains:
            fields.remove("protocol")
        diff = [f for f in fields if stored.get(f) != asked.get(f)]
        if diff:
            f = diff[0]
            raise BcoderError(
                f"{run_dir} was run with {f}={stored.get(f)!r}, not "
                f"{asked.get(f)!r}: use another --out for a different run"
            )
        if gains:
            for key in ("protocol", "test_writing"):
                old["settings"][key] = asked[key]
            atomic_write_text(path, json.dumps(old, indent=2) + "\n")
        return old
    if run_dir.exists() and any(run_dir.iterdir()) and not (run_dir / PROBLEMS).is_dir():
        raise BcoderError(
            f"{run_dir} exists and is not an eval run directory; choose another --out"
        )
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")
    return config


def check_same_candidates(run_dir: Path, codes_by_problem: dict[str, list[str]], path: Path):
    """A rank-only run resumed with another candidates file (one exported for more problems)
    goes on only if the file holds, for every problem already scored, the programs scored."""
    from bcoder.pipeline.solve import code_key

    for pid, codes in codes_by_problem.items():
        if has_record(run_dir, pid, SAMPLES):
            record = read_record(record_path(run_dir, pid, SAMPLES))
            scored = [(code_key(c.code), c.count) for c in record.candidates]
            if scored != [(code_key(code), n) for code, n in distinct_codes(codes).items()]:
                raise BcoderError(
                    f"{run_dir} scored other programs for {pid} than {path} holds: "
                    "use another --out for a different run"
                )


def check_policy(run_dir: Path, policy: str) -> None:
    """Refuse to add samples from ``policy`` to a run sampled from the other one. A run written
    before model.json named its policy sampled from l_theta, the trained policy."""
    if not (run_dir / MODEL).is_file():
        return
    info = read_json(run_dir / MODEL)
    before = policy_name(info.get("policy", "trained" if info.get("heads") else None))
    if before not in (None, policy):
        raise BcoderError(
            f"{run_dir} was sampled from the {before} policy, not the {policy} one: "
            f"use another --out for a different run (or --policy {before})"
        )


def lacks_tests(run_dir: Path, problem_id: str, stage: str = PROBLEMS) -> bool:
    """Whether the problem's record (of ``stage``) exists without tests the model wrote: under the
    no-tests protocol, a problem of a run that gained tests still to be written."""
    if not has_record(run_dir, problem_id, stage):
        return False
    return read_record(record_path(run_dir, problem_id, stage)).generated is None
