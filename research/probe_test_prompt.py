"""Another test-writing prompt on an eval run's candidates: does it write better tests?

    python3 research/probe_test_prompt.py SRC_RUN OUT_RUN --variant draft [--threads 2]
    python3 research/probe_test_prompt.py SRC_RUN OUT_RUN --variant default --max-tests 5
    python3 research/probe_agreement.py OUT_RUN     # the rankers on the new tests

Makes ``OUT_RUN`` a copy of the no-tests eval run ``SRC_RUN`` (its settings, its sampled and
scored candidates) without the tests the model wrote, and resumes it with a variant of the
test-writing prompt, so that the model writes them again and the candidates and the ground
truth run on them, exactly as ``bcoder eval --protocol no-tests`` does: same candidates, same
sampling settings and seed, only the prompt (or ``--max-tests``: the distinct tests kept, and
asked for in one answer up to 10) differs. Resumable (run it again after a stop).

Variants (:data:`VARIANTS`):
- ``default``: the prompt bcoder uses (with ``--max-tests``: fewer or more tests, nothing else).
- ``draft``: the chat prompt also shows a draft of the function, the candidate the likelihood
  ranker puts first (highest mean log-prob, known before any test). On MBPP without its asserts
  a quarter of the tests the model wrote held inputs the ground truth could not take (the
  arity or types misread from a one-line statement) and half expected another value or form
  (``'isosceles triangle'`` for ``True``): a draft shows what the arguments and the result
  most likely are. The instruction still asks for what the task asks, not what the draft does.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import bcoder.evaluate.run as eval_run
import bcoder.problems.gentests as gentests
from bcoder.core.fs import atomic_write_text
from bcoder.evaluate.config import EvalSettings
from bcoder.evaluate.records import (
    CONFIG,
    PROBLEMS,
    SAMPLES,
    SELECTION,
    read_record,
    write_record,
)

_chat_user = gentests._chat_user
_write_tests = eval_run._write_tests
DRAFT = "bcoder_probe_draft"  # the problem metadata key the variant reads


def draft_user(problem, question: str, tests: int) -> str:
    """The chat user turn with the draft shown before what to write."""
    text = _chat_user(problem, question, tests)
    draft = problem.metadata.get(DRAFT)
    if not draft:
        return text
    head, _, ask = text.rpartition("\n\nWrite ")
    shown = (
        "A first draft of it, which may be wrong (it shows the argument and result types the "
        f"task most likely means):\n\n```python\n{draft.strip()}\n```"
    )
    return f"{head}\n\n{shown}\n\nWrite {ask} Test what the task asks, not what the draft does."


def write_tests_with_draft(problem, record, engine, settings, emit, cancel):
    """evaluate.run._write_tests, the problem carrying its likeliest candidate as the draft."""
    best = max(record.candidates, key=lambda c: c.mean_logprob)
    shown = replace(problem, metadata={**problem.metadata, DRAFT: best.code})
    return _write_tests(shown, record, engine, settings, emit, cancel)


VARIANTS = {
    "default": (_chat_user, _write_tests),
    "draft": (draft_user, write_tests_with_draft),
}


def copy_run(src: Path, out: Path, max_tests: int | None) -> None:
    """``out``: ``src``'s settings and sampled candidates, without their generated tests (and
    with ``max_tests`` tests kept, when given)."""
    (out / SAMPLES).mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, SELECTION, "model.json"):
        if (src / name).is_file() and not (out / name).exists():
            shutil.copy2(src / name, out / name)
    if max_tests is not None:
        config = json.loads((out / CONFIG).read_text())
        config["settings"]["test_writing"]["max_tests"] = max_tests
        atomic_write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
    for path in sorted((src / SAMPLES).glob("*.json.gz")):
        target = out / SAMPLES / path.name
        if target.exists():
            continue
        record = read_record(path)
        record.generated = None
        record.timings.pop("write_tests", None)
        write_record(out, record, SAMPLES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    ap.add_argument("--max-tests", type=int, help="distinct tests kept (the run's: 20)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not (args.src / PROBLEMS).is_dir():
        raise SystemExit(f"{args.src}: not an eval run with finished problems")
    copy_run(args.src, args.out, args.max_tests)
    gentests._chat_user, eval_run._write_tests = VARIANTS[args.variant]
    settings = EvalSettings.from_run(args.out)
    settings.threads = args.threads

    def show(event) -> None:
        if getattr(event, "stage", "") == "problems":
            print(f"{event.done}/{event.total} {event.message}", flush=True)

    run = eval_run.run_eval(settings, args.out, resume=True, on_event=show, plots=False)
    print(f"{len(run.done_now)} problems done; report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
