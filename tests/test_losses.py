"""Losses: hand-computed values, masking of multi-positive batches, gradients, toy optimisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from soundseek import losses as L

torch.set_num_threads(1)


def test_positive_mask():
    p = L.positive_mask([7, 7, 3], [3, 7])
    assert p.tolist() == [[False, True], [False, True], [True, False]]


def test_max_margin_hand_computed():
    s = torch.tensor([[0.5, 0.4], [0.1, 0.2]])
    p = torch.eye(2, dtype=torch.bool)
    # t2a: [0.2+0.4-0.5]=0.1, [0.2+0.1-0.2]=0.1 ; a2t: [0.2+0.1-0.5]=0, [0.2+0.4-0.2]=0.4
    assert float(L.max_margin_loss(s, p)) == pytest.approx((0.1 + 0.1 + 0.0 + 0.4) / 4)


def test_max_margin_matches_eq1_for_square_batch():
    torch.manual_seed(0)
    b = 6
    s = torch.randn(b, b)
    eq1 = 0.0
    for i in range(b):
        for j in range(b):
            if j != i:
                eq1 += max(0, 0.2 + s[i, j] - s[i, i]) + max(0, 0.2 + s[j, i] - s[i, i])
    eq1 /= b
    got = L.max_margin_loss(s, torch.eye(b, dtype=torch.bool))
    assert float(got) == pytest.approx(float(eq1) / (2 * (b - 1)), rel=1e-5)


def test_max_margin_multi_positive_not_negatives():
    # captions 0,1 describe audio 0; caption 2 audio 1.  Caption 1 scores audio 0 badly but the
    # other caption of audio 0 must not be used as a negative of audio 0.
    s = torch.tensor([[0.9, 0.0], [0.9, 0.0], [0.0, 0.9]])
    p = L.positive_mask([0, 0, 1], [0, 1])
    assert float(L.max_margin_loss(s, p)) == pytest.approx(0.0)
    # treating the identity-like mask (caption 1 a negative of audio 0) would give a loss
    wrong = torch.tensor([[True, False], [False, False], [False, True]])
    assert float(L.max_margin_loss(s, wrong)) > 0


def test_nt_xent_equals_cross_entropy_with_one_positive():
    torch.manual_seed(1)
    s = torch.randn(5, 5)
    p = torch.eye(5, dtype=torch.bool)
    tgt = torch.arange(5)
    ref = 0.5 * (F.cross_entropy(s / 0.07, tgt) + F.cross_entropy(s.T / 0.07, tgt))
    assert float(L.nt_xent_loss(s, p, 0.07)) == pytest.approx(float(ref), rel=1e-5)


def test_nt_xent_multi_positive_hand_computed():
    s = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
    p = L.positive_mask([0, 0, 1], [0, 1])
    tau = 1.0
    # t2a rows: each caption has one positive audio and one negative
    t2a = [math.log1p(math.exp(0 - 1)), math.log1p(math.exp(0 - 0.5)), math.log1p(math.exp(0 - 1))]
    # a2t: audio 0 has positives caption 0 (1.0) and 1 (0.5), negative caption 2 (0.0)
    a0 = 0.5 * (math.log1p(math.exp(0 - 1.0)) + math.log1p(math.exp(0 - 0.5)))
    # audio 1: positive caption 2 (1.0), negatives captions 0, 1 (0.0, 0.0)
    a1 = -math.log(math.e / (math.e + 2))
    want = 0.5 * (sum(t2a) / 3 + (a0 + a1) / 2)
    assert float(L.nt_xent_loss(s, p, tau)) == pytest.approx(want, rel=1e-6)


def test_row_without_negatives_has_zero_loss_and_finite_grad():
    s = torch.tensor([[0.3, 0.1], [0.2, 0.4]], requires_grad=True)
    p = torch.ones(2, 2, dtype=torch.bool)
    p[1, 0] = False
    loss = L.nt_xent_loss(s, p, 0.1)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    all_pos = torch.ones(2, 2, dtype=torch.bool)
    s2 = torch.randn(2, 2, requires_grad=True)
    L.nt_xent_loss(s2, all_pos).backward()
    assert float(L.nt_xent_loss(s2, all_pos).detach()) == 0.0 and torch.isfinite(s2.grad).all()


def test_errors_are_clear():
    with pytest.raises(ValueError, match="no positives"):
        L.nt_xent_loss(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        L.max_margin_loss(torch.zeros(2, 3), torch.eye(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown loss"):
        L.get_loss("hinge")


def test_distillation_targets_and_values():
    s1, s2 = torch.randn(3, 4), torch.randn(3, 4)
    t2a, a2t = L.ensemble_targets([s1, s2], temperature=0.5)
    assert t2a.shape == (3, 4) and a2t.shape == (4, 3)
    assert torch.allclose(t2a.sum(1), torch.ones(3)) and torch.allclose(a2t.sum(1), torch.ones(4))
    mean = (s1 + s2) / 2
    assert torch.allclose(t2a, F.softmax(mean / 0.5, dim=1))
    # KL is zero when the student equals the ensemble mean at the same temperature
    assert float(L.distillation_loss(mean, t2a, a2t, 0.5, kind="kl")) == pytest.approx(0.0, abs=1e-6)
    # CE at the optimum = entropy of the targets
    ent = 0.5 * (-(t2a * t2a.log()).sum(1).mean() - (a2t * a2t.log()).sum(1).mean())
    assert float(L.distillation_loss(mean, t2a, a2t, 0.5, kind="ce")) == pytest.approx(float(ent), rel=1e-5)
    # one-hot targets reduce to InfoNCE
    eye = torch.eye(3, 4)
    s = torch.randn(3, 4)
    ce = 0.5 * (F.cross_entropy(s / 0.07, torch.arange(3)) + (-F.log_softmax(s.T / 0.07, 1)[:3].diagonal()).sum() / 4)
    assert float(L.distillation_loss(s, eye, eye.T.clone())) == pytest.approx(float(ce), rel=1e-5)
    with pytest.raises(ValueError, match="targets must be"):
        L.distillation_loss(s, eye.T, eye)


def test_learnable_temperature_gets_gradient():
    loss_fn = L.NTXentLoss(0.07, learnable=True)
    assert loss_fn.tau == pytest.approx(0.07, rel=1e-5)
    s = torch.randn(4, 4)
    loss_fn(s, torch.eye(4, dtype=torch.bool)).backward()
    assert loss_fn.temperature.log_tau.grad is not None
    assert float(loss_fn.temperature.log_tau.grad) != 0.0


def _toy_problem(seed=0):
    """Captions (3 per audio) and audios as noisy views of 8 latent classes."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(8, 16, generator=g)
    audio = z + 0.5 * torch.randn(8, 16, generator=g)
    text_ids = torch.arange(8).repeat_interleave(3)
    text = z[text_ids] + 0.5 * torch.randn(24, 16, generator=g)
    return audio, text, L.positive_mask(text_ids, torch.arange(8))


