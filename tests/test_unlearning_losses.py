import contextlib
import copy
import math

import pytest
import torch

from qunlearn.data.batches import collate
from qunlearn.errors import QunlearnError
from qunlearn.registry import LOSS_VARIANTS, LOSSES, method, methods, resolve
from qunlearn.unlearn.losses import (LossContext, ga_loss, gdr_loss, kl_divergence, klr_logits_loss, klr_loss,
                                     npo_logits_loss, npo_loss)


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits are given by hand, with a parameter so that losses have a gradient."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    @property
    def device(self):
        return self.logits.device

    def forward(self, input_ids, attention_mask):
        return type("Output", (), {"logits": self.logits})()


def _batch():
    return collate([[0, 1, 0]], pad_id=0)  # two next-token predictions: 1 then 0


def test_registry_has_the_six_methods():
    assert sorted({m.base for m in methods().values()}) == ["ga", "ga_gdr", "ga_klr", "npo", "npo_gdr", "npo_klr"]
    assert (method("ga_klr").forget.name, method("ga_klr").retain.name) == ("ga", "klr")
    assert (method("npo_gdr").forget.name, method("npo_gdr").retain.name) == ("npo", "gdr")


def test_every_loss_spec_names_an_implementation_for_every_variant():
    expected = {"ga": ga_loss, "npo": npo_loss, "gdr": gdr_loss, "klr": klr_loss}
    assert {name: resolve(loss.fn.impl) for name, loss in LOSSES.items()} == expected
    muse = {name: resolve(loss.implementation("muse").impl) for name, loss in LOSSES.items()}
    assert muse == {**expected, "npo": npo_logits_loss, "klr": klr_logits_loss}
    assert all(set(loss.variants) <= set(LOSS_VARIANTS) for loss in LOSSES.values())


def test_sure_variants_of_every_method():
    sure = method("npo_klr_sure")
    assert len(methods()) == 12 and (sure.base, sure.sure) == ("npo_klr", True)
    with pytest.raises(QunlearnError, match="unknown method 'npo_sure_klr'"):
        method("npo_sure_klr")


def test_constrained_and_frozen_come_from_the_losses():
    assert {m.base for m in methods().values() if m.constrained} == {"ga_gdr", "ga_klr", "npo_gdr", "npo_klr"}
    assert {m.base for m in methods().values() if m.frozen} == {"npo", "npo_gdr", "npo_klr", "ga_klr"}


def test_ga_and_gdr_by_hand():
    uniform = FixedLogits(torch.zeros(1, 3, 2))
    ctx = LossContext(uniform, None, beta=0.1)
    assert ga_loss(ctx, _batch()).item() == pytest.approx(-math.log(2))
    assert gdr_loss(ctx, _batch()).item() == pytest.approx(math.log(2))


def test_npo_by_hand():
    beta = 0.1
    # Model uniform: sequence NLL = 2 ln 2. Reference gives the right token probability 0.8 at both steps.
    model = FixedLogits(torch.zeros(1, 3, 2))
    ref_logit = math.log(0.8 / 0.2)
    reference = FixedLogits([[[0.0, ref_logit], [ref_logit, 0.0], [0.0, 0.0]]])
    nll, nll_ref = 2 * math.log(2), -2 * math.log(0.8)
    expected = -(2 / beta) * math.log(1 / (1 + math.exp(-beta * (nll - nll_ref))))
    assert npo_loss(LossContext(model, reference, beta), _batch()).item() == pytest.approx(expected, rel=1e-6)


