"""Probabilistic metrics and the calibration of quantiles from validation residuals."""

from __future__ import annotations

import shutil
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from timetok.core.errors import CheckpointError, ConfigError
from timetok.forecast.calibration import (
    LEVELS,
    SCALE_FLOOR,
    Calibration,
    calibrate_folder,
    check_levels,
    context_scale,
    forward_crps,
    validation_crps,
)
from timetok.forecast.probabilistic import (
    CRPS_LEVELS,
    WQL_LEVELS,
    coverage,
    crps_from_quantiles,
    quantile_loss,
    sample_quantiles,
    weighted_quantile_loss,
)


def gaussian_quantiles(levels, mean=0.0, std=1.0) -> np.ndarray:
    return np.array([NormalDist(mean, std).inv_cdf(q) for q in levels])


def test_pinball_loss_by_hand():
    loss = quantile_loss(np.array([[0.0, 1.0]]), np.array([1.0, 0.0]), [0.9])
    np.testing.assert_allclose(loss, [[0.9, 0.1]])


def test_coverage_of_exact_gaussian_quantiles():
    y = np.random.default_rng(0).normal(size=20_000)
    for (low, high), nominal in (((0.1, 0.9), 0.8), ((0.25, 0.75), 0.5)):
        lower, upper = gaussian_quantiles([low, high])
        # binomial standard error at 20k values: under 0.004
        assert coverage(lower, upper, y) == pytest.approx(nominal, abs=0.015)


def test_true_quantiles_score_better_than_shifted_ones():
    y = np.random.default_rng(1).normal(5.0, 1.0, size=20_000)
    for levels, score in ((WQL_LEVELS, weighted_quantile_loss),
                          (CRPS_LEVELS, lambda q, y, levels: crps_from_quantiles(q, y,
                                                                                 levels).mean())):
        true = np.broadcast_to(gaussian_quantiles(levels, 5.0)[:, None], (len(levels), len(y)))
        assert score(true, y, levels) < score(true + 0.5, y, levels)
        assert score(true, y, levels) < score(true * 1.5 - 2.5, y, levels)  # too wide


def test_crps_from_quantiles_approximates_the_gaussian_closed_form():
    # CRPS(N(0, 1), 0) = 2 phi(0) - 1 / sqrt(pi)
    exact = 2 * NormalDist().pdf(0) - 1 / np.sqrt(np.pi)
    approx = crps_from_quantiles(gaussian_quantiles(CRPS_LEVELS)[:, None], np.zeros(1))
    assert approx[0] == pytest.approx(exact, rel=0.03)


def test_sample_quantiles_are_monotone():
    samples = np.random.default_rng(2).normal(size=(50, 4, 3))
    q = sample_quantiles(samples, [0.9, 0.1, 0.5])  # any order in, sorted out
    assert q.shape == (3, 4, 3) and (np.diff(q, axis=0) >= 0).all()


