"""B-Coder training recipes (DESIGN section 2, the paper's Algorithm 1 and Appendix H).

    collect -> featurize -> phi-stage -> theta-stage      (bcoder.train.run: run_collect, ...)

Modules: ``config`` (TrainConfig and load_config), ``data`` (sharded stores, TrainingData,
MixedSampler), ``programs`` (a program as a training record: the policy's actions, its reward
from the sandbox), ``collect`` (sampled programs and ground truths) / ``offpolicy`` (imported
programs), ``features`` (the stored per-token features' format) / ``featurize`` (computing them),
``objectives`` (the phi and theta losses), ``loop`` (optimisation, checkpoints, resume),
``setup`` (what every stage sets up) / ``stage`` (what the phi- and theta-stage share),
``phi`` / ``theta`` (the stages), ``diagnostics`` (is training healthy?), ``select`` (the
checkpoint's ranker and policy on held-out problems).
The ``bcoder train`` command (bcoder.cli.train) is a thin layer over ``run``.
"""
