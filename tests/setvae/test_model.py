"""SeqSetVAE: permutation invariance, padding that changes nothing, KL and free bits, the
beta warm-up, active units, training steps, each feature mode, the round trip and each
bad setting."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from timetok.core.data.records import SetBatch, SetStay, collate_sets
from timetok.core.errors import ConfigError
from timetok.core.model_folder import PretrainedModel
from timetok.core.train.freeze import parameter_table
from timetok.setvae import model as setvae
from timetok.setvae.model import (
    PARTS,
    SeqSetVAE,
    SeqSetVAEConfig,
    active_units,
    gaussian_kl,
    set_targets,
    stay_summaries,
)

V, P = 6, 3


def make(**overrides) -> SeqSetVAE:
    torch.manual_seed(0)
    settings = dict(n_variables=V, n_statics=P, n_classes=2, d_model=16, latent_dim=4,
                    set_layers=2, n_heads=2, seq_layers=2, d_ff=32, dropout=0.0)
    return SeqSetVAE(SeqSetVAEConfig(**(settings | overrides)))


def stays(n: int = 6, seed: int = 0) -> list[SetStay]:
    """Stays of 2 to 5 sets in 15-minute buckets, 1 to 4 observations a set (a variable may
    repeat), values that depend on the variable, a label that depends on the values."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        n_sets = int(rng.integers(2, 6))
        set_times = np.sort(rng.choice(np.arange(0, 48, 0.25), n_sets, replace=False))
        counts = rng.integers(1, 5, n_sets)
        set_index = np.repeat(np.arange(n_sets), counts)
        variables = rng.integers(0, V, len(set_index))
        label = i % 2
        values = variables / V + (label - 0.5) + 0.1 * rng.normal(size=len(set_index))
        times = set_times[set_index] + rng.uniform(0, 0.25, len(set_index))
        mask = rng.random(P) > 0.3
        statics = np.where(mask, rng.normal(size=P), 0)
        items.append(SetStay(values.astype(np.float32), variables.astype(np.int64),
                             times.astype(np.float32), set_index, set_times.astype(np.float32),
                             label, statics.astype(np.float32), mask))
    return items


def batch(n: int = 6, seed: int = 0) -> SetBatch:
    return collate_sets(stays(n, seed))


def padded(b: SetBatch, sets: int = 1, slots: int = 2, stays: int = 1) -> SetBatch:
    """``b`` with extra padding: sets at the end of every stay, observation slots at the
    end of every set and whole stays without a set."""
    def pad(t: torch.Tensor) -> torch.Tensor:
        widths = {3: (0, slots, 0, sets, 0, stays), 2: (0, sets, 0, stays)}[t.ndim]
        return F.pad(t, widths)

    return SetBatch(*(pad(getattr(b, name)) for name in (
        "values", "variables", "times", "obs_mask", "set_times", "set_mask")),
        F.pad(b.labels, (0, stays)), F.pad(b.statics, (0, 0, 0, stays)),
        F.pad(b.statics_mask, (0, 0, 0, stays)))


def test_the_docstring_example_runs():
    assert doctest.testmod(setvae).failed == 0


def test_outputs_follow_the_shared_convention():
    from timetok.core.outputs import ClassifierOutput, ModelOutput

    model, b = make().eval(), batch()
    with torch.no_grad():
        out = model(b)
        scored = model(b, targets=b.labels)
        pretrained = model.pretrain(b)
    assert isinstance(out, ClassifierOutput) and out.loss is None
    torch.testing.assert_close(scored.loss, F.cross_entropy(out.logits, b.labels))
    assert out.embedding.shape == (6, 16)
    assert isinstance(pretrained, ModelOutput) and pretrained.loss.shape == ()


@pytest.mark.parametrize("inducing", [0, 3])
def test_the_set_encoder_is_invariant_to_the_order_of_observations(inducing):
    model = make(inducing=inducing).eval()
    b = padded(batch(), sets=0, slots=3, stays=0)
    before = model.encode(b)
    order = torch.rand(b.obs_mask.shape, generator=torch.Generator().manual_seed(1)).argsort(-1)
    shuffled = dataclasses.replace(b, **{name: getattr(b, name).gather(-1, order) for name in (
        "values", "variables", "times", "obs_mask")})
    assert not torch.equal(shuffled.obs_mask, b.obs_mask)  # padding slots moved too
    after = model.encode(shuffled)
    torch.testing.assert_close(after.mu, before.mu, atol=1e-5, rtol=0)
    torch.testing.assert_close(after.logvar, before.logvar, atol=1e-5, rtol=0)


