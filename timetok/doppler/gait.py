"""A walking person's body as radar point scatterers, after Boulic, Magnenat-Thalmann &
Thalmann's (1990) global walking model.

With leg length ``H_leg`` (thigh + shank) and walking speed ``v``, the relative velocity is
``RV = v / H_leg``, a gait cycle is ``1.346 * sqrt(RV) * H_leg`` metres long (so it lasts
that length over ``v`` seconds), and over the normalised cycle (0 = right heel strike) the
model gives body translations (vertical, lateral, forward/backward), pelvis rotation, list
and tilt, hip, knee and ankle flexion, thorax rotation, shoulder flexion (scaled here by a
per-user arm-swing factor) and elbow flexion; keyframe curves are interpolated periodically
(monotone cubic). The left side runs half a cycle after the right. Segment lengths are
fractions of the height (torso 0.288, thigh 0.245, shank 0.246, upper arm 0.188, forearm
0.152, foot 0.143, head 0.130, hip width 0.191, shoulder width 0.259), perturbed per user.

Each body segment carries three point scatterers along its length, with radar cross-sections
proportional to the segment's side area (torso largest); the weights sum to 1
(:func:`scatterer_trajectories`). The radar that sees them is :mod:`timetok.doppler.simulator`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from timetok.core.errors import ConfigError

FRACTIONS = {"torso": 0.288, "thigh": 0.245, "shank": 0.246, "upper_arm": 0.188,
             "forearm": 0.152, "foot": 0.143, "head": 0.130, "hip_width": 0.191,
             "shoulder_width": 0.259}
"""Segment lengths (widths across the hips and shoulders) as fractions of the height."""
_WIDTHS = {"head": 0.11, "torso": 0.17, "upper_arm": 0.055, "forearm": 0.045, "thigh": 0.085,
           "shank": 0.06, "foot": 0.055}
"""Segment thicknesses as fractions of the height: RCS is taken proportional to length x width."""
_LIMBS = ("upper_arm", "forearm", "thigh", "shank", "foot")
_ALONG = np.array([1 / 6, 1 / 2, 5 / 6])  # where a segment's three scatterers sit
SCATTERER_NAMES = (
    "head",
    *(f"torso:{i}" for i in range(3)),
    *(f"{side}_{limb}:{i}" for side in ("right", "left") for limb in _LIMBS for i in range(3)),
)
"""The scatterer behind each column ``k`` of :func:`scatterer_trajectories`' output."""
_KINDS = tuple(name.split(":")[0].removeprefix("right_").removeprefix("left_")
               for name in SCATTERER_NAMES)  # the segment kind of each scatterer
_RV_RANGE = (0.5, 3.0)  # Boulic's walking gaits (b) and (c)
USER_STREAM = 1  # the random stream users are drawn from


@dataclass(frozen=True)
class UserParams:
    """One walker: height, speed, arm-swing factor (1 = Boulic's amplitude), length factors
    of the legs, arms and torso (1 = the standard fractions) and gait asymmetry (the left leg's
    hip and knee flexion scaled by ``1 + asymmetry``, the right's by ``1 - asymmetry``)."""

    height_m: float
    speed_mps: float
    arm_swing: float = 1.0
    leg_scale: float = 1.0
    arm_scale: float = 1.0
    torso_scale: float = 1.0
    asymmetry: float = 0.0

    def __post_init__(self) -> None:
        for name in ("height_m", "speed_mps", "leg_scale", "arm_scale", "torso_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive; pass a "
                                  "value above 0")
        if self.arm_swing < 0 or not abs(self.asymmetry) < 0.5:
            raise ConfigError(f"arm_swing={self.arm_swing}, asymmetry={self.asymmetry} out of "
                              "range; pass arm_swing >= 0 and asymmetry within (-0.5, 0.5)")


