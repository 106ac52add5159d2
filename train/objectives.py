"""The per-batch computations of the two stages (DESIGN section 2), as modules that return
``(loss, stats)``; accelerate wraps them (DDP etc.), so the forward a step runs goes through them.

A batch is a dict of tensors from :meth:`bcoder.train.data.TrainingData.collate`:
prompt_ids/prompt_mask (B, P), action_ids/action_mask (B, T), reward (B,), is_ground_truth (B,),
and the featurize columns ckpt_adv (B, T), ckpt_argmax (B, T), u_phi (B, T), hidden (B, T, H).

phi:   Q_phi(s_t, a_t) = A_ckpt(s_t, a_t) + V_phi(s_t);   target r_t + gamma * V_phi(s_{t+1})
       (A_ckpt(s, argmax l_ckpt(s)) = 0, so Q_phi at the target action is V_phi).
theta: Q_theta(s_t, a_t) = alpha (l_theta(s_t, a_t) - max l_theta(s_t)) + V_theta(s_t),
       V_theta = R_max - softabs(u_phi + h1 - h2);  target r_t + gamma * Q_theta(s_{t+1}, a^)
       with a^ the checkpoint's argmax (conservative) or Q_theta's own argmax (optimality);
       L_ft = L_Q + beta_adv L_adv + beta_ce L_ce, the last two on ground-truth programs only
       (the paper), or on the ground truths and the sampled programs that passed
       (``imitate="passing"``, not in the paper: rejection-sampling fine-tuning's imitation).
In head mode l_theta = l_ckpt (frozen), so A_theta = A_ckpt is read from the batch and the step
is a value-head forward/backward on the stored hidden states. In lmhead mode l_theta = l_ckpt +
B A h: the adapter is evaluated on the stored hidden states at the candidate tokens only (the
checkpoint's top-k and the taken action, batch columns topk_ids/topk_logits (B, T, K),
ckpt_logit/tail_lse (B, T)), with max_b l_theta and the softmax's normaliser approximated from
them as bcoder.qmodel.adapter.candidate_max_and_lse states.
"""

from __future__ import annotations

import torch
from torch import nn

from bcoder import rl
from bcoder.execution import REWARDS, Outcome
from bcoder.qmodel.adapter import candidate_max_and_lse, candidate_set
from bcoder.qmodel.batch import ActionBatch
from bcoder.qmodel.model import BCoderModel

SATURATION_EPS = 0.01  # V within this of R_max counts as "at the cap"


def action_batch(batch: dict[str, torch.Tensor]) -> ActionBatch:
    return ActionBatch(
        batch["prompt_ids"], batch["prompt_mask"], batch["action_ids"], batch["action_mask"]
    )


def lm_hidden(model: BCoderModel, role: str, batch: ActionBatch) -> torch.Tensor:
    """The last hidden state at each state s_t of the ``role`` LM, without the (B, T, V) logits.

    Shape: -> (B, T, H).
    """
    return model.run_lm(role, batch, logits=False)[1]  # type: ignore[arg-type]


def value_stats(value: torch.Tensor, mask: torch.Tensor, r_max: float) -> dict[str, torch.Tensor]:
    """Mean V and the fraction of states at the cap, over real tokens. Shapes: (B, T) -> scalars."""
    m = mask.float()
    n = m.sum().clamp(min=1)
    saturated = (value >= r_max - SATURATION_EPS).float()
    return {
        "value/mean": (value * m).sum().detach() / n,
        "value/saturated_frac": (saturated * m).sum() / n,
    }


