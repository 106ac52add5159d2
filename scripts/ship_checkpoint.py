"""Copy a training run's checkpoint into a folder of shipped checkpoints, with TRAINING.json.

    python3 scripts/ship_checkpoint.py RUN_DIR [--into bcoder/checkpoints] [--name NAME]

The folder is what bcoder/qmodel/shipped.py serves by default for the checkpoint's base model (the
package's own bcoder/checkpoints, or a team's BCODER_CHECKPOINTS). TRAINING.json records what the
checkpoint was trained on: the run's config, its collected programs by outcome, its stage times,
the held-out diagnostics of phi and theta and the held-out choices of ranker and policy
(select.json), so that `solve` can name them. ``--reselect`` takes a new select result into an
already shipped checkpoint of the same weights and keeps the rest of its TRAINING.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from bcoder.core.fs import atomic_dir
from bcoder.evaluate.records import weights_sha256
from bcoder.qmodel.config import read_checkpoint_config
from bcoder.ranking.rankers import DEFAULT_RANKER
from bcoder.train.data import ShardStore, TrainingData, heldout_problems
from bcoder.train.select import SELECT_JSON


def collected(run: Path, heldout_frac: float, seed: int) -> dict:
    """Problems and programs of the run's collect, by source and outcome: all of them, and those
    featurized (what training saw: TrainingData's rows with features)."""
    store = ShardStore(run / "data" / "collect")
    featurized = iter(TrainingData.load(run / "data").featurized)  # rows in collect's order
    problems: set[str] = set()
    reached: set[str] = set()  # problems with featurized programs
    outcomes: Counter = Counter()
    trained: Counter = Counter()
    for entry in store.shards():
        table = store.load(entry["name"]).data.table
        cols = [table.column(c).to_pylist() for c in ("problem_id", "source", "outcome", "count")]
        for pid, source, outcome, count in zip(*cols, strict=True):
            problems.add(pid)
            outcomes[f"{source}/{outcome}"] += count
            fed = next(featurized)
            trained[f"{source}/{outcome}"] += count if fed else 0
            if fed:
                reached.add(pid)
    held = heldout_problems(sorted(problems), heldout_frac, seed)
    return {
        "problems": len(problems),
        "heldout_problems": len(held),
        "trained_problems": len(reached - held),
        "programs": dict(outcomes),
        "featurized_programs": dict(trained),
    }


def summarize(cfg: dict, data: dict, select: dict | None, meta: dict) -> str:
    """The one line `solve` shows for the checkpoint: mode, data, ranker and policy."""
    fed = data["featurized_programs"]
    samples = sum(n for k, n in fed.items() if k.startswith("sample/"))
    passed = fed.get("sample/pass", 0)
    unparsed = cfg["collect"].get("ground_truth_style") == "unparse"
    style = " (as ast.unparse prints them)" if unparsed else ""
    chosen = (
        f"{select['ranker']} (chosen on the held-out problems)"
        if select
        else f"{meta.get('ranker', DEFAULT_RANKER)} (the paper's; not yet chosen on held-out problems)"
    )
    summary = (
        f"{cfg['model']['mode']} mode on {cfg['data']['dataset']} {cfg['data']['split']}: "
        f"{data['trained_problems']} problems trained, "
        f"{data['heldout_problems']} held out; {samples} samples at temperature "
        f"{cfg['collect']['temperature']} ({passed} pass) plus the ground truths{style}; "
        f"ranks by {chosen}"
    )
    policy = (select or {}).get("policy")
    if policy:  # lmhead mode: which policy samples, by held-out pass@1 (train/select.py)
        base = policy.get("base", policy.get("checkpoint"))  # "checkpoint": before the name base
        figures = f"{policy['trained']:.1%} against {base:.1%} held out"
        which = "the trained" if policy["chosen"] == "trained" else "the base model's"
        summary += f"; samples from {which} policy (trained policy pass@1 {figures})"
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--into", type=Path, default=Path("bcoder/checkpoints"))
    ap.add_argument("--name", default=None, help="folder name (default: the base model's)")
    ap.add_argument(
        "--reselect",
        action="store_true",
        help="only take a new select result (ranker, policy) into the shipped checkpoint of the "
        "same weights, keeping the rest of its TRAINING.json (the run needs no features)",
    )
    args = ap.parse_args()
    run, checkpoint = args.run, args.run / "checkpoint"
    meta = read_checkpoint_config(checkpoint)
    cfg = json.loads((run / "config.json").read_text())
    base = meta["config"]["base_model"]
    name = args.name or f"{Path(str(base)).name}-{cfg['model']['mode']}"
    target = args.into / name
    select_json = run / "select" / SELECT_JSON
    select = json.loads(select_json.read_text()) if select_json.is_file() else None
    if args.reselect:
        if select is None or weights_sha256(target) != weights_sha256(checkpoint):
            raise SystemExit(f"{target}: not the weights of {checkpoint}, or no select result")
        info = json.loads((target / "TRAINING.json").read_text())
        summary = summarize(info["config"], info["data"], select, meta)  # the training's config
        info.update(select=select, summary=summary)
    else:
        data = collected(run, cfg["data"]["heldout_frac"], cfg["run"]["seed"])
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        info = {
            "name": f"bcoder {name}",
            "summary": summarize(cfg, data, select, meta),
            "base_model": base,
            "data": data,
            "select": select,
            "stages": json.loads((run / "stages.json").read_text()),
            "diagnostics": {  # each stage's held-out diagnostics (mean R~ by outcome, TD error, ...)
                stage: json.loads((run / stage / "diagnostics.json").read_text())
                for stage in ("phi", "theta")
                if (run / stage / "diagnostics.json").is_file()
            },
            "config": cfg,
            "code_commit": commit or None,
        }
    with atomic_dir(target) as tmp:
        for path in checkpoint.iterdir():
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        (tmp / "TRAINING.json").write_text(json.dumps(info, indent=1) + "\n")
        if "ranker" not in meta:  # not selected yet: ship the default, named
            meta["ranker"] = DEFAULT_RANKER
            (tmp / "bcoder_config.json").write_text(json.dumps(meta, indent=1))
    print(f"{target}: {info['summary']}")


if __name__ == "__main__":
    main()
