"""The weights' precision while unlearning: bf16 (the paper's stack), fp32 and mixed."""

import copy

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from qunlearn.checkpoints import DTYPES
from qunlearn.muse import load_corpus
from qunlearn.training import build_llama
from qunlearn.unlearning import WEIGHT_DTYPES, UnlearnSettings, unlearn

LR = 1e-5
BF16_CAP = 2**8 * LR  # a bf16 weight moves under an Adam step of about lr only below about this magnitude


def _settings(precision, **changes):
    values = dict(method="ga_gdr", lr=LR, epochs=1, batch_size=64, max_len=64, alpha=1.0, beta=0.1,
                  precision=precision, seed=0)
    return UnlearnSettings(**{**values, **changes})


def _model(tokenizer, precision):
    model = build_llama(len(tokenizer), 32, 1, 2, 64, 128, tokenizer, seed=0)
    with torch.no_grad():
        weight = model.model.layers[0].mlp.down_proj.weight
        weight[0] = 0.5  # far above the bf16 cap
        weight[1] = 1e-4  # below it
    return model.to(DTYPES[WEIGHT_DTYPES[precision]])


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_one_bf16_step_leaves_weights_far_above_the_cap_bit_identical_while_fp32_moves_them(corpus_dir, toy_tokenizer,
                                                                                            precision):
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer, precision)
    before = model.model.layers[0].mlp.down_proj.weight.detach().clone()
    record = unlearn(model, toy_tokenizer, corpus.raw["forget"][:1], corpus.raw["retain1"][:1], _settings(precision))
    after = model.model.layers[0].mlp.down_proj.weight.detach()
    assert record["steps"] == 1 and before[0].abs().min() > 100 * BF16_CAP and before[1].abs().max() < BF16_CAP
    moved_large = (after[0] != before[0]).float().mean().item()
    moved_small = (after[1] != before[1]).float().mean().item()
    assert moved_small > 0.9  # a step of about lr moves a weight below the cap in either precision
    if precision == "bf16":
        assert moved_large == 0.0  # lr is far below half a bf16 unit of 0.5 (2^-9)
    else:
        assert moved_large > 0.9


def test_mixed_precision_forward_passes_see_each_step_s_new_weights(corpus_dir, toy_tokenizer):
    """autocast keeps bf16 copies of the weights until its outermost context exits: a context around the loop
    would run every step after the first on the step-0 weights, with normal-looking losses."""
    corpus = load_corpus(corpus_dir)
    model = _model(toy_tokenizer, "mixed")
    forwards, states = [], []
    model.register_forward_hook(
        lambda module, args, kwargs, output: forwards.append((kwargs["input_ids"], kwargs["attention_mask"],
                                                              output.logits.detach().clone())),
        with_kwargs=True)
    hook = register_optimizer_step_post_hook(lambda *_: states.append(copy.deepcopy(model.state_dict())))
    try:
        unlearn(model, toy_tokenizer, corpus.raw["forget"][:3], corpus.raw["retain1"][:1], _settings("mixed", method="ga", lr=1e-2,
                                                                               batch_size=1))
    finally:
        hook.remove()
    assert len(forwards) == len(states) >= 3
    for step in range(1, len(forwards)):
        input_ids, attention_mask, logits = forwards[step]
        model.load_state_dict(states[step - 1])
        with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        assert torch.equal(logits, expected), f"step {step + 1} ran on stale weights"
