"""Sampling and scoring on tiny real models: the KV-cached decode loop against the Q-model's own
forward on the same tokens (the foundation-consistency test), stopping rules, seeds, cancellation."""

import threading

import pytest
import torch
from support.tiny import tiny_causal_lm, tiny_seq2seq
from torch import nn

from bcoder import rl
from bcoder.decode.sampling import (
    Cancelled,
    DecodeOptions,
    FenceStop,
    block_closed,
    decode,
    sample,
    sample_next,
    top_p_filter,
)
from bcoder.decode.scoring import make_candidate, recovered, token_texts
from bcoder.qmodel.batch import make_batch
from bcoder.qmodel.config import QConfig
from bcoder.qmodel.model import BCoderModel
from bcoder.qmodel.scores import score_tokens

PROMPTS = ["Write a function to add two numbers.\n", "QUESTION:\nPrint n.\nANSWER:\n"]


def _qmodel(tokenizer, kind, mode="head", seed=0):
    base = tiny_causal_lm(tokenizer, seed) if kind == "causal" else tiny_seq2seq(tokenizer, seed)
    model = BCoderModel(base, QConfig(mode=mode, gamma=0.9, alpha=0.8))
    torch.manual_seed(1)
    with torch.no_grad():  # value heads that are not trivially zero, so V varies by state
        for head in (model.phi_head, model.residual_head):
            for p in head.parameters():
                p.normal_(0, 0.5)
        if model.logit_adapter is not None:  # a trained-looking adapter: the policy moves
            model.logit_adapter.up.weight.normal_(0, 0.3)
    return model.eval()


def _ids(tokenizer, text):
    return tokenizer(text).input_ids


def _forward(qmodel, prompts, actions, pad_id):
    batch = make_batch(prompts, actions, pad_id)
    with torch.no_grad():
        return batch, qmodel(batch)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
@pytest.mark.parametrize(
    ("shared_prompt", "mode"), [(True, "head"), (False, "head"), (False, "lmhead")]
)
def test_in_loop_scores_match_the_q_model_forward(tokenizer, kind, shared_prompt, mode):
    """Values recorded while decoding (head / lmhead mode, KV cache, rows leaving the batch early)
    equal qmodel(batch) on the same tokens: A, V, Q, log-prob, preferred token and r~."""
    qmodel = _qmodel(tokenizer, kind, mode)
    a, b = _ids(tokenizer, PROMPTS[0]), _ids(tokenizer, PROMPTS[1])
    prompts = [a, a, a] if shared_prompt else [a, b, a[3:]]
    # A few frequent tokens end rows, so rows finish at different steps and leave the batch.
    eos = tuple(range(200, 260))
    options = DecodeOptions(temperature=1.0, top_p=0.9, max_new_tokens=14, eos_ids=eos, score=True)
    gen = torch.Generator().manual_seed(3)
    gens = sorted(
        decode(qmodel, prompts, options, tokenizer.pad_token_id, generator=gen),
        key=lambda g: g.index,
    )
    assert [g.index for g in gens] == [0, 1, 2]
    assert len({len(g.action_ids) for g in gens}) > 1, "rows should finish at different steps"
    batch, out = _forward(
        qmodel, [g.prompt_ids for g in gens], [g.action_ids for g in gens], tokenizer.pad_token_id
    )
    logprobs = rl.taken(out.logits.float().log_softmax(-1), batch.action_ids)
    r_tilde = rl.recovered_rewards(out.q, out.value, batch.action_mask, 0.9)
    assert torch.cat([g.scores.value for g in gens]).std() > 0  # V really varies by state
    for i, g in enumerate(gens):
        n = len(g.action_ids)
        s = g.scores
        assert torch.allclose(s.advantage, out.advantage[i, :n], atol=1e-4)
        assert torch.allclose(s.value, out.value[i, :n], atol=1e-4)
        assert torch.allclose(s.logprob, logprobs[i, :n], atol=1e-4)
        assert torch.equal(s.preferred, out.ckpt_argmax[i, :n])
        q, r = recovered(s, 0.9)
        assert torch.allclose(q, out.q[i, :n], atol=1e-4)
        assert torch.allclose(r, r_tilde[i, :n], atol=1e-4)
        # the batched scoring pass gives the same numbers (the lora / full / score_codes path)
        again = score_tokens(qmodel, [g.prompt_ids], [g.action_ids], tokenizer.pad_token_id)[0]
        assert torch.allclose(again.value, s.value, atol=1e-4)
        assert torch.allclose(again.advantage, s.advantage, atol=1e-4)
        if g.finish_reason == "eos":
            assert g.action_ids[-1] in eos and not set(g.action_ids[:-1]) & set(eos)
        else:
            assert g.finish_reason == "length" and n == 14


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
@pytest.mark.parametrize("mode", ["head", "lora", "lmhead"])
def test_greedy_decoding_follows_the_policy_logits(tokenizer, kind, mode):
    """Each greedy action is the argmax of the theta logits that qmodel(batch) computes at its
    state: positions, padding and the cache line up (left-padded rows of different lengths)."""
    qmodel = _qmodel(tokenizer, kind, mode)
    prompts = [_ids(tokenizer, PROMPTS[0]), _ids(tokenizer, PROMPTS[1])]
    options = DecodeOptions(temperature=0.0, max_new_tokens=10)
    gens = sorted(decode(qmodel, prompts, options, tokenizer.pad_token_id), key=lambda g: g.index)
    batch, out = _forward(qmodel, prompts, [g.action_ids for g in gens], tokenizer.pad_token_id)
    assert torch.equal(out.logits.argmax(-1), batch.action_ids)
    if mode == "lmhead":  # the adapter really moved the policy away from the checkpoint's
        assert not torch.equal(out.ckpt_argmax, batch.action_ids)
    if kind == "causal":  # (the tiny random T5 repeats one token whatever the prompt)
        assert gens[0].action_ids != gens[1].action_ids


