import pytest
import torch

from tests.synthetic import mixture
from timetok.core.errors import ConfigError
from timetok.mae.model import TimeMAE, TimeMAEConfig


def make(**overrides) -> TimeMAE:
    torch.manual_seed(0)
    settings = dict(n_channels=3, length=64, n_classes=4, slice_length=8, d_model=32,
                    n_layers=2, n_heads=4, d_ff=64, regressor_layers=2, dropout=0.0)
    return TimeMAE(TimeMAEConfig(**(settings | overrides)))


@pytest.mark.parametrize("encoder", ["native", "bert", "conv"])
def test_perturbing_masked_slices_leaves_the_visible_encoding_unchanged(encoder):
    model = make(encoder=encoder).eval()
    x = mixture(4, 64, 3, seed=1)
    masked = torch.tensor([[0, 2, 3, 6]] * 4)  # 4 of 8 slices: steps 0-7, 16-31, 48-55
    seen = []
    model.encoder.register_forward_hook(lambda module, args, out: seen.append(out.clone()))
    model.pretrain(x, masked=masked)
    changed = x.clone()
    for slice_index in (0, 2, 3, 6):
        changed[:, slice_index * 8:(slice_index + 1) * 8] += torch.randn(4, 8, 3) * 5
    model.pretrain(changed, masked=masked)
    torch.testing.assert_close(seen[0], seen[1])  # only visible slices enter the encoder
    changed[:, 8:16] += 1.0  # a visible slice: now the encoding moves
    model.pretrain(changed, masked=masked)
    assert not torch.allclose(seen[0], seen[2])


def test_the_momentum_target_gets_no_gradient_and_moves_only_by_its_update():
    model = make().train()
    target_before = [p.clone() for p in model.target.parameters()]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.pretrain(mixture(8, 64, 3, seed=2)).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target.parameters())
    optimizer.step()
    for before, after in zip(target_before, model.target.parameters(), strict=True):
        assert torch.equal(before, after)
    online = [p.detach().clone() for p in model.encoder.parameters()]
    model.update_target()
    m = model.config.momentum
    for before, now, enc in zip(target_before, model.target.parameters(), online, strict=True):
        torch.testing.assert_close(now, m * before + (1 - m) * enc)


@pytest.mark.parametrize("encoder", ["native", "bert", "conv"])
@pytest.mark.parametrize("codeword", ["linear", "vq"])
def test_every_encoder_and_codeword_trains_a_step(encoder, codeword):
    model = make(encoder=encoder, codeword=codeword).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = mixture(16, 64, 3, seed=3)
    out = model.pretrain(x)
    assert out.codes.shape == (16, model.config.n_masked)
    assert out.codes.max() < model.config.vocab_size
    before = {n: p.detach().clone() for n, p in model.encoder.named_parameters()}
    optimizer.zero_grad()
    out.loss.backward()
    optimizer.step()
    moved = [n for n, p in model.encoder.named_parameters() if not torch.equal(before[n], p)]
    assert len(moved) > len(before) // 2
    assert model(x).logits.shape == (16, 4)
    assert model.embed(x).shape == (16, 32)


def test_a_length_that_is_no_multiple_of_the_slice_is_padded_and_the_padding_ignored():
    model = make(length=60).eval()  # 8 slices, the last with 4 real steps
    x = mixture(2, 60, 3, seed=4)
    _, valid = model.slices(x)
    assert valid.all()  # a slice with any real step counts
    observed = torch.ones(2, 60, dtype=torch.bool)
    observed[:, 40:] = False  # slices 5..7 hold no real step (as padded UEA series)
    _, valid = model.slices(x, observed)
    assert valid[:, :5].all() and not valid[:, 5:].any()
    masked, visible = model.choose_masked(valid)
    # 60 % of the series' own 5 real slices are masked; padding fills the other places
    assert (valid.gather(1, masked).sum(1) == 3).all()
    assert (valid.gather(1, visible).sum(1) == 2).all()
    changed = x.clone()
    changed[:, 40:] = 100.0  # what the padding holds does not matter
    torch.testing.assert_close(model.embed(x, observed), model.embed(changed, observed))


@pytest.mark.parametrize("encoder", ["native", "conv"])
def test_series_of_unequal_lengths_mask_their_own_share_and_train_with_finite_losses(encoder):
    """Short series hold fewer real slices than the longest series masks (as a UEA set of 7
    to 64 steps): each masks its own share, at least one, and always shows one."""
    model = make(encoder=encoder).train()
    x = mixture(6, 64, 3, seed=5)
    observed = torch.zeros(6, 64, dtype=torch.bool)
    for row, steps in enumerate([7, 9, 16, 20, 40, 64]):
        observed[row, :steps] = True
    _, valid = model.slices(x, observed)
    masked, visible = model.choose_masked(valid)
    real_masked = valid.gather(1, masked).sum(1)
    assert real_masked.tolist() == [0, 1, 1, 1, 3, 4]  # a one-slice series is only shown
    assert valid.gather(1, visible).any(1).all()
    out = model.pretrain(x, observed)
    assert torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_the_conv_encoder_reads_no_hidden_step():
    model = make(encoder="conv").eval()
    x = mixture(2, 64, 3, seed=6)
    shown = torch.ones(2, 64, dtype=torch.bool)
    shown[:, 20:30] = False
    changed = x.clone()
    changed[:, 20:30] = 50.0
    torch.testing.assert_close(model.encoder(x, shown), model.encoder(changed, shown))


def test_save_and_load_give_identical_predictions(tmp_path):
    model = make(encoder="bert").eval()
    model.save_pretrained(tmp_path)
    loaded = TimeMAE.from_pretrained(tmp_path)
    x = mixture(3, 64, 3, seed=5)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)


@pytest.mark.parametrize("overrides, message", [
    (dict(mask_ratio=1.0), "mask_ratio must lie in \\(0, 1\\)"),
    (dict(mask_ratio=0.05), "at least one masked"),
    (dict(slice_length=64), "at least one masked"),
    (dict(d_model=30), "divisible by n_heads"),
    (dict(codeword="gumbel"), "codeword must be one of"),
    (dict(n_classes=1), "n_classes"),
])
def test_config_errors_name_the_setting(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make(**overrides)


def test_series_of_another_shape_are_refused():
    with pytest.raises(ConfigError, match="64 steps x 3 channel"):
        make()(torch.randn(2, 64, 2))
