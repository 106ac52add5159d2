"""What a policy's sampled programs look like, run against run, on the problems all runs finished.

    python3 scripts/policy_style.py train/runs/eval-init runs/eval-trained

For each eval run: the samples (a candidate counts as often as it was drawn), their pass rate (the
unranked pass@1), outcomes, why generation stopped, and two marks of a policy drifting from the
checkpoint's style: lines indented by other than a multiple of four spaces, and trailing spaces.
A diagnostic for the trained policy's unranked pass@1 (issue 14's second aim); nothing reads it.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from bcoder.evaluate.records import SELECTION, CandidateRecord, load_records

NARROW_INDENT = re.compile(r"^(?: {4})* {1,3}\S", re.MULTILINE)
TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def load(run: Path) -> dict[str, list[CandidateRecord]]:
    """problem id -> the run's scored candidates (the problems it has finished)."""
    ids = json.loads((run / SELECTION).read_text())["problem_ids"]
    records, _ = load_records(run, ids)
    return {record.problem_id: record.candidates for record in records}


def describe(candidates: list[CandidateRecord]) -> Counter:
    tally = Counter()
    for cand in candidates:
        n = cand.count
        tally["samples"] += n
        tally[f"outcome {cand.outcome}"] += n  # outcome pass: the unranked pass@1
        tally[f"stopped by {cand.finish_reason}"] += n
        tally["narrow indent"] += n * bool(NARROW_INDENT.search(cand.code))
        tally["trailing spaces"] += n * bool(TRAILING_SPACE.search(cand.code))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval run directories")
    args = parser.parse_args()
    runs = {run: load(run) for run in args.runs}
    common = set.intersection(*(set(records) for records in runs.values()))
    print(f"{len(common)} problems finished by every run")
    tallies = {
        run: describe([c for pid in common for c in records[pid]]) for run, records in runs.items()
    }
    keys = sorted(set().union(*tallies.values()), key=lambda k: (k != "samples", k))
    width = max(map(len, keys))
    print(" " * width + "".join(f"  {run.name:>16}" for run in runs))
    for key in keys:
        cells = []
        for tally in tallies.values():
            share = 100 * tally[key] / max(tally["samples"], 1)
            cells.append(
                f"{tally[key]:>7} ({share:4.1f}%)" if key != "samples" else f"{tally[key]:>16}"
            )
        print(f"{key:<{width}}" + "".join(f"  {cell:>16}" for cell in cells))


if __name__ == "__main__":
    main()
