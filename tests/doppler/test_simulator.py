"""The micro-Doppler walking simulator: determinism, physics of the images and the kinematics,
refused settings and the dataset folder it writes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from timetok.core.errors import ConfigError
from timetok.doppler import simulator as doppler_sim
from timetok.doppler.gait import FRACTIONS
from timetok.doppler.simulator import (
    SCATTERER_NAMES,
    RadarConfig,
    UserParams,
    doppler_axis,
    draw_users,
    gait_cycle_s,
    scatterer_trajectories,
    segment_lengths,
    simulate_dataset,
    simulate_user,
    time_axis,
)

SMALL = RadarConfig(duration_s=1.2, size=32)
CLEAN = RadarConfig(aspect_deg=(0.0, 0.0), range_m=(7.0, 7.0), snr_db=None, speed_jitter=0.0)
WALKER = UserParams(height_m=1.72, speed_mps=1.3)


def _recording_times(radar: RadarConfig) -> np.ndarray:
    """The pulse times simulate_user uses: centred on the middle of the recording."""
    return (np.arange(radar.samples) - radar.samples / 2) / radar.prf_hz


# --- determinism --------------------------------------------------------------------------


def test_same_seed_same_images_other_seed_other_images():
    user = draw_users(1, seed=0)[0]
    first = simulate_user(user, 2, SMALL, seed=3)
    assert first.shape == (2, 32, 32) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() == 1.0
    assert np.array_equal(first, simulate_user(user, 2, SMALL, seed=3))
    assert not np.allclose(first, simulate_user(user, 2, SMALL, seed=4))
    assert not np.allclose(first[0], first[1])  # images of one user differ too


def test_images_depend_only_on_seed_user_and_index():
    users = draw_users(3, seed=5)
    assert draw_users(2, seed=5) == users[:2]
    assert draw_users(3, seed=6) != users
    more = simulate_user(users[0], 3, SMALL, seed=1, user_index=0)
    assert np.array_equal(simulate_user(users[0], 2, SMALL, seed=1, user_index=0), more[:2])
    other = simulate_user(users[1], 2, SMALL, seed=1, user_index=1)
    assert not np.allclose(more[:2], other)


def test_users_differ_a_little_and_serialise():
    users = draw_users(31, seed=0)
    heights = np.array([u.height_m for u in users])
    speeds = np.array([u.speed_mps for u in users])
    assert 1.5 <= heights.min() and heights.max() <= 1.95 and 0.03 < heights.std() < 0.15
    assert 0.9 <= speeds.min() and speeds.max() <= 1.6
    assert len({u.height_m for u in users}) == 31
    assert UserParams(**json.loads(json.dumps(asdict(users[0])))) == users[0]


# --- physics -----------------------------------------------------------------------------


@pytest.mark.parametrize("approaching", [True, False])
def test_torso_line_sits_at_two_v_over_lambda(approaching):
    radar = replace(CLEAN, approaching=approaching)
    image = simulate_user(WALKER, 1, radar)[0]
    hz = doppler_axis(radar)
    strongest = np.median(hz[np.argmax(image, axis=0)])  # the torso, column by column
    expected = 2 * WALKER.speed_mps / radar.wavelength_m * (1 if approaching else -1)
    assert abs(strongest - expected) <= 2 * radar.prf_hz / radar.size


def test_highest_doppler_is_the_fastest_limb():
    image = simulate_user(WALKER, 1, CLEAN)[0]
    hz = doppler_axis(CLEAN)
    top = hz[np.argmax(image.max(axis=1) > 0.4)]  # the highest row within 30 dB of the peak
    closing = 0.0
    for phase0 in np.linspace(0, 1, 4, endpoint=False):
        points, _ = scatterer_trajectories(WALKER, _recording_times(CLEAN), phase0, range_m=7.0)
        ranges = np.linalg.norm(points, axis=-1)
        closing = max(closing, float((-np.diff(ranges, axis=0)).max() * CLEAN.prf_hz))
    assert abs(top - 2 * closing / CLEAN.wavelength_m) <= 3 * CLEAN.prf_hz / CLEAN.size
    assert top < CLEAN.prf_hz / 2


def test_fastest_limb_is_a_foot_at_a_physiological_speed():
    # Boulic's swing gives the ankle about 3.3 v and the toe about 4 v at 1.3 m/s.
    t = np.arange(0.0, gait_cycle_s(WALKER), 1e-3)
    points, _ = scatterer_trajectories(WALKER, t)
    speeds = np.linalg.norm(np.diff(points, axis=0), axis=-1) / 1e-3
    fastest = int(speeds.max(axis=0).argmax())
    assert "foot" in SCATTERER_NAMES[fastest]
    assert 2.5 < speeds.max() / WALKER.speed_mps < 4.5
    torso = SCATTERER_NAMES.index("torso:1")
    assert speeds[:, torso].mean() == pytest.approx(WALKER.speed_mps, rel=0.02)


def test_cycle_duration_follows_boulic_and_the_motion_repeats():
    user = UserParams(height_m=1.85, speed_mps=1.1, leg_scale=1.04)
    leg = (0.245 + 0.246) * 1.85 * 1.04
    rv = 1.1 / leg
    cycle = gait_cycle_s(user)
    assert cycle == pytest.approx(1.346 * math.sqrt(rv) * leg / 1.1)
    t = np.linspace(0.0, 1.0, 50)
    now, _ = scatterer_trajectories(user, t, phase0=0.3, aspect_deg=20.0)
    later, _ = scatterer_trajectories(user, t + cycle, phase0=0.3, aspect_deg=20.0)
    step = 1.1 * cycle * np.array([-math.cos(math.radians(20)), math.sin(math.radians(20)), 0])
    np.testing.assert_allclose(later - now, np.broadcast_to(step, now.shape), atol=1e-9)
    half, _ = scatterer_trajectories(user, t + cycle / 2, phase0=0.3, aspect_deg=20.0)
    assert not np.allclose(half - now, step / 2, atol=1e-3)


def test_segment_lengths_follow_the_fractions_and_stay_rigid():
    user = UserParams(height_m=1.8, speed_mps=1.2, leg_scale=1.05, arm_scale=0.96)
    lengths = segment_lengths(user)
    assert lengths["torso"] == pytest.approx(0.288 * 1.8)
    assert lengths["thigh"] == pytest.approx(0.245 * 1.8 * 1.05)
    assert lengths["shank"] == pytest.approx(0.246 * 1.8 * 1.05)
    assert lengths["upper_arm"] == pytest.approx(0.188 * 1.8 * 0.96)
    assert lengths["forearm"] == pytest.approx(0.152 * 1.8 * 0.96)
    assert set(lengths) == set(FRACTIONS)
    points, weights = scatterer_trajectories(user, np.linspace(0.0, 2.0, 200))
    assert points.shape == (200, len(SCATTERER_NAMES), 3) and weights.sum() == pytest.approx(1)
    assert weights.argmax() == SCATTERER_NAMES.index("torso:0")
    for segment in ("torso", "left_thigh", "right_shank", "left_upper_arm", "right_forearm",
                    "left_foot"):
        ends = [SCATTERER_NAMES.index(f"{segment}:{i}") for i in (0, 2)]
        span = np.linalg.norm(points[:, ends[1]] - points[:, ends[0]], axis=-1)
        kind = segment.split("_", 1)[-1]
        np.testing.assert_allclose(span, 2 / 3 * lengths[kind], rtol=1e-9)


def test_axes_map_rows_and_columns():
    hz = doppler_axis(CLEAN)
    assert hz.shape == (128,) and np.all(np.diff(hz) < 0)
    assert hz[CLEAN.size // 2 - 1] == 0.0 and hz[0] == pytest.approx(1250 - 19.53125)
    small = doppler_axis(SMALL)  # four FFT bins per row
    step = SMALL.prf_hz / 32
    assert small.shape == (32,) and np.diff(small) == pytest.approx(np.full(31, -step))
    assert abs(small[32 // 2 - 1]) < step / 2
    seconds = time_axis(SMALL)
    assert seconds.shape == (32,) and 0 < seconds[0] < seconds[-1] < SMALL.duration_s


# --- refused settings --------------------------------------------------------------------


def test_aliasing_prf_is_refused():
    with pytest.raises(ConfigError, match=r"prf_hz=1000 aliases .* pass prf_hz >= \d+"):
        simulate_user(WALKER, 1, RadarConfig(prf_hz=1000.0))


@pytest.mark.parametrize("change", [{"size": 8}, {"duration_s": 0.0}, {"prf_hz": -1.0},
                                    {"window_s": 3.0}, {"aspect_deg": (10.0, 5.0)}])
def test_impossible_radar_settings_are_refused(change):
    with pytest.raises(ConfigError):
        RadarConfig(**change)


def test_impossible_users_are_refused():
    with pytest.raises(ConfigError, match="n_users=0"):
        draw_users(0)
    with pytest.raises(ConfigError, match="speed_mps"):
        simulate_user(UserParams(height_m=1.7, speed_mps=3.5), 1)


# --- the dataset folder ------------------------------------------------------------------


def test_dataset_layout_users_json_and_no_leftovers(tmp_path: Path):
    out = simulate_dataset(tmp_path / "sim", n_users=2, per_user=2, radar=SMALL, seed=1,
                           progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"]
    assert sorted(p.name for p in out.iterdir()) == ["user00", "user01", "users.json"]
    assert sorted(p.name for p in (out / "user01").iterdir()) == [
        "000.npy", "000.png", "001.npy", "001.png"]
    info = json.loads((out / "users.json").read_text())
    users = draw_users(2, seed=1)
    assert info["seed"] == 1 and info["radar"]["size"] == 32
    assert [UserParams(**info["users"][name]) for name in ("user00", "user01")] == users
    assert info["axes"]["doppler_hz"] == doppler_axis(SMALL).tolist()
    assert len(info["axes"]["time_s"]) == 32
    for u, user in enumerate(users):
        expected = simulate_user(user, 2, SMALL, seed=1, user_index=u)
        for i in range(2):
            image = np.load(out / f"user{u:02d}" / f"{i:03d}.npy")
            assert np.array_equal(image, expected[i])
            picture = np.asarray(Image.open(out / f"user{u:02d}" / f"{i:03d}.png"))
            assert picture.dtype == np.uint8 and picture.shape == (32, 32)
            assert np.array_equal(picture, np.round(image * 255).astype(np.uint8))


def test_dataset_from_worker_processes_is_the_same(tmp_path: Path):
    serial = simulate_dataset(tmp_path / "serial", n_users=3, per_user=2, radar=SMALL, seed=2,
                              progress=False)
    parallel = simulate_dataset(tmp_path / "parallel", n_users=3, per_user=2, radar=SMALL,
                                seed=2, progress=True, workers=2)
    files = sorted(p.relative_to(serial) for p in serial.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(parallel) for p in parallel.rglob("*") if p.is_file())
    for name in files:
        assert (serial / name).read_bytes() == (parallel / name).read_bytes(), name
    with pytest.raises(ConfigError, match="workers >= 1"):
        simulate_dataset(tmp_path / "none", n_users=1, per_user=1, radar=SMALL, workers=0)


def test_dataset_refuses_a_full_folder_unless_overwrite(tmp_path: Path):
    out = tmp_path / "sim"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="overwrite=True"):
        simulate_dataset(out, n_users=1, per_user=1, radar=SMALL, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    simulate_dataset(out, n_users=1, per_user=1, radar=SMALL, progress=True, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["user00", "users.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"]


def test_interrupted_or_refused_dataset_leaves_nothing(tmp_path: Path, monkeypatch):
    calls = []

    def interrupted(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return simulate_user(*args, **kwargs)

    monkeypatch.setattr(doppler_sim, "simulate_user", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(tmp_path / "sim", n_users=2, per_user=1, radar=SMALL, progress=False)
    with pytest.raises(ConfigError, match="aliases"):
        simulate_dataset(tmp_path / "sim", n_users=2, per_user=1,
                         radar=replace(SMALL, prf_hz=1000.0), progress=False)
    assert list(tmp_path.iterdir()) == []
