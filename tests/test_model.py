"""The dueling Q-model on real tiny models (Llama-style causal and T5 seq2seq), in every mode."""

import pytest
import torch
from support.tiny import tiny_causal_lm, tiny_seq2seq

from bcoder.core.errors import BcoderError
from bcoder.qmodel.batch import make_batch
from bcoder.qmodel.config import QConfig
from bcoder.qmodel.model import BCoderModel

MODES = ["head", "lora", "full", "lmhead"]
KINDS = ["causal", "seq2seq"]


def _base(tokenizer, kind, seed=0):
    return tiny_causal_lm(tokenizer, seed) if kind == "causal" else tiny_seq2seq(tokenizer, seed)


def _model(tokenizer, kind, mode, seed=0):
    model = BCoderModel(_base(tokenizer, kind, seed), QConfig(mode=mode, gamma=0.9, alpha=0.8))
    torch.manual_seed(1)
    with torch.no_grad():  # a phi head that is not trivially zero, and a residual h1 = h2
        for p in model.phi_head.parameters():
            p.normal_(0, 0.5)
        for p in model.residual_head.parameters():
            p.normal_(0, 0.5)
    model.sync_residual()
    return model.eval()


def _batch(tokenizer, prompts, programs):
    p = [tokenizer(x).input_ids for x in prompts]
    a = [tokenizer(x).input_ids + [tokenizer.eos_token_id] for x in programs]
    return make_batch(p, a, tokenizer.pad_token_id)


