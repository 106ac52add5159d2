"""Tiny models and a tokenizer built locally, for tests, benchmarks and offline demos.

Nothing here touches the network: the tokenizer is a byte-level BPE trained in memory on a few
lines of Python, and the models are random-weight Llama (causal) and T5 (seq2seq) built from configs.
"""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    return n % 2 == 0\n",
    "for i in range(10):\n    print(i)\n",
    "import sys\nn = int(sys.stdin.readline())\nprint(n * 2)\n",
    "class Solution:\n    def solve(self, nums):\n        return sorted(nums)\n",
    '"""Return the largest element of a list."""\n',
    "assert add(1, 2) == 3\n",
    "```python\nx = [1, 2, 3]\n```\n",
    "Write a function to find the maximum of two numbers.\n",
    "QUESTION:\nRead two integers and print their sum.\nANSWER:\n",
]


def tiny_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer with <pad>=0, <|endoftext|>=1 (eos) and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_causal_lm(tokenizer, seed: int = 0, hidden_size: int = 32, layers: int = 2):
    """A random 2-layer Llama-style causal LM sized to ``tokenizer``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def tiny_seq2seq(tokenizer, seed: int = 0, d_model: int = 32, layers: int = 2):
    """A random 2-layer T5-style encoder-decoder sized to ``tokenizer``."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, T5Config

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=d_model * 2,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return AutoModelForSeq2SeqLM.from_config(config).eval()


def save_tiny_model(directory: str | Path, kind: str = "causal", seed: int = 0) -> Path:
    """Write a tiny model + tokenizer to ``directory`` (loadable as a local model source)."""
    directory = Path(directory)
    tokenizer = tiny_tokenizer()
    model = tiny_causal_lm(tokenizer, seed) if kind == "causal" else tiny_seq2seq(tokenizer, seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _rope_permute(w, n_head: int):
    """Rows of a q/k projection reordered from Hugging Face's rotate-half rotary layout to the
    adjacent-pairs layout that llama.cpp's "llama" architecture uses. Shape: (out, in) kept."""
    out = w.shape[0]
    return w.reshape(n_head, 2, out // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model, tokenizer, path: str | Path) -> Path:
    """Write a Llama-architecture Hugging Face causal LM and its byte-level BPE tokenizer as an
    F32 GGUF file that llama.cpp (and transformers) can load: the tiny models of the tests, with
    the same weights on both backends."""
    import gguf
    import numpy as np

    cfg = model.config
    path = Path(path)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("bcoder-tiny")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or 10000.0))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    # The tokenizer: byte-level BPE ("gpt2" in GGUF), ids in order, special tokens as controls.
    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    specials = set(tokenizer.all_special_tokens) | {
        t for t in vocab if t.startswith("<|") and t.endswith("|>")
    }
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _ in by_id])
    w.add_token_types(
        [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t, _ in by_id]
    )
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_eos_token_id(tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        w.add_pad_token_id(tokenizer.pad_token_id)
    w.add_add_bos_token(False)
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    H, KV = cfg.num_attention_heads, cfg.num_key_value_heads
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        names = {
            "attn_norm": "input_layernorm", "attn_output": "self_attn.o_proj",
            "attn_v": "self_attn.v_proj", "ffn_norm": "post_attention_layernorm",
            "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
        }  # fmt: skip
        w.add_tensor(f"blk.{i}.attn_q.weight", _rope_permute(sd[p + "self_attn.q_proj.weight"], H))
        w.add_tensor(f"blk.{i}.attn_k.weight", _rope_permute(sd[p + "self_attn.k_proj.weight"], KV))
        for ours, theirs in names.items():
            w.add_tensor(f"blk.{i}.{ours}.weight", np.ascontiguousarray(sd[p + theirs + ".weight"]))
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
