"""How many test-writing samples pay for themselves: a probe on an eval run's candidates.

    python3 research/probe_test_writing.py results/runs/humaneval-stub-base --limit 12 \
        --out docs/bench/test-writing-probe.json

For the first ``--limit`` finished problems of a run (HumanEval: the prompt is the same under
both protocols), the model writes ``--samples`` test-writing answers with today's settings
(core.settings.TestWriting). Per answer: tokens sampled, whether it hit the token limit, the
asserts it held. Then, for 1..samples answers merged as write_tests merges them (in order,
deduplicated, capped at max_tests): the tests kept, the share the ground truth passes, and
whether dual agreement (then mean log-prob), with the problem's example tests withheld, puts a
passing program first. Sampling cost is in tokens, which is what the machine pays for.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from bcoder.core.settings import TestWriting
from bcoder.decode.sampling import sample
from bcoder.evaluate.compare import finished
from bcoder.evaluate.generated import without_examples
from bcoder.execution import Executor
from bcoder.pipeline.engine import Engine
from bcoder.pipeline.gentests import REL_TOL, generated_spec, merge_tests, writing_options
from bcoder.problems.gentests import test_prompt
from bcoder.problems.load import load_problems
from bcoder.ranking.rankers import get_ranker


def answers(engine: Engine, problem, writing: TestWriting) -> tuple[str, list[dict]]:
    family = engine.prompter.family(problem)
    text, prefix = test_prompt(
        problem, family, engine.tokenizer, engine.prompting.max_source_tokens
    )
    ids = list(engine.tokenizer(text, add_special_tokens=family != "chat").input_ids)
    options = writing_options(engine, writing, family)
    rows = {}
    for gen in sample(engine.backend, ids, writing.samples, options, engine.pad_id,
                      batch_size=writing.samples, seed=writing.seed):  # fmt: skip
        completion = engine.tokenizer.decode(gen.action_ids, skip_special_tokens=True)
        rows[gen.index] = {
            "tokens": len(gen.action_ids),
            "hit_limit": len(gen.action_ids) >= writing.max_new_tokens,
            "answer": prefix + completion,
        }
    return prefix, [rows[i] for i in sorted(rows)]


def verdicts(problem, codes: list[str], tests: list[str], executor) -> list[list[object]]:
    """Each code's TestOutcome list on ``tests`` (all of them, in order)."""
    from bcoder.core.types import GeneratedTests

    spec = replace(generated_spec(problem, GeneratedTests(asserts=tests)), rel_tol=REL_TOL)
    out = [None] * len(codes)
    for index, res in executor.run_many([(c, spec) for c in codes], stop_on_failure=False):
        out[index] = list(res.tests)
    return out


def probe_problem(engine, problem, record, writing, executor) -> dict:
    t0 = time.perf_counter()
    _, rows = answers(engine, problem, writing)
    seconds = time.perf_counter() - t0
    entry = problem.entry_point
    all_tests, _ = merge_tests([r["answer"] for r in rows], entry, 10 * writing.max_tests)
    for r in rows:
        r["asserts"] = merge_tests([r["answer"]], entry, 10 * writing.max_tests)[0]
    record = without_examples(record)
    codes = [c.code for c in record.candidates] + [problem.solutions[0]]
    outcomes = verdicts(problem, codes, all_tests, executor) if all_tests else [[]] * len(codes)
    truth = outcomes.pop()
    ranker = get_ranker("codet-logprob")
    by_samples = []
    for s in range(1, len(rows) + 1):
        kept, _ = merge_tests([" \n".join(r["asserts"]) for r in rows[:s]], entry,
                              writing.max_tests)  # fmt: skip
        index = [all_tests.index(t) for t in kept]
        cands = []
        for rec, out in zip(record.candidates, outcomes, strict=True):
            cand = rec.to_candidate()
            cand.generated = [out[j] for j in index]
            cands.append(cand)
        scores = ranker(cands)
        best = max(range(len(cands)), key=lambda j: scores[j])
        right = sum(truth[j].verdict == "pass" for j in index)
        by_samples.append({
            "samples": s,
            "tests": len(kept),
            "right": right,
            "tokens": sum(r["tokens"] for r in rows[:s]),
            "top_passes": bool(record.candidates[best].passed),
        })  # fmt: skip
    return {
        "problem": problem.id,
        "seconds": round(seconds, 1),
        "candidates_passing": sum(c.count for c in record.candidates if c.passed),
        "samples": sum(c.count for c in record.candidates),
        "rows": rows,
        "by_samples": by_samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--start", type=int, default=0, help="skip the first START finished problems")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    settings, records = finished(args.run)
    ids = list(records)[args.start : args.start + args.limit]
    problems = {p.id: p for p in load_problems(settings["dataset"], split=settings["split"])}
    engine = Engine.load(settings["model"], backend="llama.cpp", threads=args.threads)
    writing = replace(TestWriting(), samples=args.samples)
    results = []
    with Executor(timeout=4.0) as executor:
        for pid in ids:
            results.append(probe_problem(engine, problems[pid], records[pid], writing, executor))
            print(json.dumps(results[-1]), flush=True)
    summary = []
    for s in range(1, args.samples + 1):
        at = [r["by_samples"][s - 1] for r in results]
        summary.append({
            "samples": s,
            "tests": sum(x["tests"] for x in at),
            "right": sum(x["right"] for x in at),
            "tokens": sum(x["tokens"] for x in at),
            "top_passes": sum(x["top_passes"] for x in at),
        })  # fmt: skip
    print(json.dumps(summary, indent=1))
    if args.out:
        out = {"run": str(args.run), "writing": writing.to_dict(), "summary": summary,
               "problems": results}  # fmt: skip
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