def test_the_base_policy_samples_from_the_frozen_lm_and_scores_with_theta(tokenizer):
    """policy="base" on an lmhead model draws the tokens its base model (no adapter) draws
    with the same seed, while the recorded scores are still l_theta's (qmodel(batch)); the trained
    policy draws others. A mode whose loop has no frozen logits (lora) refuses it."""
    lmhead = _qmodel(tokenizer, "causal", "lmhead")
    base = BCoderModel(lmhead.lm, QConfig(mode="head", gamma=0.9, alpha=0.8)).eval()
    prompt = _ids(tokenizer, PROMPTS[0])

    def draw(model, policy, score=False):
        options = DecodeOptions(
            temperature=1.0, top_p=1.0, max_new_tokens=12, score=score, policy=policy
        )
        gen = torch.Generator().manual_seed(5)
        gens = decode(model, [prompt] * 3, options, tokenizer.pad_token_id, generator=gen)
        return sorted(gens, key=lambda g: g.index)

    ckpt = draw(lmhead, "base", score=True)
    assert [g.action_ids for g in ckpt] == [g.action_ids for g in draw(base, "trained")]
    assert [g.action_ids for g in ckpt] != [g.action_ids for g in draw(lmhead, "trained")]
    _, out = _forward(lmhead, [prompt] * 3, [g.action_ids for g in ckpt], 0)
    for i, g in enumerate(ckpt):
        n = len(g.action_ids)
        assert torch.allclose(g.scores.advantage, out.advantage[i, :n], atol=1e-4)
        assert torch.allclose(g.scores.value, out.value[i, :n], atol=1e-4)
    with pytest.raises(ValueError, match="frozen backbone"):
        draw(_qmodel(tokenizer, "causal", "lora"), "base")


def test_seeds_are_reproducible(tokenizer):
    qmodel = _qmodel(tokenizer, "causal")
    prompt = _ids(tokenizer, PROMPTS[0])
    options = DecodeOptions(temperature=1.0, top_p=1.0, max_new_tokens=8)

    def run(seed, batch_size):
        gens = sample(qmodel, prompt, 4, options, 0, batch_size=batch_size, seed=seed)
        return [g.action_ids for g in sorted(gens, key=lambda g: g.index)]

    first = run(7, 4)
    assert run(7, 4) == first
    assert run(8, 4) != first
    assert len(run(7, 3)) == 4  # two batches: 3 + 1
    assert len({tuple(x) for x in first}) > 1


def test_top_p_and_temperature():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = top_p_filter(logits, 0.7)
    assert torch.isfinite(kept).tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.8
    assert torch.isfinite(top_p_filter(logits, 0.45)).sum() == 1
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    gen = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(2000, -1), 1.0, 0.7, gen)
    assert set(draws.tolist()) == {0, 1}
    share = (draws == 0).float().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.05  # renormalised over the nucleus
    assert sample_next(logits, 0.0, 0.7, gen).item() == 0  # greedy
    cold = sample_next(logits.expand(2000, -1), 0.2, 1.0, gen)
    assert (cold == 0).float().mean() > 0.9  # low temperature sharpens


