import dataclasses

import pytest
import torch

from tests.synthetic import mixture
from timetok.core.errors import ConfigError
from timetok.core.nn.sampling import Sampling
from timetok.forecast.model import ForecasterConfig, TokenForecaster
from timetok.tokenizer.model import TokenizerConfig, TokenizerModel

CONTEXT = 64


def tokenizer_config(**overrides) -> dict:
    config = TokenizerConfig(n_channels=1, context_points=CONTEXT, embedding_dim=8,
                             num_embeddings=32, block_hidden_size=16, res_hidden_size=8,
                             **overrides)
    return dataclasses.asdict(config)


def make(horizon: int = 16, **overrides) -> TokenForecaster:
    torch.manual_seed(0)
    config = ForecasterConfig(tokenizer=tokenizer_config(), context_points=CONTEXT,
                              horizon=horizon, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                              dropout=0.0, max_horizon=64, **overrides)
    model = TokenForecaster(config)
    model.tokenizer.train()  # let k-means initialise the codebook on real-looking data
    model.tokenizer(mixture(64, CONTEXT, 1, seed=0))
    model.init_code_embedding()
    return model.eval()


def test_causality_later_codes_never_change_earlier_logits():
    model = make()
    codes = torch.randint(0, 32, (3, 16))
    changed = codes.clone()
    changed[:, 10:] = torch.randint(0, 32, (3, 6))
    before, after = model.lm(codes), model.lm(changed)
    torch.testing.assert_close(before[:, :10], after[:, :10])
    assert not torch.allclose(before[:, 10:], after[:, 10:])


def test_a_future_is_tokenized_on_its_context_scale():
    model = make()
    x, future = mixture(3, CONTEXT, 2, seed=4), mixture(3, 32, 2, seed=5)
    codes, _ = model.tokenize(x, future)
    n_context = model.config.n_context
    assert codes.shape == (6, n_context + 8)
    torch.testing.assert_close(codes[:, :n_context], model.tokenize(x)[0])
    # One affine map of context and future together leaves every code as it was ...
    torch.testing.assert_close(model.tokenize(2 * x + 1, 2 * future + 1)[0], codes)
    # ... while a level shift of the future alone shows in its codes (its own RevIN
    # statistics would have removed it).
    shifted, _ = model.tokenize(x, future + 3)
    assert (shifted[:, n_context:] != codes[:, n_context:]).any()


def test_point_forecast_shapes_and_padding_of_odd_horizons():
    x = mixture(2, CONTEXT, 3, seed=1)
    for horizon in (16, 18):  # 18 is not a multiple of the compression 4: padded, cut back
        out = make(horizon).predict(x)
        assert set(out) == {"decoder", "linear"}
        assert all(pred.shape == (2, horizon, 3) for pred in out.values())


def test_gradients_reach_the_language_model_through_the_soft_lookup():
    model = make(heads=["decoder"]).train()
    out = model(mixture(4, CONTEXT, 2, seed=2), mixture(4, 16, 2, seed=3))
    out.loss.backward()
    assert model.lm.lm_head.weight.grad is not None
    assert model.lm.lm_head.weight.grad.abs().sum() > 0
    assert model.query.grad.abs().sum() > 0
    assert model.lm.transformer.h[0].attn.c_attn.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.tokenizer.parameters())


def test_sampled_paths_and_their_quantiles():
    model = make()
    torch.manual_seed(0)
    paths = model.sample(mixture(2, CONTEXT, 3, seed=6), 20, num_samples=30,
                         sampling=Sampling(top_k=10, top_p=0.9))
    assert paths.shape == (2, 30, 20, 3)
    assert torch.isfinite(paths).all()
    q = torch.quantile(paths, torch.tensor([0.1, 0.5, 0.9]), dim=1)
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()
    assert paths.std(dim=1).mean() > 0  # sampling, not one path repeated


def test_save_and_load_round_trip(tmp_path):
    model = make()
    model.save_pretrained(tmp_path)
    loaded = TokenForecaster.from_pretrained(tmp_path)
    x = mixture(2, CONTEXT, 2, seed=7)
    for head, pred in model.predict(x).items():
        torch.testing.assert_close(loaded.predict(x)[head], pred)


def test_tokenizer_stays_in_eval_mode_and_unchanged_when_training():
    model = make().train()
    assert not model.tokenizer.training
    before = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for seed in range(3):
        out = model(mixture(4, CONTEXT, 2, seed=seed), mixture(4, 16, 2, seed=seed + 10))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    for key, value in model.tokenizer.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(tokenizer=tokenizer_config(quantizer="rvq")), "one code per position"),
        (dict(tokenizer=tokenizer_config(revin_affine=True)), "revin_affine"),
        (dict(context_points=62), "not a multiple"),
        (dict(d_model=30, n_heads=4), "divisible by n_heads"),
        (dict(heads=["softmax"]), "heads must be among"),
        (dict(horizon=1000), "max_horizon"),
        (dict(attn_dropout=1.0), "attn_dropout must lie"),
    ],
)
def test_config_errors(overrides, message):
    settings = dict(tokenizer=tokenizer_config(), context_points=CONTEXT, horizon=16,
                    d_model=32, n_heads=4) | overrides
    with pytest.raises(ConfigError, match=message):
        ForecasterConfig(**settings)


