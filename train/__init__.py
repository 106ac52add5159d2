"""B-Coder training recipes (DESIGN section 2, the paper's Algorithm 1 and Appendix H).

    collect -> featurize -> phi-stage -> theta-stage      (bcoder.train.run: run_collect, ...)

Modules: ``config`` (TrainConfig and load_config), ``data`` (sharded stores, TrainingData,
MixedSampler), ``collect`` / ``imports`` (programs and their rewards), ``featurize`` (frozen
per-token quantities), ``objectives`` (the phi and theta losses), ``loop`` (optimisation,
checkpoints, resume), ``phi`` / ``theta`` (the stages), ``diagnostics`` (is training healthy?).
The ``bcoder train`` command (bcoder.cli.train) is a thin layer over ``run``.
"""
