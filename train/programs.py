"""A program as a training record: written as the policy's actions, labelled by the sandbox,
stored as a row of the collect store.

Collected samples, ground truths and imported programs (:mod:`bcoder.train.collect`,
:mod:`bcoder.train.offpolicy`) are all :class:`Program` rows. Programs written elsewhere (ground
truths, imports) are tokenised the way the policy would have written them (:class:`Prompter`,
:func:`written_programs`); every program's outcome and reward come from running its code in the
sandbox (:func:`label`, :func:`execute`); :func:`to_columns` gives the collect store's columns
(:func:`bcoder.train.data.collect_features`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bcoder.core.spec import Problem
from bcoder.train.config import TrainConfig


@dataclass
class Program:
    """One collected (or imported) program of a problem, before execution."""

    problem_id: str
    source: str  # sample | ground_truth | import
    prompt_ids: list[int]
    action_ids: list[int]
    completion: str
    code: str
    finish_reason: str
    count: int = 1
    outcome: str = ""
    reward: float = 0.0
    features: dict[str, Any] | None = None  # featurize's columns, recorded while sampling


@dataclass
class CollectSummary:
    """What a collect (or import) call did."""

    problems: int = 0  # problems in the configured set
    skipped_no_tests: list[str] = field(default_factory=list)  # problems without tests
    shards_written: int = 0
    shards_skipped: int = 0  # already finished by an earlier run
    shards_restyled: int = 0  # of those, the ones whose ground truths were written again
    programs: int = 0  # rows written (unique programs)
    samples: int = 0  # programs sampled (with duplicates)
    outcomes: dict[str, int] = field(default_factory=dict)  # over sampled programs, by count
    notes: list[str] = field(default_factory=list)  # about the input (import), for the user
    seconds: float = 0.0


class Prompter:
    """Prompts and completions of a training run: the library's :class:`~bcoder.problems.prompts.
    Prompter` (the one solve, eval and rank use) with the run's prompt settings, so training data
    and inference tokenise alike; completions are cut at the run's target length."""

    def __init__(self, tokenizer: Any, cfg: TrainConfig, is_seq2seq: bool):
        from bcoder.problems.prompts import Prompter as PolicyPrompter
        from bcoder.problems.prompts import PromptSettings

        self.tokenizer, self.cfg = tokenizer, cfg
        data = cfg.data
        settings = PromptSettings(
            data.prompt_family, data.max_source_tokens, data.max_target_tokens
        )
        self.policy = PolicyPrompter(tokenizer, settings, is_seq2seq)

    def family(self, problem: Problem) -> str:
        return self.policy.family(problem)

    def prompt(self, problem: Problem) -> tuple[str, str, list[int]]:
        """(family, prompt text, prompt ids)."""
        return self.policy.prompt(problem)

    def actions_for(self, code: str, family: str, prompt: str) -> tuple[list[int], str, str]:
        """(action ids, completion, finish reason) of ``code`` written as the policy would."""
        code = code.replace("\r\n", "\n").replace("\r", "\n")
        return self.policy.actions(code, family, prompt, self.cfg.data.max_target_tokens)


def written_programs(
    prompter: Prompter, problem: Problem, codes: Iterable[str], source: str
) -> list[Program]:
    """Programs written elsewhere (ground truths, imports) as actions of the policy, merged.

    A program cut at the target length becomes the code its kept actions hold (extracted as a
    sample's would be), so that it is executed and labelled as what the training data holds.
    """
    from bcoder.problems.extract import extract_code

    family, text, prompt_ids = prompter.prompt(problem)
    merged: dict[tuple[int, ...], Program] = {}
    for code in codes:
        ids, completion, reason = prompter.actions_for(code, family, text)
        if tuple(ids) in merged:
            merged[tuple(ids)].count += 1
            continue
        code_n = code.replace("\r\n", "\n").replace("\r", "\n")
        if reason == "length":
            completion = prompter.tokenizer.decode(ids, skip_special_tokens=True)
            code_n = extract_code(completion, problem, family)
        merged[tuple(ids)] = Program(
            problem.id, source, prompt_ids, ids, completion, code_n, reason
        )
    return list(merged.values())


def execute(programs: list[Program], problems: dict[str, Problem], executor: Any) -> None:
    """Fill outcome and reward of each program; identical code of a problem runs once."""
    from bcoder.pipeline.solve import code_key

    jobs: list[tuple[str, Any]] = []
    index: dict[tuple[str, str], int] = {}
    slot: list[int] = []
    for p in programs:
        key = (p.problem_id, code_key(p.code))
        if key not in index:
            index[key] = len(jobs)
            jobs.append((p.code, problems[p.problem_id].tests))
        slot.append(index[key])
    results: dict[int, Any] = dict(executor.run_many(jobs)) if jobs else {}
    for p, j in zip(programs, slot, strict=True):
        outcome = results[j].outcome
        p.outcome, p.reward = str(getattr(outcome, "value", outcome)), float(results[j].reward)


def label(
    programs: list[Program],
    problems: dict[str, Problem],
    executor: Any,
    execute_ground_truth: bool = True,
) -> None:
    """Fill outcome and reward of every program: run them in the sandbox, except, without
    ``execute_ground_truth``, whole ground truths, which are assumed to pass. A ground truth cut
    at the target length is always run: its outcome is not the full solution's."""

    def assumed(p: Program) -> bool:
        whole = p.finish_reason != "length"
        return p.source == "ground_truth" and whole and not execute_ground_truth

    execute([p for p in programs if not assumed(p)], problems, executor)
    for p in programs:
        if assumed(p):
            p.outcome, p.reward = "pass", 1.0


def to_columns(programs: list[Program]) -> dict[str, list]:
    return {
        "problem_id": [p.problem_id for p in programs],
        "source": [p.source for p in programs],
        "is_ground_truth": [p.source == "ground_truth" for p in programs],
        "prompt_ids": [p.prompt_ids for p in programs],
        "action_ids": [p.action_ids for p in programs],
        "completion": [p.completion for p in programs],
        "code": [p.code for p in programs],
        "count": [p.count for p in programs],
        "outcome": [p.outcome for p in programs],
        "reward": [p.reward for p in programs],
        "finish_reason": [p.finish_reason for p in programs],
    }


def tally(summary: CollectSummary, programs: list[Program]) -> None:
    summary.programs += len(programs)
    for p in programs:
        if p.source != "ground_truth":
            summary.samples += p.count
            summary.outcomes[p.outcome] = summary.outcomes.get(p.outcome, 0) + p.count


@contextlib.contextmanager
def executor_for(cfg: TrainConfig, executor: Any):
    if executor is not None:
        yield executor
        return
    from bcoder.execution import Executor

    kwargs: dict[str, Any] = {"timeout": cfg.collect.timeout}
    if cfg.collect.workers:
        kwargs["workers"] = cfg.collect.workers
    with Executor(**kwargs) as ex:
        yield ex
