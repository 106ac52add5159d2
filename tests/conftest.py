"""Shared fixtures: a tokenizer and tiny random models built locally (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a clean skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer():
    from bcoder.tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny causal LM + tokenizer saved as a local model directory."""
    from bcoder.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal"), "causal")


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory) -> Path:
    """A tiny T5-style seq2seq LM + tokenizer saved as a local model directory."""
    from bcoder.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-seq2seq"), "seq2seq")