@pytest.mark.parametrize(
    "make_loss",
    [
        lambda: L.MaxMarginLoss(0.2),
        lambda: L.NTXentLoss(0.07),
        lambda: L.NTXentLoss(0.07, learnable=True),
    ],
)
def test_losses_decrease_on_toy_problem(make_loss):
    torch.manual_seed(0)
    audio, text, pos = _toy_problem()
    wa, wt = torch.nn.Linear(16, 8), torch.nn.Linear(16, 8)
    loss_fn = make_loss()
    opt = torch.optim.Adam([*wa.parameters(), *wt.parameters(), *loss_fn.parameters()], lr=0.02)

    def step():
        s = F.normalize(wt(text), dim=-1) @ F.normalize(wa(audio), dim=-1).T
        return loss_fn(s, pos)

    first = float(step().detach())
    for _ in range(60):
        opt.zero_grad()
        loss = step()
        loss.backward()
        opt.step()
    assert float(step().detach()) < 0.5 * first


def test_distillation_decreases_on_toy_problem():
    torch.manual_seed(0)
    audio, text, _ = _toy_problem()
    teacher = [text @ audio.T / 4, (text @ audio.T / 4) + 0.05 * torch.randn(24, 8)]
    t2a, a2t = L.ensemble_targets(teacher, temperature=0.5)
    student = torch.nn.Parameter(torch.zeros(24, 8))
    opt = torch.optim.Adam([student], lr=0.05)
    first = float(L.distillation_loss(student, t2a, a2t, 0.5, kind="kl").detach())
    for _ in range(100):
        opt.zero_grad()
        loss = L.distillation_loss(student, t2a, a2t, 0.5, kind="kl")
        loss.backward()
        opt.step()
    assert float(L.distillation_loss(student, t2a, a2t, 0.5, kind="kl").detach()) < 0.2 * first