def test_dropout_on_attention_probabilities_is_its_own_setting():
    model = make(attn_dropout=0.2)
    gpt = model.lm.transformer.config
    assert gpt.attn_pdrop == 0.2
    assert gpt.resid_pdrop == gpt.embd_pdrop == 0.0
    assert ForecasterConfig(tokenizer=tokenizer_config(), context_points=CONTEXT).attn_dropout == 0


def test_a_tokenizer_of_another_size_is_refused_when_loading(tmp_path):
    make().save_pretrained(tmp_path)
    other = TokenizerModel(TokenizerConfig(**(tokenizer_config() | {"num_embeddings": 64})))
    import json

    config = json.loads((tmp_path / "config.json").read_text())
    config["tokenizer"] = dataclasses.asdict(other.config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    from timetok.core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="mis-shaped"):
        TokenForecaster.from_pretrained(tmp_path)


def skip_data(seed: int = 3):
    from torch.utils.data import TensorDataset

    series = mixture(300, CONTEXT + 16, 1, seed=seed)
    series[200:] += torch.linspace(-3, 3, 100)[:, None, None]  # levels the RevIN scale removes
    pair = lambda s: TensorDataset(s[:, :CONTEXT], s[:, CONTEXT:])  # noqa: E731
    return pair(series[:150]), pair(series[150:]), series[:4, :CONTEXT]


@pytest.mark.parametrize("scale", ["revin", "standard"])
def test_linear_skip_starts_at_the_least_squares_forecast(tmp_path, scale):
    from timetok.core.nn.lstsq import apply_linear, apply_rlinear, fit_linear, linear_revin

    model = make(horizon=16, linear_skip=True, skip_scale=scale)
    train, val, context = skip_data()
    fit = model.init_linear_skip(train, val)
    revin = linear_revin() if scale == "revin" else None
    assert fit.ridge == fit_linear(train, revin, val_windows=val).ridge
    expected = (apply_rlinear(fit.weights, context) if scale == "revin"
                else apply_linear(fit.weights, context))
    torch.testing.assert_close(model.predict(context)["linear"], expected,
                               atol=1e-4, rtol=1e-4)
    assert not any("skip" in name for name, _ in model.named_parameters())  # fitted, fixed
    model.save_pretrained(tmp_path)
    loaded = TokenForecaster.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.predict(context)["linear"], expected, atol=1e-4, rtol=1e-4)


def test_skip_scale_auto_keeps_the_scale_with_the_lower_validation_error():
    from timetok.core.nn.lstsq import linear_mse

    train, val, _ = skip_data()
    errors = {}
    for scale in ("revin", "standard"):
        model = make(horizon=16, linear_skip=True, skip_scale=scale)
        fit = model.init_linear_skip(train, val)
        errors[scale] = linear_mse(val, lambda x, m=model: m.predict(x)["linear"])
        assert fit.val_mse == pytest.approx(errors[scale], rel=1e-4)  # from sums
    assert errors["revin"] != pytest.approx(errors["standard"], rel=1e-3)
    model = make(horizon=16, linear_skip=True)
    model.init_linear_skip(train, val)
    assert model.config.skip_scale == min(errors, key=errors.get)
    with pytest.raises(ConfigError, match="validation windows"):
        make(horizon=16, linear_skip=True).init_linear_skip(train)


def test_a_rival_skip_map_is_kept_only_where_its_validation_error_is_lower(tmp_path):
    from timetok.core.nn.lstsq import LinearFit, apply_linear, fit_linear, linear_mse

    train, val, context = skip_data()

    def rival(weights: torch.Tensor) -> LinearFit:
        return LinearFit(weights, None, linear_mse(val, lambda x: apply_linear(weights, x)))

    # Fitted on the validation windows themselves: lower validation error than any fit on
    # the training windows, so it wins; the zero map loses.
    better = rival(fit_linear(val).weights)
    worse = rival(torch.zeros(CONTEXT + 1, 16))
    model = make(horizon=16, linear_skip=True)
    ridge = model.init_linear_skip(train, val)
    assert worse.val_mse > ridge.val_mse > better.val_mse
    assert model.init_linear_skip(train, val, [worse]) is not worse
    assert model.config.skip_fit == "ridge"
    assert model.init_linear_skip(train, val, [worse, better]) is better
    assert (model.config.skip_fit, model.config.skip_scale) == ("trained", "standard")
    expected = apply_linear(better.weights, context)
    torch.testing.assert_close(model.predict(context)["linear"], expected, atol=1e-4, rtol=1e-4)
    model.save_pretrained(tmp_path)
    loaded = TokenForecaster.from_pretrained(tmp_path)
    assert loaded.config.skip_fit == "trained"
    torch.testing.assert_close(loaded.predict(context)["linear"], expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="validation windows"):
        model.init_linear_skip(train, None, [better])
    with pytest.raises(ConfigError, match="must be 65 x 16"):
        model.init_linear_skip(train, val, [LinearFit(torch.zeros(CONTEXT, 16), None, 1.0)])
    with pytest.raises(ConfigError, match="skip fit"):
        make(horizon=16, linear_skip=True, skip_fit="lasso")