def draw_users(n_users: int, seed: int = 0) -> list[UserParams]:
    """``n_users`` walkers with small differences; user ``i`` depends only on ``(seed, i)``."""
    if n_users < 1:
        raise ConfigError(f"n_users={n_users} must be at least 1; pass n_users >= 1")
    users = []
    for i in range(n_users):
        rng = np.random.default_rng([seed, USER_STREAM, i])
        height, speed, arm, leg, arms, torso, asym = rng.standard_normal(7)
        users.append(UserParams(
            height_m=float(np.clip(1.72 + 0.08 * height, 1.50, 1.95)),
            speed_mps=float(np.clip(1.25 + 0.15 * speed, 0.9, 1.6)),
            arm_swing=float(np.clip(1.0 + 0.15 * arm, 0.6, 1.4)),
            leg_scale=float(np.clip(1.0 + 0.03 * leg, 0.92, 1.08)),
            arm_scale=float(np.clip(1.0 + 0.03 * arms, 0.92, 1.08)),
            torso_scale=float(np.clip(1.0 + 0.03 * torso, 0.92, 1.08)),
            asymmetry=float(np.clip(0.03 * asym, -0.08, 0.08)),
        ))
    return users


def segment_lengths(user: UserParams) -> dict[str, float]:
    """Segment lengths and widths in metres: the fractions of :data:`FRACTIONS` times the
    height, times the user's leg (thigh, shank, foot), arm or torso factor."""
    scale = {"thigh": user.leg_scale, "shank": user.leg_scale, "foot": user.leg_scale,
             "upper_arm": user.arm_scale, "forearm": user.arm_scale,
             "torso": user.torso_scale}
    return {name: f * user.height_m * scale.get(name, 1.0) for name, f in FRACTIONS.items()}


def _relative_velocity(user: UserParams) -> tuple[float, float]:
    """``(H_leg, RV)``, refusing speeds outside Boulic's walking range."""
    lengths = segment_lengths(user)
    leg = lengths["thigh"] + lengths["shank"]
    rv = user.speed_mps / leg
    if not _RV_RANGE[0] <= rv <= _RV_RANGE[1]:
        raise ConfigError(
            f"speed_mps={user.speed_mps:.3g} is {rv:.2f} leg lengths per second, outside the "
            f"walking model's {_RV_RANGE[0]}-{_RV_RANGE[1]}; pass a speed between "
            f"{_RV_RANGE[0] * leg:.2f} and {_RV_RANGE[1] * leg:.2f} m/s")
    return leg, rv


def gait_cycle_s(user: UserParams) -> float:
    """Duration of one gait cycle (two steps): cycle length ``1.346 sqrt(RV) H_leg`` over v."""
    leg, rv = _relative_velocity(user)
    return 1.346 * math.sqrt(rv) * leg / user.speed_mps


def _periodic_curve(xs: list[float], ys: list[float], u: np.ndarray) -> np.ndarray:
    """Monotone cubic (PCHIP slopes) through keyframes ``(x, y)``, period 1, evaluated at u."""
    x = np.mod(np.asarray(xs, float), 1.0)
    order = np.argsort(x, kind="stable")
    x, y = x[order], np.asarray(ys, float)[order]
    keep = np.append(np.diff(x) > 1e-9, x[-1] - x[0] < 1 - 1e-9)  # merge coincident keys
    x, y = x[keep], y[keep]
    h = np.diff(x, append=x[0] + 1.0)  # interval i runs from x[i] to the next key
    delta = (np.roll(y, -1) - y) / h
    h_prev, d_prev = np.roll(h, 1), np.roll(delta, 1)
    w1, w2 = 2 * h + h_prev, h + 2 * h_prev
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / d_prev + w2 / delta)
    slope = np.where(d_prev * delta > 0, harmonic, 0.0)  # flat at extrema: no overshoot
    u = np.mod(u, 1.0)
    i = np.searchsorted(x, u, side="right") - 1  # -1: before the first key, i.e. the last
    s = (u - x[i] + (i < 0)) / h[i]
    j = (i + 1) % len(x)
    return ((2 * s**3 - 3 * s**2 + 1) * y[i] + (s**3 - 2 * s**2 + s) * h[i] * slope[i]
            + (-2 * s**3 + 3 * s**2) * y[j] + (s**3 - s**2) * h[i] * slope[j])