def residuals(n: int, horizon: int = 6, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Gaussian residuals whose spread grows with the step and the channel."""
    rng = np.random.default_rng(seed)
    spread = (1 + np.arange(horizon))[:, None] * (1 + np.arange(channels))[None]
    return rng.normal(size=(n, horizon, channels)) * spread


def test_calibration_quantiles_are_the_residuals_per_step_and_channel():
    cal = Calibration.from_residuals(residuals(4000), "linear")
    assert cal.span == 1 and cal.windows == 4000
    q = cal.quantiles([0.1, 0.5, 0.9])
    assert q.shape == (3, 6, 2) and (np.diff(q, axis=0) >= 0).all()
    spread = (1 + np.arange(6))[:, None] * (1 + np.arange(2))[None]
    np.testing.assert_allclose(q[2] / spread, NormalDist().inv_cdf(0.9), atol=0.1)
    np.testing.assert_allclose(q[1] / spread, 0, atol=0.1)
    assert (cal.quantiles([0.3]) >= cal.quantiles([0.25])).all()  # between grid levels


def test_few_windows_pool_neighbouring_steps():
    cal = Calibration.from_residuals(residuals(100), "linear", min_values=500)
    assert cal.span == 5  # 100 windows x 5 steps = 500 values a step
    many = Calibration.from_residuals(residuals(100), "linear", min_values=100)
    assert many.span == 1


def test_mapped_paths_take_the_calibrated_quantiles_and_keep_their_ranks():
    cal = Calibration.from_residuals(residuals(4000), "linear")
    rng = np.random.default_rng(3)
    paths = rng.normal(size=(2, 9, 6, 2)).cumsum(axis=2)  # (B, S, H, C)
    point = rng.normal(size=(2, 6, 2))
    mapped = cal.map_paths(paths, point)
    assert mapped.shape == paths.shape
    np.testing.assert_array_equal(np.argsort(mapped, axis=1), np.argsort(paths, axis=1))
    levels = (np.arange(9) + 0.5) / 9
    expected = point[:, None] + cal.quantiles(levels)[None]  # sorted values per step
    np.testing.assert_allclose(np.sort(mapped, axis=1), expected, rtol=1e-5, atol=1e-5)


def heteroscedastic(n: int, calm: float, seed: int = 0):
    """Contexts ``[n, 96, 2]`` of two regimes (spread ``calm`` or 1) and residuals whose
    spread follows their context's."""
    rng = np.random.default_rng(seed)
    spread = np.where(np.arange(n) % 2, 1.0, calm)[:, None, None]
    contexts = rng.normal(size=(n, 96, 2)) * spread
    return contexts, rng.normal(size=(n, 6, 2)) * spread


def test_scaled_quantiles_follow_each_context_spread():
    contexts, errors = heteroscedastic(4000, calm=0.5)
    scales = context_scale(contexts, 96)
    assert abs(scales[1::2].mean() - (1 + SCALE_FLOOR)) < 0.02
    scaled = Calibration.from_residuals(errors, "blend", scales=scales, scale_window=96)
    marginal = Calibration.from_residuals(errors, "blend")
    assert scaled.scale_window == 96 and marginal.scale_window == 0
    q = scaled.quantiles([0.1, 0.9], scale=scaled.scales(contexts))  # (Q, B, H, C)
    assert q.shape == (2, 4000, 6, 2) and (q[1] > q[0]).all()
    inside = (errors >= q[0]) & (errors <= q[1])
    # 80 % inside in each regime; the marginal bands cover calm windows nearly always and
    # volatile ones too rarely
    for regime in (slice(0, None, 2), slice(1, None, 2)):
        assert abs(inside[regime].mean() - 0.8) < 0.04  # the floor widens calm bands
    m = marginal.quantiles([0.1, 0.9])
    inside_m = (errors >= m[0]) & (errors <= m[1])
    assert inside_m[0::2].mean() > 0.93 and inside_m[1::2].mean() < 0.75
    # and the scaled bands score the better CRPS, which is how calibrate_model chooses
    assert validation_crps(scaled, errors, scales) < validation_crps(marginal, errors, scales)
    # a flat context keeps a band: the floor
    assert (context_scale(np.zeros((1, 96, 2)), 96) == SCALE_FLOOR).all()


def test_homoscedastic_residuals_keep_the_marginal_calibration_as_good():
    contexts, errors = heteroscedastic(4000, calm=1.0)
    scales = context_scale(contexts, 96)
    scaled = Calibration.from_residuals(errors, "blend", scales=scales, scale_window=96)
    marginal = Calibration.from_residuals(errors, "blend")
    gap = validation_crps(scaled, errors, scales) - validation_crps(marginal, errors, scales)
    assert abs(gap) < 0.01 * validation_crps(marginal, errors, scales)


def test_forward_crps_scores_the_later_half_with_a_fit_on_the_earlier():
    # the spread of the errors, and of their contexts, triples half-way through
    contexts, errors = heteroscedastic(2000, calm=1.0)
    spread = np.where(np.arange(2000) < 1000, 1.0, 3.0)[:, None, None]
    contexts, errors = contexts * spread, errors * spread
    scales = context_scale(contexts, 96)

    def fit(variant: str, part: slice) -> Calibration:
        if variant == "marginal":
            return Calibration.from_residuals(errors[part], "blend")
        return Calibration.from_residuals(errors[part], "blend", scales=scales[part],
                                          scale_window=96)

    forward = {v: forward_crps(lambda part, v=v: fit(v, part), errors, scales)
               for v in ("marginal", "scaled")}
    early_bands = fit("marginal", slice(None, 1000))
    assert forward["marginal"] == pytest.approx(
        validation_crps(early_bands, errors[1000:], scales[1000:]))
    # in sample, the marginal bands fit the mixture of both halves and look as good ...
    in_sample = {v: validation_crps(fit(v, slice(None)), errors, scales)
                 for v in ("marginal", "scaled")}
    assert in_sample["marginal"] < 1.1 * in_sample["scaled"]
    # ... forward, only the scaled ones keep up with the wider errors
    assert forward["scaled"] < 0.9 * forward["marginal"]
    # a single window is scored in sample
    one, one_scale = errors[:1], scales[:1]
    bands = Calibration.from_residuals(one, "blend")
    assert forward_crps(lambda part: Calibration.from_residuals(one[part], "blend"), one,
                        one_scale) == pytest.approx(validation_crps(bands, one, one_scale))


def test_scaled_paths_take_the_scaled_quantiles():
    contexts, errors = heteroscedastic(2000, calm=0.3)
    cal = Calibration.from_residuals(errors, "blend", scales=context_scale(contexts, 96),
                                     scale_window=96)
    rng = np.random.default_rng(3)
    paths = rng.normal(size=(2, 9, 6, 2))
    point = rng.normal(size=(2, 6, 2))
    scale = cal.scales(contexts[:2])
    mapped = cal.map_paths(paths, point, scale)
    levels = (np.arange(9) + 0.5) / 9
    expected = point[:, None] + cal.quantiles(levels, scale=scale).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(np.sort(mapped, axis=1), expected, rtol=1e-5, atol=1e-5)


def test_calibration_round_trip_and_a_damaged_file(tmp_path: Path):
    cal = Calibration.from_residuals(residuals(300), "blend", dataset="custom")
    cal.save(tmp_path)
    back = Calibration.load(tmp_path)
    assert (back.head, back.windows, back.span, back.dataset) == ("blend", 300, cal.span,
                                                                  "custom")
    assert back.scale_window == 0
    contexts, errors = heteroscedastic(300, calm=0.5)
    Calibration.from_residuals(errors, "blend", scales=context_scale(contexts, 96),
                               scale_window=96).save(tmp_path)
    assert Calibration.load(tmp_path).scale_window == 96
    np.testing.assert_allclose(back.levels, LEVELS)
    np.testing.assert_allclose(back.residuals, cal.residuals, atol=1e-6)
    (tmp_path / "data.json").write_text('{"calibration": {"head": "blend"}}')
    with pytest.raises(CheckpointError, match="timetok forecast calibrate"):
        Calibration.load(tmp_path)
    assert Calibration.load(tmp_path / "elsewhere", required=False) is None


@pytest.mark.parametrize(("levels", "fragment"), [
    ([0.0, 0.5], "lie in \\(0, 1\\)"), ([1.2], "lie in \\(0, 1\\)"),
    ([float("nan")], "lie in \\(0, 1\\)"), ([0.5, 0.5], "each level once"),
    ([], "at least one level"),
])
def test_bad_levels(levels, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_levels(levels)


@pytest.fixture
def calibrated(tiny_forecaster, tmp_path) -> Path:
    """A copy of the tiny forecaster, calibrated on its CSV's validation split."""
    from timetok.core.data.series import load_splits

    folder = Path(shutil.copytree(tiny_forecaster.path, tmp_path / "model"))
    calibrate_folder(folder, load_splits("custom", 32, data_path=tiny_forecaster.csv))
    return folder


def series(tiny_forecaster) -> np.ndarray:
    return np.loadtxt(tiny_forecaster.csv, delimiter=",", skiprows=1, usecols=(1, 2))


def test_predict_quantiles_around_the_point_forecast(tiny_forecaster, calibrated):
    from timetok import Forecaster

    forecaster = Forecaster.from_pretrained(calibrated)
    context = series(tiny_forecaster)
    q = forecaster.predict_quantiles(context, (0.9, 0.1, 0.5))
    assert q.shape == (3, 8, 2) and (np.diff(q, axis=0) >= 0).all()
    point = forecaster.predict(context)
    cal = forecaster.calibration
    # the median is the point forecast plus the residuals' median (in units of the
    # context's spread, where the calibration chose them), on the data's scale
    standardised = forecaster.scaler.transform(context)[None]
    median = cal.quantiles([0.5], scale=cal.scales(standardised))[0, 0]
    np.testing.assert_allclose(q[1] - point, median * forecaster.scaler.std,
                               rtol=1e-4, atol=1e-4)
    assert forecaster.predict_quantiles(context[None].repeat(3, 0)).shape == (3, 3, 8, 2)
    assert forecaster.predict_quantiles(context, horizon=5).shape == (3, 5, 2)
    with pytest.raises(ConfigError, match="calibrated range"):
        forecaster.predict_quantiles(context, (0.001, 0.5))


def test_calibrated_sample_paths_take_the_calibrated_quantiles(tiny_forecaster, calibrated):
    from timetok import Forecaster

    forecaster = Forecaster.from_pretrained(calibrated)
    context = series(tiny_forecaster)
    paths = forecaster.predict(context, num_samples=21)  # rank 10 of 21 sits at level 0.5
    median = forecaster.predict_quantiles(context, (0.5,))[0]
    np.testing.assert_allclose(np.sort(paths, axis=0)[10], median, rtol=1e-4, atol=1e-4)
    raw = forecaster.predict(context, num_samples=21, calibrated=False)
    assert raw.shape == paths.shape
    # beyond the calibration's reach: the language model's own paths, or a refusal
    assert forecaster.predict(context, horizon=12, num_samples=3).shape == (3, 12, 2)
    with pytest.raises(ConfigError, match="calibration reaches 8 steps"):
        forecaster.predict(context, horizon=12, num_samples=3, calibrated=True)


def test_a_folder_without_calibration_loads_and_says_how_to_calibrate(tiny_forecaster):
    from timetok import Forecaster

    forecaster = Forecaster.from_pretrained(tiny_forecaster.path)
    context = series(tiny_forecaster)
    assert forecaster.predict(context).shape == (8, 2)
    with pytest.raises(ConfigError, match="timetok forecast calibrate"):
        forecaster.predict_quantiles(context)
    with pytest.raises(ConfigError, match="timetok forecast calibrate"):
        forecaster.predict(context, num_samples=3, calibrated=True)


def test_a_calibration_of_another_horizon_is_refused(tiny_forecaster, calibrated):
    from timetok import Forecaster

    Calibration.from_residuals(residuals(300, horizon=4), "linear").save(calibrated)
    with pytest.raises(CheckpointError, match="reaches 4 steps, the model 8"):
        Forecaster.from_pretrained(calibrated)


def test_evaluate_probabilistic_reports_every_method(tiny_forecaster, calibrated):
    from timetok import Forecaster
    from timetok.core.data.series import load_splits
    from timetok.forecast.evaluate import evaluate_probabilistic

    data = load_splits("custom", 32, data_path=tiny_forecaster.csv)
    report = evaluate_probabilistic(Forecaster.from_pretrained(calibrated), data, stride=4,
                                    samples=4, sample_stride=2)
    assert report["calibration"] == "the model folder's"
    assert report["baseline"] in ("dlinear", "rlinear")
    assert set(report["methods"]) == {"timetok-calibrated", "residual-quantiles",
                                      "timetok-sampled", "timetok-sampled-calibrated"}
    for metrics in report["methods"].values():
        assert metrics["crps"] > 0 and metrics["wql"] > 0 and metrics["windows"] > 0
        assert 0 <= metrics["coverage50"] <= metrics["coverage80"] <= 1
    uncalibrated = evaluate_probabilistic(Forecaster.from_pretrained(tiny_forecaster.path),
                                          data, stride=4, samples=0)
    assert uncalibrated["calibration"] == "fitted on the validation split"
    assert set(uncalibrated["methods"]) == {"timetok-calibrated", "residual-quantiles"}
    # a calibration handed in replaces the folder's: a wider one covers more
    wide = Calibration(report["head"], LEVELS, Calibration.load(calibrated).residuals * 3, 10)
    given = evaluate_probabilistic(Forecaster.from_pretrained(calibrated), data, stride=4,
                                   samples=0, calibration=wide)
    assert given["calibration"] == "given"
    assert (given["methods"]["timetok-calibrated"]["coverage80"]
            >= report["methods"]["timetok-calibrated"]["coverage80"])
    assert given["methods"]["residual-quantiles"] == report["methods"]["residual-quantiles"]
