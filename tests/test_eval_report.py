"""bcoder eval's figures, recomputed here by independent, naive code from the stored records."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random

import numpy as np
import pytest

from bcoder.evaluate.markdown import render
from bcoder.evaluate.paper import comparison_rows, paper_figures
from bcoder.evaluate.plots import write_plots
from bcoder.evaluate.records import (
    CandidateRecord,
    ProblemRecord,
    read_record,
    record_path,
    write_record,
)
from bcoder.evaluate.report import METHODS, best_ranker, compute_figures, ranked_method
from bcoder.ranking.rankers import AGREEMENT, LEARNED, RANKER_LABELS, RANKERS

# what a run reports when it wrote no tests: every ranker but the agreement ones
PER_CANDIDATE = [r for r in RANKERS if r not in AGREEMENT]

REWARD = {"pass": 1.0, "fail": -0.3, "runtime_error": -0.6, "compile_error": -1.0}


def synthetic_records(n_problems: int = 9, m: int = 6, seed: int = 1) -> list[ProblemRecord]:
    """Problems with duplicates, score ties, mixed outcomes, difficulties and example tests."""
    rng = random.Random(seed)
    records = []
    for i in range(n_problems):
        left, cands = m, []
        while left:
            count = min(left, rng.choice([1, 1, 1, 2, 3]))
            left -= count
            outcome = rng.choice(["pass", "fail", "fail", "runtime_error", "compile_error"])
            reward = round(rng.gauss(REWARD[outcome], 0.8), 1)  # rounding makes ties
            n_tok = rng.randint(3, 30)
            sum_lp = -rng.uniform(1, 40)
            last_q = round(rng.gauss(REWARD[outcome], 0.5), 1)  # the terminal Q, with ties
            columns = {"id": [7] * n_tok, "q": [0.0] * (n_tok - 1) + [last_q], "v": [0.5] * n_tok,
                       "a": [0.0] * n_tok, "r": [0.0] * n_tok, "logprob": [-1.0] * n_tok}  # fmt: skip
            cands.append(
                CandidateRecord(
                    code=f"# p{i} c{len(cands)}",
                    count=count,
                    reward=reward,
                    mean_logprob=sum_lp / n_tok,
                    sum_logprob=sum_lp,
                    outcome=outcome,
                    true_reward=REWARD[outcome],
                    passed_examples=(outcome == "pass") or rng.random() < 0.3,
                    n_tokens=n_tok,
                    tokens=columns,
                )
            )
        diff = ["introductory", "interview", "competition"][i % 3]
        records.append(ProblemRecord(f"apps/test/{i}", diff, i % 4 != 0, cands))
    return records


def per_sample(record: ProblemRecord) -> list[dict]:
    """The M samples, each distinct program repeated count times in stored order."""
    out = []
    for c in record.candidates:
        out += [vars(c)] * c.count
    return out


def top_k_passes(samples: list[dict], score, k: int) -> float:
    """Naive CodeT protocol: sort by score (highest first, earlier sample on ties), any of top k."""
    order = sorted(range(len(samples)), key=lambda i: (-score(i), i))
    return float(any(samples[i]["outcome"] == "pass" for i in order[:k]))


def naive_score(x: dict, ranker: str) -> tuple:
    """Each ranker's key of a sample, written out (tuples compare in order: tests first)."""
    terminal = x["tokens"]["q"][-1] if x["tokens"] else -math.inf
    return {
        "reward": (x["reward"],),
        "terminal": (terminal,),
        "tests-first": (bool(x["passed_examples"]), x["reward"]),
        "tests-first-terminal": (bool(x["passed_examples"]), terminal),
        "mean-logprob": (x["mean_logprob"],),
        "sum-logprob": (x["sum_logprob"],),
        "tests-first-logprob": (bool(x["passed_examples"]), x["mean_logprob"]),
        "random": (hashlib.sha256(x["code"].encode()).hexdigest(),),
    }[ranker]