def _keyframes(rv: float, support: float) -> dict[str, tuple[list[float], list[float]]]:
    """Boulic's keyframes ``(phase, degrees)`` at relative velocity ``rv``: gait (b) below
    RV 1.3 (``b`` ramps the elbow in from RV 0.5), gait (c) above (``c`` ramps 1.3 -> 3)."""
    b = min(max((rv - 0.5) / 0.8, 0.0), 1.0)
    c = min(max((rv - 1.3) / 1.7, 0.0), 1.0)
    return {
        "hip": ([-0.1 + 0.2 * c, 0.5, 0.9], [25 + 5 * c, -15, 25 + 6 * c]),
        "knee": ([0.17 - 0.05 * c, 0.4, 0.75 - 0.05 * c, 1 - 0.03 * c],
                 [3 + 22 * c, 3, 70 - 5 * c, 3 + 3 * c]),
        "ankle": ([0, 0.08, 0.5 - 0.1 * c, support, 0.85],
                  [-3 + 5 * c, -18 + 4 * c, 8 - 3 * c, -20 - 8 * c, -3 + 5 * c]),
        "elbow": ([0.05, 0.5 + 0.01 * b + 0.04 * c, 0.9 - 0.1 * c],
                  [6 + 8 * b - 6 * c, 20 + 24 * b + 26 * c, 8 + 9 * b - 6 * c]),
        "thorax": ([0.1, 0.4, 0.6, 0.9], [4 / 3 * rv, -1.5 * rv, -4 / 3 * rv, 1.5 * rv]),
        "list": ([0, 0.15, 0.5, 0.65], [0, -2, 0, 2]),
    }