def test_a_model_without_the_skip_refuses_to_fit_one():
    with pytest.raises(ConfigError, match="linear_skip"):
        make().init_linear_skip([])


def two_channel(pairs):
    """Channel-independent windows ``([L, 1], [H, 1])`` -> two-channel ones, the second
    channel another stretch of the series with its future damped."""
    from torch.utils.data import TensorDataset

    x, y = pairs.tensors
    half = len(x) // 2
    return TensorDataset(torch.cat([x[:half], x[half:2 * half]], dim=2),
                         torch.cat([y[:half], 0.3 * y[half:2 * half]], dim=2))


def expected_blend_weights(gap, miss, shared: bool):
    """Least squares over the steps within BLEND_SPAN // 2, per channel or shared."""
    from timetok.forecast.model import BLEND_SPAN

    cross, gap2 = (gap * miss).sum(0), (gap * gap).sum(0)  # (H, C)
    if shared:
        cross, gap2 = cross.sum(1, keepdim=True), gap2.sum(1, keepdim=True)
    steps = torch.arange(len(cross))
    near = ((steps[:, None] - steps[None]).abs() <= BLEND_SPAN // 2).double()
    return ((near @ cross) / (near @ gap2)).clamp(0, 1).float()


@pytest.mark.parametrize("blend_channels", [1, 2])
def test_the_blend_weights_are_the_pooled_least_squares_fit_within_0_and_1(tmp_path,
                                                                          blend_channels):
    from torch.utils.data import DataLoader

    train, val, _ = skip_data()
    val = two_channel(val)
    model = make(horizon=16, heads=["decoder"], linear_skip=True, skip_scale="standard",
                 blend_channels=blend_channels)
    model.init_linear_skip(train)
    assert model.outputs == ["decoder", "blend"]
    context, _ = val[:4]  # before fitting, the blend is the skip
    before = model.predict(context, skip=True)
    torch.testing.assert_close(before["blend"], before["skip"])
    fit = model.fit_blend(val)
    x, y = next(iter(DataLoader(val, batch_size=len(val))))
    out = model.predict(x, skip=True)
    skip, decoder = out["skip"], out["decoder"]
    gap, miss = (decoder - skip).double(), (y - skip).double()
    expected = expected_blend_weights(gap, miss, shared=blend_channels == 1)
    assert expected.shape == (16, blend_channels) and expected.unique().numel() > 1
    torch.testing.assert_close(model.blend_weight, expected, atol=1e-5, rtol=1e-4)
    blend = model.predict(x)["blend"]
    torch.testing.assert_close(blend, skip + expected * (decoder - skip))
    for name, pred in {"skip": skip, "decoder": decoder, "blend": blend}.items():
        assert fit[name] == pytest.approx(float((pred - y).pow(2).mean()), rel=1e-4)
    assert fit["blend"] < min(fit["skip"], fit["decoder"])
    model.save_pretrained(tmp_path)
    loaded = TokenForecaster.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.predict(x)["blend"], blend)


def test_weights_per_channel_fit_each_channel_and_refuse_other_channel_counts():
    train, val, _ = skip_data()
    val = two_channel(val)
    fits = {}
    for blend_channels in (1, 2):
        model = make(horizon=16, heads=["decoder"], linear_skip=True, skip_scale="standard",
                     blend_channels=blend_channels)
        model.init_linear_skip(train)
        fits[blend_channels] = model.fit_blend(val)
    assert fits[2]["blend"] < fits[1]["blend"]  # the channels want different weights
    x, _ = val[:4]
    with pytest.raises(ConfigError, match="weights for 2 channels, the input has 3"):
        model.predict(torch.cat([x, x[..., :1]], dim=2))
    with pytest.raises(ConfigError, match="blend_channels must be >= 1"):
        make(horizon=16, heads=["decoder"], linear_skip=True, blend_channels=0)


def test_the_blend_takes_no_part_in_the_training_loss():
    train, val, _ = skip_data()
    model = make(horizon=16, heads=["decoder"], linear_skip=True, skip_scale="standard")
    model.init_linear_skip(train)
    model.fit_blend(val)
    x, y = val[:8]
    out = model(x, y)
    assert set(out.losses) == {"decoder"}
    assert set(out.predictions) == {"decoder"}


@pytest.mark.parametrize("overrides", [dict(heads=["linear"], linear_skip=True),
                                       dict(heads=["decoder"], linear_skip=False)])
def test_only_the_decoder_head_with_the_skip_blends(overrides):
    model = make(horizon=16, **overrides)
    assert "blend" not in model.outputs and "blend" not in model.predict(torch.randn(2, 64, 1))
    with pytest.raises(ConfigError, match="blends"):
        model.fit_blend([])