def test_kl_by_hand_and_direction():
    ref = torch.log(torch.tensor([[[0.5, 0.5]]]))
    model = torch.log(torch.tensor([[[0.25, 0.75]]]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # KL(p_ref ‖ p_θ), not the reverse
    assert kl_divergence(ref, model, torch.ones(1, 1)).item() == pytest.approx(expected, rel=1e-6)
    # Masked positions do not count.
    two = torch.cat([model, ref], dim=1)
    assert kl_divergence(torch.cat([ref, ref], 1), two, torch.tensor([[1, 0]])).item() == pytest.approx(expected, rel=1e-6)


def test_klr_is_zero_when_the_model_equals_the_reference(tiny_llama):
    batch = collate([[1, 5, 9, 3, 7], [2, 4, 6]], pad_id=0)
    ctx = LossContext(tiny_llama, copy.deepcopy(tiny_llama), beta=0.1)
    assert klr_loss(ctx, batch).item() == pytest.approx(0.0, abs=1e-6)


def test_npo_gradient_lowers_the_forget_likelihood(tiny_llama):
    batch = collate([[1, 5, 9, 3, 7, 11, 13]], pad_id=0)
    ctx = LossContext(tiny_llama, copy.deepcopy(tiny_llama).requires_grad_(False), beta=0.1)

    def forget_nll():
        with torch.no_grad():
            return gdr_loss(ctx, batch).item()

    before = forget_nll()
    optimizer = torch.optim.SGD(tiny_llama.parameters(), lr=0.005)
    for _ in range(3):
        npo_loss(ctx, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert forget_nll() > before + 1e-3


def test_npo_computes_the_references_likelihood_once_per_batch_and_gives_the_uncached_loss(tiny_llama):
    """The frozen reference's NLL is kept per distinct batch; the loss equals one computed afresh each time."""
    reference = copy.deepcopy(tiny_llama).requires_grad_(False)
    calls = []
    reference.register_forward_hook(lambda *_: calls.append(1))
    ctx = LossContext(tiny_llama, reference, beta=0.1)
    first, second = collate([[1, 5, 9, 3, 7]], pad_id=0), collate([[2, 4, 6, 8, 10]], pad_id=0)  # same shape
    for batch in (first, second, first, second, collate([[1, 5, 9, 3, 7]], pad_id=0)):
        fresh = npo_loss(LossContext(tiny_llama, reference, beta=0.1), batch)
        assert torch.equal(npo_loss(ctx, batch), fresh)
    assert len(calls) == 5 + 2  # five fresh contexts, and the cached one asked twice


def test_muse_npo_on_raw_logits_by_hand():
    """MUSE's variant: logσ over every logit difference, not over sequence log-likelihood ratios."""
    beta = 0.1
    model = FixedLogits([[[1.0, 2.0]]])
    reference = FixedLogits([[[3.0, 2.0]]])  # ref − model = [2, 0]
    expected = -(2 / beta) * (math.log(1 / (1 + math.exp(-beta * 2))) + math.log(0.5)) / 2
    batch = collate([[0]], pad_id=0)
    assert npo_logits_loss(LossContext(model, reference, beta), batch).item() == pytest.approx(expected, rel=1e-6)
    # Shifting every logit by a constant leaves the distribution, and so NPO, unchanged, but not MUSE's variant.
    shifted = FixedLogits([[[11.0, 12.0]]])
    assert npo_logits_loss(LossContext(shifted, reference, beta), batch).item() != pytest.approx(expected, rel=1e-3)


def test_muse_klr_on_raw_logits_by_hand():
    """F.kl_div(logits, ref_logits, batchmean, log_target): Σ exp(ref) · (ref − logits) / batch size."""
    model = FixedLogits([[[0.0, 1.0]], [[0.0, 0.0]]])
    reference = FixedLogits([[[0.0, 0.0]], [[1.0, 0.0]]])
    expected = ((1 * (0 - 0) + 1 * (0 - 1)) + (math.e * (1 - 0) + 1 * (0 - 0))) / 2
    batch = collate([[0], [0]], pad_id=0)
    assert klr_logits_loss(LossContext(model, reference, 0.1), batch).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss_fn", [npo_loss, gdr_loss, npo_logits_loss, klr_loss])
def test_one_forward_over_the_steps_batches_gives_each_batch_its_own_logits(tiny_llama, loss_fn):
    """Forget and retain batches of different widths (one padded inside): each loss and its gradient from the
    step's one forward equal those from a forward of its own batch, within float32 rounding."""
    model = tiny_llama.float()
    ctx = LossContext(model, copy.deepcopy(model).requires_grad_(False), beta=0.1)
    forget = collate([[1, 5, 9, 4, 2, 7], [1, 3, 8]], pad_id=0)
    retain = collate([[1, 6, 2, 2, 9, 3, 5, 4, 8]], pad_id=0)

    def loss_and_gradient(together: bool):
        model.zero_grad()
        with ctx.forward_together([forget, retain]) if together else contextlib.nullcontext():
            loss = loss_fn(ctx, forget) + loss_fn(ctx, retain)
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])

    (separate, separate_grad), (together, together_grad) = loss_and_gradient(False), loss_and_gradient(True)
    torch.testing.assert_close(together, separate, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together_grad, separate_grad, rtol=1e-4, atol=1e-6)
    assert not ctx._together  # the rows are dropped with the step