def top_k_by_key(samples: list[dict], ranker: str, k: int) -> float:
    """Naive CodeT protocol by a ranker's key: highest first, earlier sample on ties."""
    order = sorted(
        range(len(samples)), key=lambda i: (naive_score(samples[i], ranker), -i), reverse=True
    )
    return float(any(samples[i]["outcome"] == "pass" for i in order[:k]))


def naive_values(record: ProblemRecord, k: int) -> dict[str, float | None]:
    s = per_sample(record)
    n, c = len(s), sum(x["outcome"] == "pass" for x in s)
    keep = [x for x in s if x["passed_examples"]]
    return {
        "unranked": 1 - math.comb(n - c, k) / math.comb(n, k),
        **{"ranked_" + r.replace("-", "_"): top_k_by_key(s, r, k) for r in PER_CANDIDATE},
        "filtered_reward": (
            top_k_passes(keep, lambda i: keep[i]["reward"], k) if record.has_example_tests else None
        ),
        "upper_bound": top_k_passes(s, lambda i: s[i]["true_reward"], k),
    }


def naive_ci(values: list[float], n_boot: int, seed: int) -> list[float]:
    """Percentile bootstrap of the mean, resampling problems with numpy's default_rng(seed)."""
    x = np.array(values)
    rng = np.random.default_rng(seed)
    means = [x[rng.integers(0, len(x), len(x))].mean() for _ in range(n_boot)]
    return list(np.quantile(means, [0.025, 0.975]))


def test_every_pass_at_k_figure_recomputed_from_the_records():
    records, ks, seed, n_boot = synthetic_records(), [1, 2, 5], 3, 200
    figures = compute_figures(records, ks, seed=seed, n_boot=n_boot)
    metrics = figures["metrics"]
    assert list(metrics) == ["introductory", "interview", "competition", "all"]
    checked = 0
    for k in ks:
        naive = [naive_values(r, k) for r in records]
        for group, cells in metrics.items():
            members = [i for i, r in enumerate(records) if group in ("all", r.difficulty)]
            for method, by_k in cells.items():
                vals = [naive[i][method] for i in members if naive[i][method] is not None]
                cell = by_k[str(k)]
                assert cell["n"] == len(vals)
                assert cell["value"] == pytest.approx(np.mean(vals), abs=1e-12), (group, method, k)
                assert cell["ci"] == pytest.approx(naive_ci(vals, n_boot, seed), abs=1e-12)
                checked += 1
    agreement = {ranked_method(r) for r in AGREEMENT}  # no tests written: not reported
    assert set(metrics["all"]) == set(METHODS) - agreement and len(metrics["all"]) == 11
    assert checked == len(ks) * 4 * len(metrics["all"])
    # The figures are not all trivially equal: the data exercises the differences.
    all1 = {m: c["1"]["value"] for m, c in metrics["all"].items()}
    assert all1["upper_bound"] > all1["unranked"] > 0
    assert len(set(all1.values())) >= 4


def test_learned_rankers_against_likelihood_paired_bootstrap():
    """The difference to a likelihood ranking, per problem, then a bootstrap that resamples
    problems with both rankings' values together (recomputed naively)."""
    records, ks, seed, n_boot = synthetic_records(), [1, 2], 5, 300
    table = compute_figures(records, ks, seed=seed, n_boot=n_boot)["vs_likelihood"]
    pairs = [(r, "mean-logprob") for r in LEARNED]
    pairs += [
        ("tests-first", "tests-first-logprob"),
        ("tests-first-terminal", "tests-first-logprob"),
    ]
    assert list(table) == [f"{a} - {b}" for a, b in pairs]
    nonzero = 0
    for k in ks:
        naive = [naive_values(r, k) for r in records]
        for a, b in pairs:
            diff = [v[ranked_method(a)] - v[ranked_method(b)] for v in naive]
            cell = table[f"{a} - {b}"][str(k)]
            assert cell["value"] == pytest.approx(np.mean(diff), abs=1e-12)
            assert cell["ci"] == pytest.approx(naive_ci(diff, n_boot, seed), abs=1e-12)
            assert cell["n"] == len(records)
            nonzero += any(diff)
    assert nonzero  # the synthetic rankings really differ somewhere