def test_padding_sets_observations_and_stays_change_nothing():
    model = make(feature="uncertainty", summaries=True).eval()
    b = batch()
    wide = padded(b, sets=2, slots=2, stays=1)
    before, after = model.encode(b), model.encode(wide)
    n, s = b.set_mask.shape
    torch.testing.assert_close(after.mu[:n, :s], before.mu, atol=1e-5, rtol=0)
    assert not after.valid[:, s:].any() and not after.valid[n:].any()
    with torch.no_grad():
        loss, wide_loss = model.pretrain(b).loss, model.pretrain(wide).loss
        logits, wide_logits = model(b).logits, model(wide).logits
    assert torch.isfinite(wide_loss) and torch.isfinite(wide_logits).all()
    torch.testing.assert_close(wide_loss, loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wide_logits[:n], logits, atol=1e-5, rtol=0)


def test_the_kl_is_nonnegative_and_zero_at_the_prior():
    torch.manual_seed(0)
    kl = gaussian_kl(torch.randn(50, 8) * 3, torch.randn(50, 8) * 3)
    assert kl.shape == (50, 8) and (kl >= 0).all()
    assert torch.equal(gaussian_kl(torch.zeros(3), torch.zeros(3)), torch.zeros(3))


def test_free_bits_floor_each_dimension_and_leave_a_large_kl_alone():
    model = make(free_bits=0.25, latent_dim=4).eval()
    layer = model.set_encoder.posterior
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()  # every posterior is the prior
    out = model.pretrain(batch())
    assert out.kl.item() == 0 and torch.equal(out.kl_per_dim, torch.zeros(4))
    assert out.kl_loss.item() == pytest.approx(4 * 0.25)
    with torch.no_grad():
        layer.bias[:4] = 3.0  # mu = 3 in every dimension: KL 4.5 nats each
    out = model.pretrain(batch())
    torch.testing.assert_close(out.kl_per_dim, torch.full((4,), 4.5))
    assert out.kl_loss.item() == pytest.approx(out.kl.item()) == pytest.approx(18.0)


def test_beta_warms_up_linearly():
    model = make(beta=0.4, beta_warmup_steps=100)
    assert model.beta_at(0) == 0
    assert model.beta_at(50) == pytest.approx(0.2)
    assert model.beta_at(100) == model.beta_at(10_000) == pytest.approx(0.4)
    assert make(beta=0.4, beta_warmup_steps=0).beta_at(0) == pytest.approx(0.4)


def test_active_units_count_the_dimensions_whose_mean_varies():
    torch.manual_seed(0)
    mu = torch.zeros(200, 5)
    mu[:, 1] = torch.randn(200)  # variance ~1
    mu[:, 3] = torch.randn(200) * 0.5  # ~0.25
    mu[:, 4] = torch.randn(200) * 0.03 + 7  # ~0.001: a constant with noise, inactive
    assert active_units(mu) == 2
    assert active_units(mu, threshold=0.5) == 1
    assert active_units(mu[:1]) == 0
    out = make().pretrain(batch())
    assert isinstance(out.active_units, int) and 0 <= out.active_units <= 4


def test_a_repeated_variable_is_rebuilt_as_the_mean_of_its_values():
    values = torch.tensor([[[1.0, 3.0, 5.0, 0.0]]])
    variables = torch.tensor([[[2, 2, 0, 0]]])
    mask = torch.tensor([[[True, True, True, False]]])
    target, observed = set_targets(values, variables, mask, 4)
    assert target.tolist() == [[[5.0, 0.0, 2.0, 0.0]]]
    assert observed.tolist() == [[[True, False, True, False]]]


def test_latents_are_sampled_in_training_and_the_mean_in_eval():
    model, b = make(), batch()
    assert not torch.equal(model.train().pretrain(b).loss, model.pretrain(b).loss)
    torch.testing.assert_close(model.eval().pretrain(b).loss, model.pretrain(b).loss)


