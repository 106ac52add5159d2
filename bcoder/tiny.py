"""Tiny models and a tokenizer built locally, for tests, benchmarks and offline demos.

Nothing here touches the network: the tokenizer is a byte-level BPE trained in memory on a few
lines of Python, and the models are random-weight Llama (causal) and T5 (seq2seq) built from configs.
"""

from __future__ import annotations

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
