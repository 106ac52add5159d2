"""select: the ranker a trained checkpoint ranks with, chosen on its held-out problems.

The held-out problems (``data.heldout_frac`` of them, by a hash of the id, never trained on) keep
the programs collect sampled for them. ``select`` ranks each held-out problem's sampled programs
as they were sampled (a program drawn c times counts c times) with ``<run>/checkpoint`` (an
ablation's ``checkpoint-*``), through the path ``bcoder eval --rank-only`` takes (scored on the
inference backend, example and full tests run in the sandbox), and writes the learned ranker
(:data:`bcoder.ranking.rankers.LEARNED`) with the best ranked pass@1 into the checkpoint's ``"ranker"``
field (ties go to R~, the paper's). ``solve``, the TUI and the language server then rank with it
and say which.

The eval run stays in ``<run>/select/eval`` (``select-*``; its report.md sets every ranker,
likelihood included, side by side) and ``<run>/select/select.json`` sums the choice up. It
resumes like any eval run while the checkpoint's weights are those it was started with
(``checkpoint.sha256``), and starts again when they changed.

Those programs were sampled from the base policy. In lmhead mode the trained policy
softmax(l_theta) differs from it, so select also samples the trained policy on the same held-out
problems, as collect sampled them (``collect.samples_per_problem`` at ``collect.temperature``;
``<run>/select/policy``, an eval run), and writes ``"policy": "trained"`` into the checkpoint when
its unranked pass@1 is at least the base policy's, else ``"base"``: ``solve`` then
samples from the frozen base LM's own logits and still scores with l_theta
(:func:`bcoder.qmodel.config.checkpoint_policy`), so that training never makes what a user samples
worse than the base model on the held-out problems. ``select.policy = false`` skips the check.

For problems without tests of their own, select also samples the held-out problems under the
no-tests protocol (no assert in the prompt, no example test: :mod:`bcoder.problems.protocols`;
``<run>/select/no-tests``, an eval run), lets the model write tests for them, and writes the
agreement ranker with the best pass@1 into the checkpoint's ``"ranker_without_tests"`` (ties go
to :data:`~bcoder.ranking.rankers.DEFAULT_RANKER_WITHOUT_TESTS`). ``select.without_tests = false``
skips it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_write_text
from bcoder.core.settings import SamplingSettings
from bcoder.evaluate.records import weights_sha256
from bcoder.problems.programs import program_row
from bcoder.train import setup
from bcoder.train.config import TrainConfig
from bcoder.train.data import ShardStore, heldout_problems
from bcoder.train.theta import stage_name

EventFn = Callable[[Any], None]
SELECT_JSON = "select.json"
STAMP = "checkpoint.sha256"


def heldout_samples(cfg: TrainConfig, root: Path) -> dict[str, list[str]]:
    """{held-out problem id: the codes sampled for it, a program drawn c times c times}."""
    store = ShardStore(root / "data" / "collect")
    rows: list[tuple[str, str, int]] = []
    for entry in store.shards():
        table = store.load(entry["name"]).data.table
        cols = {c: table.column(c).to_pylist() for c in ("problem_id", "source", "code", "count")}
        rows += [
            (pid, code, count)
            for pid, source, code, count in zip(*cols.values(), strict=True)
            if source == "sample"
        ]
    held = heldout_problems([pid for pid, _, _ in rows], cfg.data.heldout_frac, cfg.run.seed)
    out: dict[str, list[str]] = {}
    for pid, code, count in rows:
        if pid in held:
            out.setdefault(pid, []).extend([code] * count)
    return out


def run_select(cfg: TrainConfig, *, on_event: EventFn | None = None) -> dict[str, Any]:
    """Rank the held-out samples with every ranker; write the best learned one into the
    checkpoint. Returns select.json's content."""
    from bcoder.evaluate.config import EvalSettings
    from bcoder.evaluate.run import run_eval
    from bcoder.qmodel.config import read_checkpoint_config
    from bcoder.ranking.rankers import DEFAULT_RANKER, LEARNED, RANKER_LABELS

    root = setup.run_dir(cfg)
    ckpt_name = stage_name(cfg).replace("theta", "checkpoint", 1)  # an ablation's: checkpoint-*
    checkpoint = root / ckpt_name
    if not (checkpoint / "bcoder_config.json").is_file():
        raise BcoderError(f"{checkpoint}: no trained checkpoint; run `bcoder train theta` first")
    programs = heldout_samples(cfg, root)
    if not programs:
        raise BcoderError(
            f"{root}: no sampled programs of held-out problems to choose a ranker on "
            "(data.heldout_frac is 0, or collect has not run)"
        )
    out_dir = root / ckpt_name.replace("checkpoint", "select", 1)
    eval_dir, policy_dir = out_dir / "eval", out_dir / "policy"
    _stamp(out_dir, weights_sha256(checkpoint))
    candidates = out_dir / "candidates.jsonl"
    lines = [json.dumps(program_row(cfg.data.dataset, pid, code))
             for pid, codes in programs.items() for code in codes]  # fmt: skip
    atomic_write_text(candidates, "\n".join(lines) + "\n")
    settings = EvalSettings(
        dataset=cfg.data.dataset,
        split=cfg.data.split,
        ids=sorted(programs),
        model=cfg.model.name,
        checkpoint=str(checkpoint),
        rank_only=str(candidates),
        ks=[1],
        sampling=SamplingSettings(seed=cfg.run.seed),
        timeout=cfg.collect.timeout,
        workers=cfg.collect.workers or None,
        backend=cfg.model.backend,
        threads=cfg.run.threads,
    ).resolved()
    outcome = run_eval(settings, eval_dir, resume=True, on_event=on_event, plots=False)
    assert outcome.report is not None  # one process, every problem done
    figures = outcome.report["figures"]
    pass1 = _pass_at_1(figures["metrics"]["all"])
    chosen = figures["best_ranker"] or DEFAULT_RANKER
    config = read_checkpoint_config(checkpoint)
    policy = None
    if cfg.select.policy and config["config"].get("mode") == "lmhead":
        trained = sample_policy(settings, policy_dir, cfg, on_event)
        policy = {"trained": trained, "base": pass1["unranked"]}
        policy["chosen"] = "trained" if trained >= pass1["unranked"] else "base"
    config["ranker"] = chosen
    if policy is not None:
        config["policy"] = policy["chosen"]
    without_tests = None
    if cfg.select.without_tests:
        sampling = policy["chosen"] if policy is not None else config.get("policy")
        without_tests = select_without_tests(settings, out_dir / "no-tests", cfg, sampling,
                                             on_event)  # fmt: skip
        config["ranker_without_tests"] = without_tests["ranker"]
    atomic_write_text(checkpoint / "bcoder_config.json", json.dumps(config, indent=1))
    summary = {
        "ranker": chosen,
        "label": RANKER_LABELS[chosen],
        "learned": list(LEARNED),
        "problems": len(programs),
        "samples": sum(len(c) for c in programs.values()),
        "pass@1": pass1,
        "auc": figures.get("auc"),
        # unranked pass@1 of the held-out problems under each policy, and the one kept; None
        # when not checked (select.policy off, or a mode whose policy is the checkpoint's or
        # cannot sample the checkpoint's in the decode loop)
        "policy": policy,
        # the ranker for problems without tests and every agreement ranker's pass@1 on the
        # held-out problems under the no-tests protocol; None when not chosen
        "without_tests": without_tests,
    }
    atomic_write_text(out_dir / SELECT_JSON, json.dumps(summary, indent=1) + "\n")
    return summary