def subset_mean(s: list[dict], k: int, m: int) -> float:
    """Ranked pass@k by R~ averaged over every m-subset of the samples (brute force)."""
    values = []
    for sub in itertools.combinations(range(len(s)), m):
        chosen = [s[i] for i in sub]
        values.append(top_k_passes(chosen, lambda i, c=chosen: c[i]["reward"], k))
    return float(np.mean(values))


def test_pass_at_k_against_m_is_the_mean_over_all_m_subsets():
    records, ks = synthetic_records(n_problems=4, m=6), [1, 2]
    curves = compute_figures(records, ks, n_boot=10)["pass_at_k_vs_m"]
    assert curves["m"] == [1, 2, 4, 6]
    for k in ks:
        for j, m in enumerate(curves["m"]):
            if k > m:
                assert curves["ranked_reward"][str(k)][j] is None
                continue
            per_problem = [subset_mean(per_sample(r), k, m) for r in records]
            assert curves["ranked_reward"][str(k)][j] == pytest.approx(np.mean(per_problem))
            n_c = [
                (len(per_sample(r)), sum(c.count for c in r.candidates if c.passed))
                for r in records
            ]
            unranked = np.mean([1 - math.comb(n - c, k) / math.comb(n, k) for n, c in n_c])
            assert curves["unranked"][str(k)][j] == pytest.approx(unranked)


def test_outcome_auc_and_calibration_figures_recomputed():
    records = synthetic_records()
    fig = compute_figures(records, [1], n_boot=10)
    samples = [x for r in records for x in per_sample(r)]
    for outcome, stats in fig["outcomes"].items():
        mine = [x for x in samples if x["outcome"] == outcome]
        assert stats["n"] == len(mine)
        assert stats["share"] == pytest.approx(len(mine) / len(samples))
        assert stats["reward_mean"] == pytest.approx(np.mean([x["reward"] for x in mine]))
    assert list(fig["auc"]) == PER_CANDIDATE  # an AUC per ranker
    for name in PER_CANDIDATE:
        pos = [naive_score(x, name) for x in samples if x["outcome"] == "pass"]
        neg = [naive_score(x, name) for x in samples if x["outcome"] != "pass"]
        wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
        assert fig["auc"][name] == pytest.approx(wins / (len(pos) * len(neg))), name
    assert len(set(fig["auc"].values())) == len(PER_CANDIDATE)  # the rankers do differ here
    bins = fig["calibration"]
    assert sum(b["n"] for b in bins) == len(samples) and len(bins) == 10
    ordered = sorted((x["reward"], x["true_reward"], x["outcome"] == "pass") for x in samples)
    start = 0
    for b in bins:
        chunk = ordered[start : start + b["n"]]
        start += b["n"]
        assert b["reward_mean"] == pytest.approx(np.mean([c[0] for c in chunk]))
        assert b["true_reward_mean"] == pytest.approx(np.mean([c[1] for c in chunk]))
        assert b["pass_rate"] == pytest.approx(np.mean([c[2] for c in chunk]))


def _three(pid: str = "x/1") -> ProblemRecord:
    """A (highest R~, fails), B (highest mean log-prob and terminal Q, passes), C (highest sum
    log-prob, fails); B and C passed the example tests."""

    def q(last: float) -> dict[str, list[float]]:
        return {"id": [1, 2], "q": [0.0, last], "v": [0.5] * 2, "a": [0.0] * 2, "r": [0.0] * 2,
                "logprob": [-1.0] * 2}  # fmt: skip

    cands = [
        CandidateRecord(f"A {pid}", 1, 5.0, -2.0, -4.0, "fail", -0.3, False, 2, tokens=q(0.2)),
        CandidateRecord(f"B {pid}", 1, 1.0, -0.1, -9.0, "pass", 1.0, True, 2, tokens=q(0.9)),
        CandidateRecord(f"C {pid}", 1, 0.5, -1.0, -1.0, "runtime_error", -0.6, True, 2,
                        tokens=q(-0.5)),
    ]  # fmt: skip
    return ProblemRecord(pid, None, True, cands)