class PhiObjective(nn.Module):
    """L_V of the phi-stage (checkpoint advantages frozen, from featurize)."""

    def __init__(self, model: BCoderModel):
        super().__init__()
        self.model = model

    def quantities(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-token Q_phi(s_t, a_t), V_phi(s_t) and TD targets. Shapes: (B, T) each."""
        cfg = self.model.config
        if self.model.single_pass:
            hidden = batch["hidden"]  # (B, T, H), stored by featurize
        else:
            hidden = lm_hidden(self.model, "phi", action_batch(batch))  # (B, T, H)
        value = rl.bounded_value(self.model.phi_head(hidden), cfg.r_max)  # (B, T)
        mask = batch["action_mask"]
        rewards = rl.terminal_rewards(batch["reward"].float(), mask)
        targets = rl.td_targets(value, rewards, mask, cfg.gamma)
        return {"q": batch["ckpt_adv"] + value, "value": value, "targets": targets, "mask": mask}

    def forward(self, batch: dict[str, torch.Tensor]):
        x = self.quantities(batch)
        loss = rl.td_loss(x["q"], x["targets"], x["mask"])
        stats = {
            "loss/td": loss.detach(),
            **value_stats(x["value"], x["mask"], self.model.config.r_max),
        }
        return loss, stats


class ThetaObjective(nn.Module):
    """L_ft of the theta-stage (phi frozen; u_phi and the checkpoint's argmax from featurize)."""

    def __init__(
        self,
        model: BCoderModel,
        beta_adv: float = 0.1,
        beta_ce: float = 0.5,
        operator: str = "conservative",
        imitate: str = "ground_truth",
    ):
        super().__init__()
        self.model = model
        self.beta_adv, self.beta_ce, self.operator = beta_adv, beta_ce, operator
        self.imitate = imitate

    def quantities(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-token Q_theta(s_t, a_t), A_theta(s_t, a_t), V_theta(s_t), the TD targets, and the
        theta policy's argmax (B, T) each; ``logits`` (B, T, V) in lora / full mode, ``nll``
        and ``ckpt_nll`` (B, T), the policy's and the checkpoint's -log pi(a_t | s_t), in lmhead
        mode."""
        model, cfg = self.model, self.model.config
        actions, mask = batch["action_ids"], batch["action_mask"]
        out: dict[str, torch.Tensor] = {}
        if model.adapts_logits:  # lmhead: l_theta = l_ckpt + delta on the candidate tokens
            hidden = batch["hidden"]  # (B, T, H)
            ids, cand = candidate_set(
                batch["topk_ids"], batch["topk_logits"], actions, batch["ckpt_logit"]
            )  # (B, T, C) each; column 0 is the checkpoint's argmax, C-1 the taken action
            delta = model.logit_adapter.delta_at(hidden, ids)  # (B, T, C)
            _, _, ckpt_lse = candidate_max_and_lse(cand, batch["tail_lse"])  # exact: delta = 0
            out["ckpt_nll"] = ckpt_lse - batch["ckpt_logit"]  # -log pi_ckpt(a_t | s_t)
            cand = cand + delta
            best, best_at, lse = candidate_max_and_lse(cand, batch["tail_lse"])  # (B, T) each
            taken = batch["ckpt_logit"] + delta[..., -1]  # l_theta(s_t, a_t), (B, T)
            adv = cfg.alpha * (taken - best)
            if self.operator == "conservative":
                target_adv = cfg.alpha * (cand[..., 0] - best)
            else:
                target_adv = torch.zeros_like(adv)
            out["nll"] = lse - taken
            out["argmax"] = ids.gather(-1, best_at.unsqueeze(-1)).squeeze(-1)
        elif model.single_pass:
            hidden = batch["hidden"]  # (B, T, H)
            adv = batch["ckpt_adv"]  # A_theta = A_ckpt: the policy is the checkpoint's
            target_adv = torch.zeros_like(adv)  # A_ckpt(s, argmax l_ckpt) = 0, either operator
            out["argmax"] = batch["ckpt_argmax"]
        else:
            logits, hidden = model.run_lm("theta", action_batch(batch))  # (B, T, V), (B, T, H)
            lf = logits.float()
            top = lf.max(dim=-1)  # max_b l_theta(s_t, b), (B, T)
            adv = cfg.alpha * (rl.taken(lf, actions) - top.values)  # (B, T)
            if self.operator == "conservative":
                target_adv = cfg.alpha * (rl.taken(lf, batch["ckpt_argmax"]) - top.values)
            else:  # the optimality operator: a^ = argmax Q_theta, whose advantage is 0
                target_adv = torch.zeros_like(adv)
            out["logits"], out["argmax"] = logits, top.indices
        u = model.theta_u(batch["u_phi"], hidden)  # (B, T)
        value = rl.bounded_value(u, cfg.r_max)
        rewards = rl.terminal_rewards(batch["reward"].float(), mask)
        targets = rl.td_targets(target_adv + value, rewards, mask, cfg.gamma)
        out.update(q=adv + value, adv=adv, value=value, targets=targets, mask=mask)
        return out

    def forward(self, batch: dict[str, torch.Tensor]):
        x = self.quantities(batch)
        mask, r_max = x["mask"], self.model.config.r_max
        loss_td = rl.td_loss(x["q"], x["targets"], mask)
        imitated = batch["is_ground_truth"].bool()  # the programs L_adv and L_ce imitate
        if self.imitate == "passing":
            imitated = imitated | (batch["reward"] >= REWARDS[Outcome.PASS])
        zero = loss_td.new_zeros(())
        loss_adv = (
            rl.advantage_loss(x["adv"][imitated], mask[imitated]) if bool(imitated.any()) else zero
        )
        loss_ce = zero
        if "logits" in x and bool(imitated.any()):
            loss_ce = rl.cross_entropy_loss(
                x["logits"][imitated].float(), batch["action_ids"][imitated], mask[imitated]
            )
        elif "nll" in x and bool(imitated.any()):
            loss_ce = rl.token_mean(x["nll"][imitated], mask[imitated])
        loss = loss_td + self.beta_adv * loss_adv + self.beta_ce * loss_ce
        m = mask.float()
        agree = ((x["argmax"] == batch["ckpt_argmax"]).float() * m).sum() / m.sum().clamp(min=1)
        stats = {
            "loss/total": loss.detach(),
            "loss/td": loss_td.detach(),
            "loss/adv": loss_adv.detach(),
            "adv/argmax_agreement": agree,
            **value_stats(x["value"], mask, r_max),
        }
        if "logits" in x or "nll" in x:
            stats["loss/ce"] = loss_ce.detach()
        return loss, stats


def set_trainable(model: BCoderModel, stage: str) -> list[nn.Parameter]:
    """Freeze everything but what ``stage`` trains; return those parameters.

    phi: phi_head (+ the phi LoRA adapter / phi LM copy); theta: the residual head h1 (+ the
    theta adapter / theta LM copy / the logit adapter). The base, h2 and the other stage's
    weights stay frozen.
    """
    model.requires_grad_(False)
    mode = model.config.mode
    head = model.phi_head if stage == "phi" else model.residual_head
    head.requires_grad_(True)
    if stage == "theta" and model.logit_adapter is not None:
        model.logit_adapter.requires_grad_(True)
    if mode == "full":
        lm = model.phi_lm if stage == "phi" else model.theta_lm
        lm.requires_grad_(True)
        if model.is_seq2seq:  # the encoder is frozen and shared (DESIGN section 2)
            lm.get_encoder().requires_grad_(False)
    elif mode == "lora":
        model.lm.set_adapter(stage)  # peft: the active adapter becomes the trainable one
        for name, p in model.lm.named_parameters():
            p.requires_grad_(f".{stage}." in name and "lora_" in name)
    return [p for p in model.parameters() if p.requires_grad]