def _pass_at_1(cells: dict[str, Any]) -> dict[str, float]:
    """pass@1 of every ranker a report shows (the agreement ones only when tests were written
    for them), unranked and the upper bound, from its ``metrics["all"]``."""
    from bcoder.evaluate.report import ranked_method
    from bcoder.ranking.rankers import RANKERS

    pass1 = {n: cells[ranked_method(n)]["1"]["value"] for n in RANKERS if ranked_method(n) in cells}
    pass1.update({m: cells[m]["1"]["value"] for m in ("unranked", "upper_bound")})
    return pass1


def _stamp(out_dir: Path, digest: str) -> None:
    """Make ``out_dir`` the select runs of the weights ``digest``: its eval runs are removed
    (to start again) when other weights scored them."""
    stamp = out_dir / STAMP
    if not (stamp.is_file() and stamp.read_text().strip() == digest):
        for run in ("eval", "policy", "no-tests"):
            shutil.rmtree(out_dir / run, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, digest + "\n")


def select_without_tests(
    ranked: Any, out: Path, cfg: TrainConfig, policy: str | None, on_event: EventFn | None
) -> dict[str, Any]:
    """The agreement ranker with the best pass@1 on the held-out problems of ``ranked`` (the
    rank-only EvalSettings) under the no-tests protocol: sampled as collect sampled them (with
    the policy the checkpoint keeps), tests written by the model (ties: the default)."""
    from bcoder.evaluate.report import ranked_method
    from bcoder.evaluate.run import run_eval
    from bcoder.ranking.rankers import AGREEMENT, DEFAULT_RANKER_WITHOUT_TESTS

    sampling = dataclasses.replace(
        cfg.collect.sampling(),
        max_new_tokens=ranked.sampling.max_new_tokens,
        seed=ranked.sampling.seed,
        policy=policy,
    )
    settings = dataclasses.replace(ranked, rank_only=None, sampling=sampling, protocol="no-tests")
    outcome = run_eval(settings, out, resume=True, on_event=on_event, plots=False)
    assert outcome.report is not None
    cells = outcome.report["figures"]["metrics"]["all"]
    pass1 = {n: float(cells[ranked_method(n)]["1"]["value"]) for n in AGREEMENT}
    best = max(pass1.values())
    chosen = DEFAULT_RANKER_WITHOUT_TESTS
    if pass1[chosen] < best:
        chosen = next(n for n in AGREEMENT if pass1[n] == best)
    unranked = float(cells["unranked"]["1"]["value"])
    return {"ranker": chosen, "pass@1": pass1, "unranked": unranked, "problems": len(ranked.ids)}


def sample_policy(ranked: Any, out: Path, cfg: TrainConfig, on_event: EventFn | None) -> float:
    """The trained policy's unbiased pass@1 on the held-out problems of ``ranked`` (the rank-only
    EvalSettings), sampled as collect sampled the checkpoint policy there."""
    from bcoder.evaluate.run import run_eval

    sampling = dataclasses.replace(
        cfg.collect.sampling(),
        max_new_tokens=ranked.sampling.max_new_tokens,
        seed=ranked.sampling.seed,
        policy="trained",
    )
    settings = dataclasses.replace(ranked, rank_only=None, sampling=sampling)
    outcome = run_eval(settings, out, resume=True, on_event=on_event, plots=False)
    assert outcome.report is not None
    return float(outcome.report["figures"]["metrics"]["all"]["unranked"]["1"]["value"])