def _rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[T, 3, 3]`` about x (0), y (1) or z (2), right-handed."""
    a = np.radians(degrees)
    cos, sin = np.cos(a), np.sin(a)
    m = np.zeros((*a.shape, 3, 3))
    p, q = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., p, p] = m[..., q, q] = cos
    m[..., p, q], m[..., q, p] = -sin, sin
    return m


def _turn(rot: np.ndarray, vec: np.ndarray) -> np.ndarray:
    return np.einsum("tij,tj->ti", rot, vec)


def _pitch(degrees: np.ndarray, vec: tuple[float, float, float]) -> np.ndarray:
    """``vec`` turned in the sagittal plane: positive angles swing a downward vector forward
    and lift a forward one (flexion of hip and shoulder, dorsiflexion of the ankle)."""
    return _turn(_rotation(1, -np.asarray(degrees)), np.broadcast_to(vec, (*np.shape(degrees), 3)))


def body_points(user: UserParams, t: np.ndarray, phase0: float) -> np.ndarray:
    """Scatterer positions ``[T, K, 3]`` in the walker's frame: x forward (with the walked
    distance ``v t``), y to the left, z up from the ground."""
    n = segment_lengths(user)
    leg, rv = _relative_velocity(user)
    cycle = gait_cycle_s(user)
    support = 0.752 - 0.143 / cycle  # relative duration of support
    keys = _keyframes(rv, support)
    u = phase0 + t / cycle  # gait phase of the right side; the left runs half a cycle later
    # The spine origin's translations (metres, as published), then the pelvis's rotation
    # (turning the forward leg's hip forward) and list (amplitude 0.01 RV, in radians), and
    # the thorax's counter-rotation and forward lean (degrees).
    origin = np.stack([
        user.speed_mps * t - 0.021 * np.sin(2 * np.pi * (2 * u + 2 * (0.625 - support))),
        -0.032 * np.sin(2 * np.pi * (u - 0.1)),
        leg + 0.015 * rv * (np.sin(2 * np.pi * (2 * u - 0.35)) - 1),
    ], axis=-1)
    pelvis = _rotation(2, 4 * rv * np.cos(2 * np.pi * u)) @ _rotation(
        0, np.degrees(0.01 * rv) * _periodic_curve(*keys["list"], u))
    lean = 2.0 * (1 - np.sin(2 * np.pi * (2 * u - 0.1)))  # forward, 0 to 4 degrees
    thorax = _rotation(2, -_periodic_curve(*keys["thorax"], u)) @ _rotation(1, lean)
    up = thorax[..., 2]  # the trunk's axis
    neck = origin + n["torso"] * up
    head = neck + n["head"] / 2 * up
    segments: dict[str, tuple[np.ndarray, np.ndarray]] = {"torso": (origin, neck)}
    for side, sign, shift, gain in (("right", -1, 0.0, 1 - user.asymmetry),
                                    ("left", 1, 0.5, 1 + user.asymmetry)):
        phase = u + shift
        hip_flex = gain * _periodic_curve(*keys["hip"], phase)
        knee_flex = gain * _periodic_curve(*keys["knee"], phase)
        ankle_flex = _periodic_curve(*keys["ankle"], phase)
        hip = origin + sign * n["hip_width"] / 2 * pelvis[..., 1]
        knee = hip + _turn(pelvis, _pitch(hip_flex, (0, 0, -n["thigh"])))
        ankle = knee + _turn(pelvis, _pitch(hip_flex - knee_flex, (0, 0, -n["shank"])))
        foot = _turn(pelvis, _pitch(hip_flex - knee_flex + ankle_flex, (n["foot"], 0, 0)))
        swing = 9.88 * rv * user.arm_swing
        shoulder_flex = 3 - swing / 2 - swing * np.cos(2 * np.pi * phase)
        elbow_flex = _periodic_curve(*keys["elbow"], phase)
        shoulder = neck + sign * n["shoulder_width"] / 2 * thorax[..., 1]
        elbow = shoulder + _turn(thorax, _pitch(shoulder_flex, (0, 0, -n["upper_arm"])))
        wrist = elbow + _turn(thorax, _pitch(shoulder_flex + elbow_flex, (0, 0, -n["forearm"])))
        segments.update({
            f"{side}_upper_arm": (shoulder, elbow), f"{side}_forearm": (elbow, wrist),
            f"{side}_thigh": (hip, knee), f"{side}_shank": (knee, ankle),
            f"{side}_foot": (ankle - 0.25 * foot, ankle + 0.75 * foot),  # heel to toe
        })
    points = [head[:, None]]
    for start, end in segments.values():
        points.append(start[:, None] + _ALONG[None, :, None] * (end - start)[:, None])
    return np.concatenate(points, axis=1)


def _weights(user: UserParams) -> np.ndarray:
    """RCS share of each scatterer: its segment's length x width over the segment's points."""
    n = segment_lengths(user)
    share = {kind: n[kind] * _WIDTHS[kind] / (1 if kind == "head" else len(_ALONG))
             for kind in _WIDTHS}
    w = np.array([share[kind] for kind in _KINDS])
    return w / w.sum()


def scatterer_trajectories(
    user: UserParams, times: np.ndarray, phase0: float = 0.0, *, aspect_deg: float = 0.0,
    range_m: float = 7.0, approaching: bool = True, radar_height_m: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[T, K, 3]`` (metres, the radar at the origin; x along the ground towards
    the walker at ``times == 0``, z up) and RCS weights ``[K]`` (summing to 1) of the
    scatterers named by :data:`SCATTERER_NAMES`.

    At ``times == 0`` the walker's pelvis is ``range_m`` away over the ground at gait phase
    ``phase0`` (0 = right heel strike, in cycles); they walk at ``user.speed_mps`` along a
    line ``aspect_deg`` off the line of sight, towards the radar when ``approaching``.
    """
    t = np.asarray(times, dtype=float)
    body = body_points(user, t, phase0)
    theta = math.radians(aspect_deg)
    forward = np.array([(-1 if approaching else 1) * math.cos(theta), math.sin(theta), 0.0])
    left = np.cross([0.0, 0.0, 1.0], forward)
    offset = np.array([range_m, 0.0, -radar_height_m])
    world = offset + body[..., :1] * forward + body[..., 1:2] * left
    world[..., 2] += body[..., 2]
    return world, _weights(user)
