"""``bcoder eval``: the paper's evaluation protocol over a dataset, with reports and plots.

run_eval(settings, run_dir)     sample, score and execute M candidates per problem (resumable)
write_report(run_dir)           every figure (JSON + Markdown) and the plots of a run directory
compute_figures(records, ks)    the figures themselves, from the stored per-candidate records
"""

from bcoder.evaluate.config import EvalSettings, parse_ks, parse_shard
from bcoder.evaluate.report import compute_figures
from bcoder.evaluate.run import EvalOutcome, run_eval
from bcoder.evaluate.summary import build_report, write_report

__all__ = [
    "EvalOutcome",
    "EvalSettings",
    "build_report",
    "compute_figures",
    "parse_ks",
    "parse_shard",
    "run_eval",
    "write_report",
]
