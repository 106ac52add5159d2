"""Test support: tiny models and tokenizers built from configs (no network)."""
