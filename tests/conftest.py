"""Shared fixtures: real dataset rows kept in tests/fixtures/data, and a tokenizer and tiny random
models built locally (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real MBPP and APPS rows, copied verbatim into the repository (see its README.md), laid out as
# a $BCODER_DATA folder: mbpp/mbpp.jsonl and apps/*.jsonl.
FIXTURE_DATA = Path(__file__).resolve().parent / "fixtures" / "data"


@pytest.fixture(scope="session")
def fixture_data() -> Path:
    """tests/fixtures/data: the real rows the tests read (always there, never a skip)."""
    return FIXTURE_DATA


@pytest.fixture(scope="session", autouse=True)
def named_datasets_are_the_fixture_data():
    """$BCODER_DATA is tests/fixtures/data for every test and the processes it starts: dataset
    names (``mbpp``, ``mbpp:11``, a train config's ``data.dataset = "mbpp"``) resolve to the
    fixture rows, never to the machine's own data, cache or the hub. A test of those other
    sources removes the variable itself (monkeypatch.delenv)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BCODER_DATA", str(FIXTURE_DATA))
        yield


@pytest.fixture(scope="session", autouse=True)
def torch_shares_the_cores_among_workers():
    """Under pytest-xdist each worker's torch would use every core, so in-process model tests
    oversubscribe them: a worker gets its share (at least one thread). One process: untouched."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        from bcoder.models.hardware import usable_cpus

        torch.set_num_threads(max(1, usable_cpus() // workers))
    yield


@pytest.fixture(scope="session")
def tokenizer():
    from support.tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny causal LM + tokenizer saved as a local model directory."""
    from support.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal"), "causal")


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory) -> Path:
    """A tiny T5-style seq2seq LM + tokenizer saved as a local model directory."""
    from support.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-seq2seq"), "seq2seq")