def test_ranking_baselines_order_candidates_as_defined():
    fig = compute_figures([_three()], [1, 2], n_boot=10)["metrics"]
    assert list(fig) == ["all"]  # no difficulty labels: only the overall group
    top1 = {m: c["1"]["value"] for m, c in fig["all"].items()}
    assert top1["ranked_reward"] == 0.0  # A first
    assert top1["ranked_terminal"] == 1.0  # B first
    assert top1["ranked_tests_first"] == 1.0  # B, C passed the examples; B has the better R~
    assert top1["ranked_tests_first_terminal"] == 1.0
    assert top1["ranked_mean_logprob"] == 1.0  # B first
    assert top1["ranked_sum_logprob"] == 0.0  # C first
    assert top1["upper_bound"] == 1.0  # the passing program first
    assert top1["filtered_reward"] == 1.0  # A fails the examples; B has the best R~ of the rest
    assert top1["unranked"] == pytest.approx(1 / 3)
    assert fig["all"]["ranked_reward"]["2"]["value"] == 1.0  # A, B
    assert fig["all"]["ranked_sum_logprob"]["2"]["value"] == 0.0  # C, A
    # Random order: a hash of each program, the same in every run, not biased to a position.
    many = [_three(f"p/{i}") for i in range(300)]
    firsts = []
    for r in many:
        keys = [hashlib.sha256(c.code.encode()).hexdigest() for c in r.candidates]
        firsts.append(keys.index(max(keys)))
    assert all(60 < firsts.count(j) < 140 for j in range(3))
    rand1 = compute_figures(many, [1], n_boot=10)["metrics"]["all"]["ranked_random"]["1"]
    assert rand1["value"] == pytest.approx(firsts.count(1) / 300)  # B is the one that passes
    again = compute_figures(many, [1], seed=5, n_boot=10)["metrics"]["all"]["ranked_random"]
    assert again["1"]["value"] == rand1["value"]  # the code alone decides, not the eval seed


def test_best_ranker_is_the_learned_one_with_the_best_pass_at_the_smallest_k():
    def table(**values):
        return {"all": {ranked_method(r): {"1": {"value": v}, "5": {"value": 0.0}}
                        for r, v in values.items()}}  # fmt: skip

    assert best_ranker(table(reward=0.2, terminal=0.3, mean_logprob=0.9), [5, 1]) == "terminal"
    assert best_ranker(table(terminal=0.3, reward=0.3), [1]) == "reward"  # ties: R~ first
    assert best_ranker({"all": {}}, [1]) is None