def train_steps(model: SeqSetVAE, loss_fn, steps: int = 25) -> tuple[float, float]:
    """The eval-mode loss before and after ``steps`` Adam steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = loss_fn(model.eval()).item()
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return before, loss_fn(model.eval()).item()


def test_summaries_read_each_variable_over_the_whole_stay():
    # variable 0 at hours 0 and 2 (values 1, 3), variable 2 at hour 1 (-2), variable 3 at
    # hour 3 (9, clipped to 5); variables 1, 4 and 5 never.
    stay = SetStay(values=np.array([1.0, -2.0, 3.0, 9.0], np.float32),
                   variables=np.array([0, 2, 0, 3]), times=np.array([0, 1, 2, 3], np.float32),
                   set_index=np.array([0, 1, 2, 2]), set_times=np.array([0, 1, 2], np.float32),
                   label=0, statics=np.zeros(P, np.float32), statics_mask=np.ones(P, bool))
    got = stay_summaries(collate_sets([stay]), V, max_hours=48.0).reshape(V, 6)
    expected = torch.zeros(V, 6)  # last, mean, min, max, log(1 + count), hours since / 48
    expected[0] = torch.tensor([3.0, 2.0, 1.0, 3.0, np.log(3), 1 / 48])
    expected[2] = torch.tensor([-2.0, -2.0, -2.0, -2.0, np.log(2), 2 / 48])
    expected[3] = torch.tensor([5.0, 5.0, 5.0, 5.0, np.log(2), 0.0])
    torch.testing.assert_close(got, expected)


def test_summaries_add_a_wide_map_and_leave_the_rest_as_it_was():
    plain, wide = make(), make(summaries=True)
    assert plain.wide is None and wide.wide.in_features == 6 * V
    assert {k: v.shape for k, v in wide.state_dict().items() if not k.startswith("wide.")} == {
        k: v.shape for k, v in plain.state_dict().items()}
    b = batch()
    with torch.no_grad():
        torch.nn.init.zeros_(wide.wide.weight), torch.nn.init.zeros_(wide.wide.bias)
        wide.load_state_dict(plain.state_dict(), strict=False)
        torch.testing.assert_close(wide.eval()(b).logits, plain.eval()(b).logits)


def test_pretraining_lowers_the_loss():
    b = batch()
    before, after = train_steps(make(n_classes=0), lambda m: m.pretrain(b, beta=0.1).loss)
    assert after < 0.8 * before


@pytest.mark.parametrize("feature", ["mu", "mu_logvar_gated", "uncertainty"])
def test_each_feature_mode_trains_a_classifier(feature):
    model, b = make(feature=feature), batch()
    out = model(b)
    assert out.logits.shape == (6, 2) and out.embedding.shape == (6, 16)
    torch.testing.assert_close(model.eval().embed(b), model(b).embedding)
    before, after = train_steps(model, lambda m: F.cross_entropy(m(b).logits, b.labels))
    assert after < before
    if feature == "mu_logvar_gated":
        assert model.feature is not None
        assert all(p.grad is not None and torch.isfinite(p.grad).all()
                   for p in model.feature.parameters())


def test_the_parts_cover_every_parameter():
    table = parameter_table(make(feature="mu_logvar_gated"), PARTS)
    assert {row["part"] for row in table} == {*PARTS, "all"}  # nothing under "other"


def test_save_and_load_give_identical_outputs(tmp_path):
    model = make(feature="mu_logvar_gated", inducing=2, summaries=True).eval()
    b = batch()
    model.save_pretrained(tmp_path)
    loaded = PretrainedModel.from_pretrained(tmp_path)
    assert isinstance(loaded, SeqSetVAE) and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(b).logits, model(b).logits, atol=0, rtol=0)
        torch.testing.assert_close(loaded.pretrain(b).loss, model.pretrain(b).loss,
                                   atol=0, rtol=0)


@pytest.mark.parametrize(("overrides", "setting"), [
    (dict(d_model=10, n_heads=4), "n_heads"),
    (dict(free_bits=-0.1), "free_bits"),
    (dict(feature="mean"), "feature"),
    (dict(n_classes=1), "n_classes"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(inducing=-1), "inducing"),
    (dict(beta=float("nan")), "beta"),
    (dict(beta_warmup_steps=-5), "beta_warmup_steps"),
    (dict(dropout=1.0), "dropout"),
    (dict(max_hours=0.0), "max_hours"),
    (dict(value_weight=0.0, observed_weight=0.0), "observed_weight"),
])
def test_bad_settings_are_refused_by_name(overrides, setting):
    with pytest.raises(ConfigError, match=setting):
        SeqSetVAEConfig(**(dict(n_variables=V, n_statics=P) | overrides))


def test_batches_that_do_not_fit_are_refused():
    b = batch()
    with pytest.raises(ConfigError, match="n_variables=6"):
        make().encode(dataclasses.replace(b, variables=b.variables + V))
    with pytest.raises(ConfigError, match="n_statics=3"):
        make()(dataclasses.replace(b, statics=b.statics[:, :2]))
    with pytest.raises(ConfigError, match="no classification head"):
        make(n_classes=0)(b)