PROMPTS = ["Write a function to add two numbers.\n", "QUESTION:\nPrint n.\nANSWER:\n"]
PROGRAMS = ["def add(a, b):\n    return a + b\n", "print(int(input()))"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_initialisation_q_theta_equals_q_phi(tokenizer, kind, mode):
    model = _model(tokenizer, kind, mode)
    batch = _batch(tokenizer, PROMPTS, PROGRAMS)
    with torch.no_grad():
        theta = model(batch)
        phi = model(batch, stage="phi")
        ckpt_logits, _ = model.run_lm("ckpt", batch)
    m = batch.action_mask.bool()
    assert torch.allclose(theta.q_all(0.8)[m], phi.q_all(0.8)[m], atol=1e-5)
    # pi_theta == p_ckpt
    assert torch.allclose(
        torch.softmax(theta.logits[m].float(), -1), torch.softmax(ckpt_logits[m].float(), -1)
    )
    assert torch.equal(theta.ckpt_argmax, ckpt_logits.argmax(-1))
    assert (theta.value <= 1.0).all() and (theta.advantage <= 0).all()
    assert theta.value[m].std() > 0  # the heads really were random: V varies by state
    assert torch.allclose(theta.q, theta.advantage + theta.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["head", "lora"])
def test_causality(tokenizer, kind, mode):
    model = _model(tokenizer, kind, mode)
    batch = _batch(tokenizer, PROMPTS[:1], PROGRAMS[:1])
    k = 5  # change action a_k: values at s_0 .. s_k must not move
    changed = make_batch(
        [batch.prompt_ids[0].tolist()],
        [[*batch.action_ids[0, :k].tolist(), 7, *batch.action_ids[0, k + 1 :].tolist()]],
        tokenizer.pad_token_id,
    )
    assert changed.action_ids[0, k] != batch.action_ids[0, k]
    with torch.no_grad():
        a, b = model(batch), model(changed)
    assert torch.allclose(a.value[:, : k + 1], b.value[:, : k + 1], atol=1e-6)
    assert torch.allclose(a.q_all(0.8)[:, : k + 1], b.q_all(0.8)[:, : k + 1], atol=1e-5)
    assert not torch.allclose(a.value[:, k + 1 :], b.value[:, k + 1 :])


@pytest.mark.parametrize("kind", KINDS)
def test_padding_invariance(tokenizer, kind):
    model = _model(tokenizer, kind, "head")
    prompts = ["A much longer problem statement that forces left padding.\n", PROMPTS[1]]
    programs = [PROGRAMS[0] * 2, PROGRAMS[1]]
    with torch.no_grad():
        alone = model(_batch(tokenizer, prompts[1:], programs[1:]))
        padded = model(_batch(tokenizer, prompts, programs))
    n = int(alone.mask.sum())
    assert padded.mask[1].sum() == n and padded.mask.shape[1] > n  # really padded
    assert torch.allclose(alone.value[0, :n], padded.value[1, :n], atol=1e-4)
    assert torch.allclose(alone.q[0, :n], padded.q[1, :n], atol=1e-4)
    assert torch.equal(alone.ckpt_argmax[0, :n], padded.ckpt_argmax[1, :n])


@pytest.mark.parametrize("mode", MODES)
def test_a_shared_prompt_is_evaluated_once_with_the_same_values(tokenizer, mode):
    # solve / rank / eval score a problem's programs together: the prompt runs once, its KV
    # cache repeated. Each row must read exactly what a batch of that row alone reads.
    model = _model(tokenizer, "causal", mode)
    programs = [PROGRAMS[0], PROGRAMS[0] * 2, "x", PROGRAMS[1]]  # lengths differ: right padding
    together = _batch(tokenizer, PROMPTS[:1] * 4, programs)
    calls = []
    embed = model.lm.get_input_embeddings()  # (the checkpoint LM's: every mode runs it)
    hook = embed.register_forward_hook(lambda m, i, o: calls.append(o.shape[:2]))
    with torch.no_grad():
        shared = model(together)
        alone = [model(_batch(tokenizer, PROMPTS[:1], [x])) for x in programs]
    hook.remove()
    P = together.prompt_ids.shape[1]
    T = together.action_ids.shape[1]
    assert calls[:2] == [(1, P), (4, T - 1)]  # the prompt once, then the programs
    for b, one in enumerate(alone):
        n = int(one.mask.sum())
        assert torch.allclose(shared.value[b, :n], one.value[0, :n], atol=1e-5)
        assert torch.allclose(shared.q[b, :n], one.q[0, :n], atol=1e-5)
        assert torch.allclose(shared.logits[b, :n], one.logits[0, :n], atol=1e-4)
        assert torch.allclose(shared.hidden[b, :n], one.hidden[0, :n], atol=1e-5)
        assert torch.equal(shared.ckpt_argmax[b, :n], one.ckpt_argmax[0, :n])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_checkpoint_round_trip(tokenizer, kind, mode, tmp_path):
    model = _model(tokenizer, kind, mode)
    if mode != "head":  # make the trained networks differ from the base
        with torch.no_grad():
            for n, p in model.named_parameters():
                trained = "lora_B" in n or "logit_adapter" in n or mode == "full"
                if p.requires_grad and trained:
                    p.add_(torch.randn_like(p) * 0.01)
    batch = _batch(tokenizer, PROMPTS, PROGRAMS)
    model.save_checkpoint(tmp_path / "ckpt")
    loaded = BCoderModel.from_checkpoint(tmp_path / "ckpt", _base(tokenizer, kind)).eval()
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    assert torch.equal(a.q, b.q) and torch.equal(a.value, b.value)
    assert torch.equal(a.logits, b.logits)
    with pytest.raises(BcoderError, match="trained on base model"):
        BCoderModel.from_checkpoint(tmp_path / "ckpt", _base(tokenizer, kind, seed=5))


def test_a_seq2seq_checkpoint_with_tied_copies_is_a_user_error(tokenizer, tmp_path):
    """Full-mode seq2seq checkpoints saved while the copies' LM head was still tied to the
    encoder's embedding (one tensor in the file) no longer fit: a one-line error says so."""
    from safetensors.torch import save_model

    model = _model(tokenizer, "seq2seq", "full")
    model.save_checkpoint(tmp_path / "ckpt")
    save_model(_base(tokenizer, "seq2seq"), str(tmp_path / "ckpt" / "theta_lm.safetensors"))
    with pytest.raises(BcoderError, match=r"theta_lm\.safetensors: its weights do not fit"):
        BCoderModel.from_checkpoint(tmp_path / "ckpt", _base(tokenizer, "seq2seq"))


def test_not_a_checkpoint(tmp_path, tokenizer):
    with pytest.raises(BcoderError, match="not a bcoder checkpoint"):
        BCoderModel.from_checkpoint(tmp_path, _base(tokenizer, "causal"))


def test_start_at_sets_the_initial_value(tokenizer):
    model = _model(tokenizer, "causal", "head")
    torch.nn.init.zeros_(model.phi_head.net[-1].weight)
    model.phi_head.start_at(-0.2)
    model.sync_residual()
    with torch.no_grad():
        out = model(_batch(tokenizer, PROMPTS[:1], PROGRAMS[:1]))
    assert torch.allclose(out.value, torch.full_like(out.value, -0.2), atol=1e-5)


def test_seq2seq_full_copies_start_exactly_as_the_checkpoint(tokenizer):
    """T5 ties lm_head and the decoder's input embedding to the encoder's; the phi and theta
    copies untie them (so theta can train its output layer) and must still give, bit for bit,
    the checkpoint's logits: T5 scales decoder outputs by d_model**-0.5 (d_model = 32 here, not
    a power of 4, so folding that scale into the weights would not be exact)."""
    model = _model(tokenizer, "seq2seq", "full")
    base, theta_lm = model.lm, model.theta_lm
    assert theta_lm.get_encoder() is base.get_encoder()  # one frozen encoder, not three
    for lm in (model.phi_lm, theta_lm):
        own = lm.get_output_embeddings().weight
        assert own is not base.get_input_embeddings().weight and own.requires_grad
        dec = lm.get_decoder().get_input_embeddings().weight
        assert dec is not own and dec is not base.get_input_embeddings().weight
    batch = _batch(tokenizer, PROMPTS, PROGRAMS)
    with torch.no_grad():
        theta, phi = model(batch), model(batch, stage="phi")
        dec_in = torch.roll(batch.action_ids, 1, dims=1)
        dec_in[:, 0] = base.config.decoder_start_token_id
        ckpt_logits = base(
            input_ids=batch.prompt_ids,
            attention_mask=batch.prompt_mask,
            decoder_input_ids=dec_in,
            decoder_attention_mask=batch.action_mask,
        ).logits
    assert torch.equal(theta.logits, ckpt_logits)
    ckpt_adv = torch.gather(
        0.8 * (ckpt_logits - ckpt_logits.max(-1, keepdim=True).values),
        -1,
        batch.action_ids[..., None],
    )[..., 0]
    assert torch.equal(theta.advantage, ckpt_adv) and torch.equal(phi.advantage, ckpt_adv)
    assert torch.equal(theta.value, phi.value) and torch.equal(theta.q, phi.q)
