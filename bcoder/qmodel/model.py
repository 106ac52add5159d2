"""The dueling Q-model of B-Coder: a Hugging Face LM composed with value heads (DESIGN section 2).

Three networks share one interface, selected by ``QConfig.mode``:

- ``head``: the backbone is frozen. phi and theta are value heads on its hidden states; the
  theta policy stays the checkpoint policy (l_theta = l_ckpt), only V and r~ are learned.
- ``lora``: one frozen base; phi and theta are LoRA adapters (peft) plus value heads. The
  checkpoint policy is the base with adapters disabled.
- ``full``: the paper's setting: trainable copies of the LM for phi and theta, a frozen checkpoint.
- ``lmhead``: the backbone is frozen, as in head mode, but theta's logits learn too: a low-rank
  adapter on the LM head, l_theta = l_ckpt + B A h (bcoder.qmodel.adapter), applied at every decode step.

Quantities per action token (index t holds (s_t, a_t)):
  A(s, a) = alpha * (l(s, a) - max l(s))               advantage from logits
  V_phi(s) = R_max - softabs(u_phi(s))                 phi value
  V_theta(s) = R_max - softabs(u_phi(s) + h1(s) - h2(s)) theta value, residual head zero at init
  Q(s, a) = A(s, a) + V(s)

For causal LMs the state s_t is read at the position *before* a_t (the last prompt token for
t = 0). For encoder-decoder LMs the decoder input is [start, a_0 .. a_{t-1}], so s_t is position t.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from bcoder import rl
from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_dir
from bcoder.qmodel.adapter import ADAPTER_FILE, LogitAdapter
from bcoder.qmodel.batch import ActionBatch, QOutput, cache_arg, cache_of
from bcoder.qmodel.config import (
    CHECKPOINT_FORMAT,
    FROZEN_BACKBONE,
    QConfig,
    Role,
    read_checkpoint_config,
)
from bcoder.qmodel.heads import ValueHead


def base_fingerprint(base: nn.Module) -> str:
    """A short identity of a base LM: architecture, sizes and a sample of its embedding weights.

    Weights are rounded to bfloat16 first, so the same model loaded in float32 or bfloat16 agrees.
    """
    h = hashlib.sha256()
    cfg = base.config
    h.update(type(base).__name__.encode())
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_layers", "d_model"):
        h.update(f"{key}={getattr(cfg, key, None)};".encode())
    for emb in (base.get_input_embeddings(), base.get_output_embeddings()):
        if emb is not None:
            sample = emb.weight.detach().flatten()[:4096].to(torch.bfloat16).float().cpu()
            h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


class BCoderModel(nn.Module):
    """A dueling Q-model over a Hugging Face causal or seq2seq LM (composition, not subclassing)."""

    def __init__(self, base: nn.Module, config: QConfig):
        super().__init__()
        self.config = config
        self.is_seq2seq = bool(getattr(base.config, "is_encoder_decoder", False))
        if not config.base_fingerprint:
            config.base_fingerprint = base_fingerprint(base)
        base.requires_grad_(False)
        hidden_size = base.get_input_embeddings().weight.shape[1]
        self.phi_lm: nn.Module | None = None
        self.theta_lm: nn.Module | None = None
        if config.mode == "lora":
            self.lm = _with_lora_adapters(base, config)
        else:
            self.lm = base
            if config.mode == "full":
                self.phi_lm = _trainable_copy(base, self.is_seq2seq)
                self.theta_lm = _trainable_copy(base, self.is_seq2seq)
        self.phi_head = ValueHead(hidden_size, config.head_hidden)
        self.residual_head = ValueHead(hidden_size, config.head_hidden)  # h1, trainable
        self.residual_frozen = ValueHead(hidden_size, config.head_hidden)  # h2, a frozen copy
        self.residual_frozen.requires_grad_(False)
        self.sync_residual()
        self.logit_adapter: LogitAdapter | None = None
        if config.mode == "lmhead":  # l_theta = l_ckpt + B A h, B = 0 at initialisation
            vocab_size = base.get_output_embeddings().weight.shape[0]
            scale = config.lora_alpha / config.lora_r
            self.logit_adapter = LogitAdapter(hidden_size, vocab_size, config.lora_r, scale)

    # ---- which network plays which role -------------------------------------------------
    @property
    def single_pass(self) -> bool:
        """True when one forward of the frozen LM yields everything: logits, the hidden state
        the value heads (and in lmhead mode the logit adapter) read (head and lmhead modes)."""
        return self.config.mode in FROZEN_BACKBONE

    def policy_logits(self, logits: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        """l_theta from the policy LM's logits and last hidden state at the same states: the
        logit adapter's residual added in lmhead mode, the logits themselves otherwise. A decode
        loop calls this on every step (``hidden`` may be None when ``adapts_logits`` is False).

        Shape: logits (..., V), hidden (..., H) -> (..., V).
        """
        if self.logit_adapter is None:
            return logits
        return self.logit_adapter.apply(logits, hidden)

    @property
    def adapts_logits(self) -> bool:
        """True when :meth:`policy_logits` needs the hidden states (lmhead mode)."""
        return self.logit_adapter is not None

    def policy_lm(self) -> nn.Module:
        """The HF module whose logits are l_theta (for sampling with a KV cache)."""
        if self.config.mode == "lora":
            self.lm.set_adapter("theta")
            return self.lm
        return self.theta_lm if self.config.mode == "full" else self.lm

    def _lm_for(self, role: Role):
        """The HF module for a role, and a context that is active while it runs."""
        import contextlib

        mode = self.config.mode
        if mode in FROZEN_BACKBONE or role == "ckpt":
            if mode == "lora":
                return self.lm, self.lm.disable_adapter()
            return self.lm, contextlib.nullcontext()
        if mode == "lora":
            self.lm.set_adapter(role)
            return self.lm, contextlib.nullcontext()
        return (self.phi_lm if role == "phi" else self.theta_lm), contextlib.nullcontext()

    @torch.no_grad()
    def sync_residual(self) -> None:
        """h2 := h1, so the residual h1 - h2 is zero (done when the theta-stage starts)."""
        self.residual_frozen.load_state_dict(self.residual_head.state_dict())

    # ---- the LM pass, aligned to actions ----------------------------------------------------
    def run_lm(
        self, role: Role, batch: ActionBatch, logits: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Logits and last hidden state at each state s_t. Shapes: (B, T, V), (B, T, H).

        With ``logits=False`` a causal LM skips the (B, T, V) projection and returns None for it.
        """
        lm, ctx = self._lm_for(role)
        with ctx:
            if self.is_seq2seq:
                return self._run_seq2seq(lm, batch)
            return self._run_causal(lm, batch, logits)

    def _run_causal(self, lm: nn.Module, batch: ActionBatch, logits: bool = True):
        if not torch.is_grad_enabled() and _one_prompt(batch):
            return self._run_causal_shared(lm, batch, logits)
        P, T = batch.prompt_ids.shape[1], batch.action_ids.shape[1]
        ids = torch.cat([batch.prompt_ids, batch.action_ids], dim=1)  # (B, P+T)
        attn = torch.cat([batch.prompt_mask, batch.action_mask], dim=1)
        # Positions count real tokens only, so left padding does not shift them.
        pos = (attn.cumsum(dim=1) - 1).clamp(min=0)
        out = lm(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            output_hidden_states=True,
            use_cache=False,
            # positions P-1 .. P+T-1 hold the states before each action
            logits_to_keep=T + 1 if logits else 1,
        )
        hidden = out.hidden_states[-1][:, P - 1 : P - 1 + T]  # (B, T, H)
        # (B, T, V): s_t is read at position P-1+t
        return (out.logits[:, :-1] if logits else None), hidden

    def _run_causal_shared(self, lm: nn.Module, batch: ActionBatch, logits: bool = True):
        """_run_causal for rows that share one prompt (solve, rank, eval, featurize): the prompt
        is evaluated once and its KV cache repeated for the programs, instead of once a row (an
        MBPP prompt is ~3x a program's tokens). Inference only; training keeps the plain pass."""
        B, T = batch.action_ids.shape
        prompt = batch.prompt_ids[:1, batch.prompt_mask[0].bool()]  # (1, P), padding dropped
        P = prompt.shape[1]
        pre = lm(input_ids=prompt, use_cache=True, output_hidden_states=True, logits_to_keep=1)
        hidden = pre.hidden_states[-1][:, -1:].expand(B, 1, -1)  # s_0, (B, 1, H)
        out_logits = pre.logits[:, -1:].expand(B, 1, -1) if logits else None
        if T > 1:  # a_0 .. a_{T-2}: the state after a_t is s_{t+1}
            cache = cache_of(pre)
            cache.batch_repeat_interleave(B)
            mask = batch.action_mask[:, : T - 1]
            out = lm(
                input_ids=batch.action_ids[:, : T - 1],
                attention_mask=torch.cat([mask.new_ones((B, P)), mask], dim=1),
                position_ids=torch.arange(P, P + T - 1, device=mask.device).expand(B, -1),
                **cache_arg(lm, cache),
                use_cache=True,
                output_hidden_states=True,
                logits_to_keep=T - 1 if logits else 1,
            )
            hidden = torch.cat([hidden, out.hidden_states[-1]], dim=1)
            if logits:
                out_logits = torch.cat([out_logits, out.logits], dim=1)
        return out_logits, hidden

    def _run_seq2seq(self, lm: nn.Module, batch: ActionBatch):
        start = lm.config.decoder_start_token_id
        dec_in = torch.roll(batch.action_ids, 1, dims=1)  # [start, a_0 .. a_{T-2}]
        dec_in[:, 0] = start
        out = lm(
            input_ids=batch.prompt_ids,
            attention_mask=batch.prompt_mask,
            decoder_input_ids=dec_in,
            decoder_attention_mask=batch.action_mask,
            output_hidden_states=True,
            use_cache=False,
        )
        return out.logits, out.decoder_hidden_states[-1]  # (B, T, V), (B, T, H)

    # ---- values ------------------------------------------------------------------------
    def theta_u(self, u_phi: torch.Tensor, hidden_theta: torch.Tensor) -> torch.Tensor:
        """u_theta = u_phi + (h1(h) - h2(h)). Shape: (B, T), (B, T, H) -> (B, T).

        The residual is taken first, so that u_theta is exactly u_phi while h1 = h2."""
        residual = self.residual_head(hidden_theta) - self.residual_frozen(hidden_theta)
        return u_phi + residual

    def value_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """V_theta(s) from the theta hidden state alone; valid in head and lmhead modes
        (single_pass).

        Shape: hidden (..., H) -> (...).
        """
        if not self.single_pass:
            raise RuntimeError("value_from_hidden needs a frozen backbone; use forward() otherwise")
        u = self.theta_u(self.phi_head(hidden), hidden)
        return rl.bounded_value(u, self.config.r_max)

    def forward(self, batch: ActionBatch, stage: Literal["theta", "phi"] = "theta") -> QOutput:
        """Q, V, A per action token for the theta model (default) or the phi model."""
        cfg = self.config
        if stage == "phi":
            ckpt_logits, h_phi = self.run_lm("ckpt" if self.single_pass else "phi", batch)
            if not self.single_pass:
                ckpt_logits = self.run_lm("ckpt", batch)[0]
            logits, hidden, u = ckpt_logits, h_phi, self.phi_head(h_phi)
        elif self.single_pass:  # one pass of the frozen LM; lmhead adds the adapter's residual
            ckpt_logits, hidden = self.run_lm("ckpt", batch)
            logits = self.policy_logits(ckpt_logits, hidden)
            u = self.theta_u(self.phi_head(hidden), hidden)
        else:
            logits, hidden = self.run_lm("theta", batch)
            ckpt_logits = self.run_lm("ckpt", batch)[0]
            h_phi = self.run_lm("phi", batch)[1]
            u = self.theta_u(self.phi_head(h_phi), hidden)
        value = rl.bounded_value(u, cfg.r_max)  # (B, T)
        adv = rl.taken(rl.advantage(logits.float(), cfg.alpha), batch.action_ids)  # (B, T)
        return QOutput(
            logits=logits,
            advantage=adv,
            value=value,
            q=adv + value,
            ckpt_argmax=ckpt_logits.argmax(dim=-1),
            hidden=hidden,
            mask=batch.action_mask,
            u=u,
        )

    # ---- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write heads (+ adapters or LM copies) in safetensors and the config as JSON, atomically."""
        from safetensors.torch import save_file, save_model

        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            heads = {
                f"{name}.{k}": v.detach().cpu().contiguous()
                for name in ("phi_head", "residual_head", "residual_frozen")
                for k, v in getattr(self, name).state_dict().items()
            }
            save_file(heads, str(tmp / "heads.safetensors"))
            if self.logit_adapter is not None:
                sd = self.logit_adapter.state_dict()
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in sd.items()},
                    str(tmp / ADAPTER_FILE),
                )
            if self.config.mode == "lora":
                from peft import get_peft_model_state_dict

                for name in ("phi", "theta"):
                    sd = get_peft_model_state_dict(self.lm, adapter_name=name)
                    save_file(
                        {k: v.detach().cpu().contiguous() for k, v in sd.items()},
                        str(tmp / f"adapter_{name}.safetensors"),
                    )
            elif self.config.mode == "full":
                save_model(self.phi_lm, str(tmp / "phi_lm.safetensors"))
                save_model(self.theta_lm, str(tmp / "theta_lm.safetensors"))
            meta = {"format": CHECKPOINT_FORMAT, "config": asdict(self.config), **(extra or {})}
            (tmp / "bcoder_config.json").write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def from_checkpoint(cls, directory: str | Path, base: nn.Module) -> BCoderModel:
        """Load a checkpoint onto ``base``; refuse it if it was trained on another base model."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = read_checkpoint_config(directory)
        config = QConfig.from_dict(meta["config"])
        found = base_fingerprint(base)
        if config.base_fingerprint and config.base_fingerprint != found:
            raise BcoderError(
                f"checkpoint {directory} was trained on base model {config.base_model!r} "
                f"(fingerprint {config.base_fingerprint}), but the loaded base has fingerprint "
                f"{found}; load it with the base model it was trained on"
            )
        model = cls(base, config)
        heads = load_file(str(directory / "heads.safetensors"))
        for name in ("phi_head", "residual_head", "residual_frozen"):
            prefix = f"{name}."
            sd = {k[len(prefix) :]: v for k, v in heads.items() if k.startswith(prefix)}
            getattr(model, name).load_state_dict(sd)
        if model.logit_adapter is not None:
            model.logit_adapter.load_state_dict(load_file(str(directory / ADAPTER_FILE)))
        if config.mode == "lora":
            from peft import set_peft_model_state_dict

            for name in ("phi", "theta"):
                sd = load_file(str(directory / f"adapter_{name}.safetensors"))
                set_peft_model_state_dict(model.lm, sd, adapter_name=name)
        elif config.mode == "full":
            for name in ("phi_lm", "theta_lm"):
                _load_lm_copy(getattr(model, name), directory / f"{name}.safetensors")
        return model


def _one_prompt(batch: ActionBatch) -> bool:
    """True when the batch has several rows and all of them hold the same, non-empty prompt."""
    if batch.prompt_ids.shape[0] < 2 or not batch.prompt_mask[0].any():
        return False
    return bool(
        (batch.prompt_ids == batch.prompt_ids[:1]).all()
        and (batch.prompt_mask == batch.prompt_mask[:1]).all()
    )


def _trainable_copy(base: nn.Module, is_seq2seq: bool) -> nn.Module:
    """A trainable copy of ``base`` for phi or theta (full mode).

    A seq2seq copy runs on the base's encoder, frozen and shared rather than copied (DESIGN
    section 2), and has its own decoder, decoder input embedding and LM head. T5 ties the last two
    to the encoder's embedding ``shared``: left tied, freezing the encoder would freeze theta's
    output layer too. They start as copies of the base's weights, and the copy keeps the base's
    config, whose tying flag T5 also reads to scale decoder outputs by d_model**-0.5
    (``tie_word_embeddings`` in transformers 4, ``scale_decoder_outputs`` in 5): so the copy's
    logits start exactly equal to the base's (folding the scale into the head would round).
    ``tie_weights()`` (run by e.g. ``resize_token_embeddings``) would tie them back: not on a copy.
    """
    if not is_seq2seq:
        return copy.deepcopy(base).requires_grad_(True)
    encoder = base.get_encoder()
    # deepcopy's memo maps an object to its copy: the encoder's modules and weights map to themselves
    memo = {id(x): x for x in (*encoder.modules(), *encoder.parameters())}
    lm = copy.deepcopy(base, memo)
    decoder = lm.get_decoder()
    decoder.set_input_embeddings(copy.deepcopy(decoder.get_input_embeddings()))
    lm.set_output_embeddings(copy.deepcopy(lm.get_output_embeddings()))
    lm.requires_grad_(True)
    encoder.requires_grad_(False)
    return lm


def _load_lm_copy(lm: nn.Module, path: Path) -> None:
    """Load a full-mode LM copy. Weights that do not fit it are a user error, not a traceback
    (e.g. a seq2seq checkpoint from before the copies had their own LM head: train it again)."""
    from safetensors.torch import load_model

    try:
        load_model(lm, str(path))
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise BcoderError(f"{path}: its weights do not fit this model ({detail})") from None


def _with_lora_adapters(base: nn.Module, config: QConfig) -> nn.Module:
    """Wrap ``base`` with two LoRA adapters, "phi" and "theta" (zero at initialisation)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
    )
    peft_model = get_peft_model(base, lora, adapter_name="phi")
    peft_model.add_adapter("theta", lora)
    return peft_model
