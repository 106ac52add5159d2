"""Cost of one theta-stage step in the CPU modes whose advantages can learn, on the same batch.

- ``lmhead``: the logit adapter l_theta = l_ckpt + B A h on stored hidden states, evaluated at the
  checkpoint's stored top-k and the taken action only (bcoder.qmodel.adapter), plus the value heads:
  the real ThetaObjective step.
- ``top-n LoRA``: LoRA on the top n transformer blocks, run from their cached inputs (the hidden
  states entering block L-n at every prompt and program position, which featurize would store),
  then the final norm and the full LM head for max_b l_theta and the cross-entropy. Built as a
  Llama with n layers fed ``inputs_embeds`` (peft LoRA on all its linear layers, r=16).
- ``head``: value heads only (the policy cannot move), for scale.

Defaults are Qwen2.5-Coder-1.5B's sizes (H=1536, V=151936, 12 heads, 2 KV heads, MLP 8960),
random weights, no download. Steps alternate so that load on a shared machine hits all alike;
medians are reported per step and per program token:

    python3 research/bench_cpu_theta.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def theta_batch(args: argparse.Namespace, g: torch.Generator) -> dict[str, torch.Tensor]:
    """A theta-stage batch as TrainingData.collate gives it in lmhead mode (random values)."""
    B, T, V, H, K = args.batch, args.target, args.vocab, args.hidden, args.topk
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    top_l = torch.randn(B, T, K, generator=g).sort(dim=-1, descending=True).values
    return {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long),
        "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "action_ids": torch.randint(0, V, (B, T), generator=g) * mask,
        "action_mask": mask,
        "hidden": torch.randn(B, T, H, generator=g),
        "ckpt_adv": -torch.rand(B, T, generator=g),
        "ckpt_argmax": torch.randint(0, V, (B, T), generator=g),
        "topk_ids": torch.randint(0, V, (B, T, K), generator=g),
        "topk_logits": top_l,
        "ckpt_logit": top_l[..., 0] - torch.rand(B, T, generator=g),
        "tail_lse": torch.full((B, T), 3.0),
        "u_phi": torch.randn(B, T, generator=g),
        "reward": torch.tensor([1.0, -0.3, -0.6, -1.0] * (B // 4 + 1))[:B],
        "is_ground_truth": torch.arange(B) % 2 == 0,  # rho_real = 0.5
    }


def q_model(args: argparse.Namespace, mode: str):
    """A BCoderModel with the real heads and adapter sizes. Its base is a 1-layer Llama with a
    small vocabulary (the step never runs it); the adapter is sized to the full vocabulary."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from bcoder.qmodel.adapter import LogitAdapter
    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel

    cfg = LlamaConfig(
        vocab_size=256,
        hidden_size=args.hidden,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
    )
    model = BCoderModel(AutoModelForCausalLM.from_config(cfg), QConfig(mode=mode, lora_r=args.r))
    if mode == "lmhead":
        model.logit_adapter = LogitAdapter(args.hidden, args.vocab, args.r, 32 / args.r)
        with torch.no_grad():  # as after some training: every row of B gets gradient
            model.logit_adapter.up.weight.normal_(0, 1e-3)
    return model


def top_blocks(args: argparse.Namespace):
    """A Llama of the top n blocks + final norm + LM head, LoRA on its linear layers."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.mlp,
        num_hidden_layers=args.top,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        tie_word_embeddings=True,  # one (V, H) matrix in memory
    )
    lm = AutoModelForCausalLM.from_config(cfg)
    lora = LoraConfig(r=args.r, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                      "o_proj", "gate_proj", "up_proj", "down_proj"])  # fmt: skip
    return get_peft_model(lm, lora)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=1536)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--mlp", type=int, default=8960)
    ap.add_argument("--top", type=int, default=1, help="blocks LoRA trains (top-n mode)")
    ap.add_argument("--r", type=int, default=16, help="adapter / LoRA rank")
    ap.add_argument("--topk", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--target", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from bcoder import rl
    from bcoder.train.objectives import ThetaObjective, set_trainable

    g = torch.Generator().manual_seed(0)
    batch = theta_batch(args, g)
    steps = {}
    for mode in ("lmhead", "head"):
        model = q_model(args, mode)
        objective = ThetaObjective(model).train()
        opt = torch.optim.AdamW(set_trainable(model, "theta"), lr=1e-4)

        def step(objective=objective, opt=opt) -> None:
            objective(batch)[0].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps[mode] = step

    top = top_blocks(args)
    P, B, T = args.prompt, args.batch, args.target
    cached = torch.randn(B, P + T, args.hidden, generator=g)  # inputs of block L-n
    top_params = [p for p in top.parameters() if p.requires_grad]
    top_opt = torch.optim.AdamW(top_params, lr=1e-4)

    def top_step() -> None:
        out = top(inputs_embeds=cached, logits_to_keep=T + 1, use_cache=False)
        lf = out.logits[:, :-1].float()  # (B, T, V): l_theta at s_t
        actions, mask = batch["action_ids"], batch["action_mask"]
        adv = rl.taken(lf, actions) - lf.max(dim=-1).values  # A_theta, (B, T)
        loss = (adv**2 * mask).mean() + rl.cross_entropy_loss(lf, actions, mask)
        loss.backward()
        top_opt.step()
        top_opt.zero_grad(set_to_none=True)

    steps[f"top-{args.top} LoRA"] = top_step
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(args.repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    tokens = int(batch["action_mask"].sum())
    print(
        f"H={args.hidden} V={args.vocab} r={args.r} k={args.topk} batch={B}x({P}+{T}) "
        f"program tokens={tokens} threads={torch.get_num_threads()}"
    )
    base = statistics.median(times["lmhead"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{name:12s} median {med * 1000:9.1f} ms/step  {med / tokens * 1e6:8.1f} us/token"
            f"  ({med / base:6.2f}x lmhead)"
        )


if __name__ == "__main__":
    main()