@pytest.mark.parametrize("scale", [8.0, 0.3])
def test_nucleus_shortcut_draws_from_the_top_p_distribution(scale):
    """Peaked logits (the nucleus is within the top NUCLEUS_K tokens: no full sort) and flat ones
    (the full sort) both draw from top_p_filter's renormalised distribution."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 2000, generator=gen) * scale
    want = top_p_filter(logits, 0.9).softmax(dim=-1)[0]
    assert (want > 0).sum() > (1 if scale > 1 else 256)
    draws = sample_next(logits.expand(10000, -1), 1.0, 0.9, gen)
    freq = torch.bincount(draws, minlength=2000).float() / len(draws)
    assert freq[want == 0].sum() == 0
    assert (freq - want).abs().max() < 0.02


def test_block_closed():
    assert not block_closed("Here:\n```python\nx = 1\n")
    assert block_closed("Here:\n```python\nx = 1\n```")
    assert not block_closed("```python")  # the opening line is not even complete
    assert not block_closed('x = "```"\n')
    assert block_closed("```\n```")
    # a prefilled answer: the prompt opened the block, so its first fence line closes it
    assert not block_closed("    return x\n", opened=True)
    assert block_closed("    return x\n```", opened=True)
    assert not block_closed("    return x\n```", opened=False)


def _rigged(tokenizer, qmodel, favourites):
    """Make the policy pick only among ``favourites``: an LM head whose bias dominates."""
    lm = qmodel.lm
    H, V = lm.lm_head.in_features, lm.lm_head.out_features
    head = nn.Linear(H, V, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-30.0)
        head.bias[favourites] = 0.0
    lm.lm_head = head


def test_decoding_stops_at_the_end_of_a_fenced_block(tokenizer):
    qmodel = _qmodel(tokenizer, "causal")
    fence_id, newline_id, x_id = tokenizer.convert_tokens_to_ids(["```", "Ċ", "x"])
    _rigged(tokenizer, qmodel, [fence_id, newline_id, x_id])
    options = DecodeOptions(
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=60,
        fence=FenceStop(tokenizer, len(tokenizer), torch.device("cpu")),
    )
    prompt = _ids(tokenizer, PROMPTS[0])
    gens = list(sample(qmodel, prompt, 6, options, 0, seed=1))
    closed = [g for g in gens if g.finish_reason == "code_block_end"]
    assert len(closed) >= 4
    for g in closed:
        text = tokenizer.decode(g.action_ids)
        assert block_closed(text) and g.action_ids[-1] == fence_id
        assert not block_closed(tokenizer.decode(g.action_ids[:-1]))
    for g in gens:
        if g.finish_reason == "length":
            assert not block_closed(tokenizer.decode(g.action_ids))


def test_cancel_stops_between_steps(tokenizer):
    qmodel = _qmodel(tokenizer, "causal")
    cancel = threading.Event()
    steps = []

    def on_step(step, active):
        steps.append(step)
        if step == 3:
            cancel.set()

    options = DecodeOptions(max_new_tokens=50)
    with pytest.raises(Cancelled):
        list(
            sample(
                qmodel, _ids(tokenizer, PROMPTS[0]), 2, options, 0, on_step=on_step, cancel=cancel
            )
        )
    assert steps == [1, 2, 3]


def test_token_texts_and_candidate(tokenizer):
    text = "def add(a, b):\n    return a + b  # é ü\n"
    ids = tokenizer(text).input_ids
    texts = token_texts(tokenizer, ids)
    assert len(texts) == len(ids) and "".join(texts) == text
    qmodel = _qmodel(tokenizer, "causal")
    prompt = _ids(tokenizer, PROMPTS[0])
    scores = score_tokens(qmodel, [prompt], [[*ids, tokenizer.eos_token_id]], 0)[0]
    cand = make_candidate(tokenizer, [*ids, tokenizer.eos_token_id], scores, 0.9, code=text)
    assert cand.completion == text
    assert [t.text for t in cand.tokens][-1] == tokenizer.eos_token
    assert cand.reward == pytest.approx(sum(t.reward for t in cand.tokens), abs=1e-5)
    for t in cand.tokens:
        assert t.q == pytest.approx(t.advantage + t.v, abs=1e-5) and t.advantage <= 0
    # r~_t = Q_t - gamma * V_{t+1}, and the terminal r~_T = Q_T
    toks = cand.tokens
    assert toks[0].reward == pytest.approx(toks[0].q - 0.9 * toks[1].v, abs=1e-5)
    assert toks[-1].reward == pytest.approx(toks[-1].q, abs=1e-6)
    assert cand.sum_logprob == pytest.approx(sum(t.logprob for t in toks), abs=1e-4)


def test_length_batches_evaluate_the_fewest_positions():
    # A batch costs its shared prompt once plus rows x its longest program; the cuts must be the
    # cheapest of all ways to cut the length-sorted programs, and cover each program once.
    import itertools
    import random

    from bcoder.qmodel.scores import length_batches

    def cost(batches, lengths, overhead):
        return sum(overhead + len(b) * max(lengths[i] for i in b) for b in batches)

    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(1, 400) for _ in range(rng.randint(1, 9))]
        size, overhead = rng.randint(1, 8), rng.randint(1, 300)
        got = length_batches(lengths, size, overhead)
        assert sorted(i for b in got for i in b) == list(range(len(lengths)))
        assert all(1 <= len(b) <= size for b in got)
        order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
        best = min(
            cost(parts, lengths, overhead)
            for cuts in itertools.product([0, 1], repeat=len(order) - 1)
            for parts in [_split(order, cuts)]
            if all(len(p) <= size for p in parts)
        )
        assert cost(got, lengths, overhead) == best
    assert length_batches([5, 9, 1], 2, 0) == [[1, 0], [2]]  # no shared prompt: plain batches


def _split(order, cuts):
    parts, start = [], 0
    for k, c in enumerate(cuts, start=1):
        if c:
            parts.append(order[start:k])
            start = k
    return [*parts, order[start:]]