def test_records_round_trip_atomically(tmp_path):
    rec = synthetic_records(n_problems=1)[0]
    rec.candidates[0].tokens = {"id": [5, 6], "q": [0.5, 0.25], "r": [0.1, -0.2]}
    path = write_record(tmp_path, rec)
    assert path == record_path(tmp_path, rec.problem_id) and path.name.endswith(".json.gz")
    assert read_record(path).to_dict() == rec.to_dict()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_markdown_shows_every_overall_cell():
    records = synthetic_records()
    figures = compute_figures(records, [1, 5], n_boot=50)
    report = {
        "config": {"ks": [1, 5], "dataset": "apps", "split": "test", "model": "m",
                   "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 64, "seed": 0},
        "figures": figures,
        "model": {"name": "tiny"},
        "data": {"path": "x.jsonl", "sha256": "ab" * 32},
        "timings": {"total": 10.0, "problems": 9, "generate": 6.0, "score": 1.0, "execute": 3.0,
                    "per_problem": 1.1},
        "paper": comparison_rows("apps", figures["metrics"], 0.6),
    }  # fmt: skip
    md = render(report)
    for group in ("all", "introductory"):
        for cell in figures["metrics"][group].values():
            for k in ("1", "5"):
                c = cell[k]
                text = f"{100 * c['value']:.1f} [{100 * c['ci'][0]:.1f}, {100 * c['ci'][1]:.1f}]"
                assert text in md
    assert "| Table 1 | ranked_reward | 1 | all | 2.30 |" in md
    assert "paper" in md and "this run" in md
    for name in PER_CANDIDATE:  # a pass@k row and an AUC row per ranker
        label = RANKER_LABELS[name]
        assert f"| ranked by {label} | " in md
        (row,) = [line for line in md.splitlines() if line.startswith(f"| `{name}` | {label} |")]
        assert row.endswith(f" | {figures['auc'][name]:.3f} |")
    assert f"Best learned ranker by pass@1 here: `{figures['best_ranker']}`" in md
    for pair, by_k in figures["vs_likelihood"].items():  # the paired differences, k = 1 and 5
        c1, c5 = by_k["1"], by_k["5"]
        cells = [f"{100 * c['value']:.1f} [{100 * c['ci'][0]:.1f}, {100 * c['ci'][1]:.1f}]"
                 for c in (c1, c5)]  # fmt: skip
        assert f"| `{pair}` | {cells[0]} | {cells[1]} |" in md
    json.dumps(report)  # JSON-serialisable
    assert "- prompt:" not in md  # the dataset's prompt as it is: nothing to say
    report["config"] |= {"protocol": "no-tests", "prefill": True}
    (line,) = [x for x in render(report).splitlines() if x.startswith("- prompt:")]
    assert "protocol no-tests" in line and "prefilled" in line
    assert "write tests" not in md  # no test was written: the run-time line is as it was
    report["timings"] = {**report["timings"], "write_tests": 42.0}
    (line,) = [x for x in render(report).splitlines() if x.startswith("- run time:")]
    assert "write tests 42" in line and line.index("write tests") < line.index("execute")


def test_paper_numbers_transcribed():
    figs = {
        (f.table, f.model, f.method, f.k, f.difficulty, f.setting[:20]): f.value
        for f in paper_figures()
    }

    def get(t, model, method, k, d="all"):
        return next(v for key, v in figs.items() if key[:5] == (t, model, method, k, d))

    assert get("Table 1", "B-Coder", "ranked_reward", 1) == 2.30
    assert get("Table 1", "B-Coder", "ranked_reward", 5, "introductory") == 10.40
    assert get("Table 1", "RLTF 770M", "unranked", 1000) == 19.92
    assert get("Table 2", "B-Coder", "filtered_reward", 1, "interview") == 6.63
    assert get("Table 8", "B-Coder", "unranked", 100) == 9.18
    assert get("Table 9", "B-Coder", "upper_bound", 1, "competition") == 5.10
    mbpp = comparison_rows("mbpp", {}, temperature=0.6)
    assert {(r["method"], r["k"], r["paper"]) for r in mbpp} == {
        ("ranked_reward", 1, 20.13), ("unranked", 1, 13.52), ("ranked_reward", 5, 37.04),
        ("unranked", 5, 31.43), ("ranked_reward", 10, 44.45), ("unranked", 10, 39.82),
        ("ranked_reward", 80, 64.00), ("unranked", 80, 62.59),
    }  # fmt: skip
    assert all(r["run"] is None and r["table"] == "Table 4" for r in mbpp)
    assert {r["table"] for r in comparison_rows("apps", {}, 0.4, rank_only=True)} == {"Table 3"}


def test_plots_are_written_and_non_empty(tmp_path):
    import matplotlib.image

    records = synthetic_records()
    figures = compute_figures(records, [1, 2], n_boot=10)
    paths = write_plots(records, figures, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [
        "calibration.png",
        "pass_at_k_vs_m.png",
        "reward_density.png",
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 15_000
        img = matplotlib.image.imread(p)
        assert img.shape[0] > 300 and img.shape[1] > 500
        assert img[..., :3].std() > 0.05  # not a blank canvas
