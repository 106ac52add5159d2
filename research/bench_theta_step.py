"""Cost of a theta-stage step against a plain cross-entropy fine-tuning step, same model and batch.

The theta-stage reads its frozen quantities (u_phi, the checkpoint's argmax) from featurize, so a
step should cost one forward/backward of the theta model, like supervised fine-tuning; the extra
work is the value heads on the hidden states and a few (B, T) reductions. This script measures it
on a small Llama built from a config (random weights, no download), in lora or full mode:

    python3 research/bench_theta_step.py --mode lora --layers 4 --hidden 512 --vocab 32000

Steps alternate (CE, theta, CE, theta, ...) so that load on a shared machine hits both alike;
the medians are reported with their ratio (aim: below 1.15x).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def build(args: argparse.Namespace):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel

    cfg = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=int(args.hidden * 2.75),
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        num_key_value_heads=max(1, args.hidden // 256),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(cfg)
    return BCoderModel(base, QConfig(mode=args.mode))


def make_inputs(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    B, P, T, V = args.batch, args.prompt, args.target, args.vocab
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    action_mask = (torch.arange(T)[None] < lengths[:, None]).long()
    return {
        "prompt_ids": torch.randint(0, V, (B, P), generator=g),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "action_ids": torch.randint(0, V, (B, T), generator=g) * action_mask,
        "action_mask": action_mask,
        "ckpt_argmax": torch.randint(0, V, (B, T), generator=g),
        "u_phi": torch.randn(B, T, generator=g),
        "reward": torch.tensor([1.0, -0.3, -0.6, -1.0] * (B // 4 + 1))[:B],
        "is_ground_truth": torch.arange(B) % 2 == 0,  # rho_real = 0.5
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("lora", "full"), default="lora")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--target", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from bcoder import rl
    from bcoder.train.objectives import ThetaObjective, action_batch, set_trainable

    model = build(args)
    params = set_trainable(model, "theta")
    lm_params = [p for n, p in model.named_parameters() if p.requires_grad and "head" not in n]
    objective = ThetaObjective(model).train()
    batch = make_inputs(args)
    opt_theta = torch.optim.AdamW(params, lr=1e-5)
    opt_ce = torch.optim.AdamW(lm_params, lr=1e-5)

    def ce_step() -> None:
        logits, _ = model.run_lm("theta", action_batch(batch))  # (B, T, V)
        loss = rl.cross_entropy_loss(logits.float(), batch["action_ids"], batch["action_mask"])
        loss.backward()
        opt_ce.step()
        opt_ce.zero_grad(set_to_none=True)

    def theta_step() -> None:
        loss, _ = objective(batch)
        loss.backward()
        opt_theta.step()
        opt_theta.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {"ce": [], "theta": []}
    ce_step(), theta_step()  # warm-up
    for _ in range(args.repeats):
        for name, step in (("ce", ce_step), ("theta", theta_step)):
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    ce, theta = statistics.median(times["ce"]), statistics.median(times["theta"])
    n = sum(p.numel() for p in model.lm.parameters()) / 1e6
    tokens = int(batch["action_mask"].sum())
    print(
        f"mode={args.mode} model={n:.0f}M params (L={args.layers}, H={args.hidden}, "
        f"V={args.vocab}) batch={args.batch}x({args.prompt}+{args.target}) tokens={tokens} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"CE step    median {ce * 1000:8.1f} ms  (min {min(times['ce']) * 1000:.1f})")
    print(f"theta step median {theta * 1000:8.1f} ms  (min {min(times['theta']) * 1000:.1f})")
    print(
        f"ratio theta/CE: {theta / ce:.3f}x (min/min {min(times['theta']) / min(times['ce']):.3f}x)"
    )


if __name__ == "__main__":
    main()
