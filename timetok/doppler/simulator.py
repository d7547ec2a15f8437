"""Simulated radar micro-Doppler spectrograms of walking people, one folder of images per user.

The walkers are :mod:`timetok.doppler.gait`'s: Boulic et al.'s (1990) walking model, three
point scatterers per body segment. Each walker approaches (or recedes from) a monostatic
radar at the origin along a line at an aspect angle to the line of sight; the baseband
return is ``s(t) = sum_k sqrt(w_k) exp(-4j pi R_k(t) / lambda)`` plus complex white
Gaussian noise at a per-image SNR (signal power over noise power per sample).

Image axes (``size x size`` float32 in [0, 1], ``10 log10`` power clipped ``dynamic_range_db``
below the image maximum): rows are Doppler frequency, the most positive at the top (an
approaching body is positive), ``prf_hz / size`` Hz per row, zero Doppler within row
``size // 2 - 1`` (:func:`doppler_axis` gives each row's centre); columns are Hann-windowed
STFT frames spread evenly over the recording, left to right (:func:`time_axis` gives each
one's centre).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from timetok.core.errors import ConfigError
from timetok.core.utils import atomic_folder, available_memory
from timetok.doppler.gait import (
    SCATTERER_NAMES,
    UserParams,
    body_points,
    draw_users,
    gait_cycle_s,
    scatterer_trajectories,
    segment_lengths,
)

__all__ = [
    "SCATTERER_NAMES",
    "RadarConfig",
    "UserParams",
    "doppler_axis",
    "draw_users",
    "gait_cycle_s",
    "scatterer_trajectories",
    "segment_lengths",
    "simulate_dataset",
    "simulate_user",
    "time_axis",
]

LIGHT_SPEED = 299_792_458.0
_IMAGE_STREAM = 2  # the random stream of images (users draw from gait's)


@dataclass(frozen=True)
class RadarConfig:
    """The radar, the image and the per-image jitter ranges (each drawn uniformly).

    24 GHz (lambda 12.5 mm) is the usual short-range micro-Doppler band; a 2.5 kHz PRF shows
    +-1250 Hz = +-7.8 m/s unaliased, above the fastest foot of any drawn walker (6.4 m/s);
    2.5 s cover two gait cycles or more; a 51.2 ms window (128 pulses) resolves 0.12 m/s while
    a swinging foot's Doppler moves little within it; 50 dB of dynamic range keep the limbs
    and some of the noise floor. ``snr_db=None``: no noise.
    """

    carrier_hz: float = 24e9
    prf_hz: float = 2500.0
    duration_s: float = 2.5
    window_s: float = 0.0512
    size: int = 128
    dynamic_range_db: float = 50.0
    radar_height_m: float = 1.0
    approaching: bool = True
    aspect_deg: tuple[float, float] = (0.0, 30.0)
    range_m: tuple[float, float] = (5.0, 10.0)
    snr_db: tuple[float, float] | None = (10.0, 25.0)
    speed_jitter: float = 0.03

    def __post_init__(self) -> None:
        positive = ("carrier_hz", "prf_hz", "duration_s", "window_s", "dynamic_range_db")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive; "
                                  f"pass a value above 0")
        if self.size < 16:
            raise ConfigError(f"size={self.size} is too small; pass size >= 16 (128 default)")
        if self.window_samples > self.samples:
            raise ConfigError(f"window_s={self.window_s} is longer than duration_s="
                              f"{self.duration_s}; pass a shorter window or a longer duration")
        if self.window_samples < 8:
            raise ConfigError(f"a PRF of {self.prf_hz:g} Hz puts {self.window_samples} pulses "
                              f"in each {self.window_s * 1e3:g} ms STFT window, fewer than the "
                              "8 a spectrogram column needs; pass prf_hz >= "
                              f"{math.ceil(7.5 / self.window_s)}")
        spans = {"aspect_deg": self.aspect_deg, "range_m": self.range_m, "snr_db": self.snr_db}
        for name, span in spans.items():
            if span is not None and not (len(span) == 2 and span[0] <= span[1]):
                raise ConfigError(f"{name}={span} is not a range; pass (low, high) with "
                                  "low <= high")
        if not (0 <= self.aspect_deg[0] and self.aspect_deg[1] < 90):
            raise ConfigError(f"aspect_deg={self.aspect_deg} leaves [0, 90) degrees; pass "
                              "angles off the line of sight such as (0, 30)")
        if not self.range_m[0] > 0:
            raise ConfigError(f"range_m={self.range_m} includes non-positive distances; pass "
                              "metres above 0 such as (5, 10)")
        if not 0 <= self.speed_jitter < 0.5:
            raise ConfigError(f"speed_jitter={self.speed_jitter} must lie in [0, 0.5); "
                              "pass a fraction such as 0.03")

    @property
    def wavelength_m(self) -> float:
        return LIGHT_SPEED / self.carrier_hz

    @property
    def samples(self) -> int:
        return round(self.duration_s * self.prf_hz)

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.prf_hz)

    @property
    def fft_size(self) -> int:
        """A multiple of ``size`` at least the window: rows average ``fft_size // size`` bins."""
        return self.size * -(-self.window_samples // self.size)


def doppler_axis(radar: RadarConfig) -> np.ndarray:
    """Doppler frequency (Hz) at the centre of each image row, the top row first; a row
    averages ``fft_size // size`` FFT bins and row ``size // 2 - 1`` holds the zero bin."""
    nfft = radar.fft_size
    bins = (np.arange(nfft) - nfft // 2) * radar.prf_hz / nfft
    return bins.reshape(radar.size, -1).mean(axis=1)[::-1]


def _frame_starts(radar: RadarConfig) -> np.ndarray:
    """First pulse of each STFT frame: ``size`` frames spread evenly over the recording."""
    return np.round(np.linspace(0, radar.samples - radar.window_samples, radar.size)).astype(int)


def time_axis(radar: RadarConfig) -> np.ndarray:
    """Time (s from the start of the recording) at the centre of each image column."""
    return (_frame_starts(radar) + radar.window_samples / 2) / radar.prf_hz


def _fastest_speed(user: UserParams, radar: RadarConfig) -> float:
    """The fastest scatterer's speed (m/s) over a gait cycle at the highest jittered speed:
    a bound on any radial speed the radar sees."""
    fast = replace(user, speed_mps=user.speed_mps * (1 + radar.speed_jitter))
    step = gait_cycle_s(fast) / 512
    body = body_points(fast, np.arange(514) * step, 0.0)
    return float(np.linalg.norm(np.diff(body, axis=0), axis=-1).max() / step)


def _check_prf(user: UserParams, radar: RadarConfig) -> None:
    """Refuse a PRF whose Nyquist band (+-prf_hz/2) misses the fastest limb's Doppler."""
    speed = _fastest_speed(user, radar)
    doppler = 2 * speed / radar.wavelength_m
    if doppler >= radar.prf_hz / 2:
        raise ConfigError(
            f"prf_hz={radar.prf_hz:g} aliases the fastest limb ({speed:.2f} m/s: "
            f"{doppler:.0f} Hz Doppler at a {radar.carrier_hz / 1e9:g} GHz carrier, beyond "
            f"the {radar.prf_hz / 2:g} Hz of half the PRF); pass prf_hz >= "
            f"{math.ceil(2.2 * doppler)}")


def simulation_bytes(radar: RadarConfig, per_user: int, processes: int) -> int:
    """About the most memory a dataset's simulation holds at once: each of ``processes``
    holds one user's ``per_user`` images (float32) and one image's spectrum (two
    complex128 copies of ``size x fft_size`` while it is shifted); the main process also
    holds the user whose images it writes."""
    images = per_user * radar.size ** 2 * 4
    spectrum = radar.size * radar.fft_size * 16 * 2
    return processes * (images + spectrum) + images


def _check_memory(radar: RadarConfig, per_user: int, processes: int) -> None:
    """Refuse an image size whose simulation needs more memory than the machine has free,
    naming the largest size that fits (no check where the free memory is unknown)."""
    available = available_memory()
    need = simulation_bytes(radar, per_user, processes)
    if available is None or need <= available:
        return
    sizes = range(16, radar.size)
    largest = 15 + bisect.bisect_left(sizes, True, key=lambda size: simulation_bytes(
        replace(radar, size=size), per_user, processes) > available)
    fix = (f"size must be at most {largest} to fit" if largest >= 16 else
           "simulate fewer images per_user=N or free memory")
    raise ConfigError(f"simulating {per_user} images of {radar.size}x{radar.size} a user in "
                      f"{processes} process{'es' * (processes > 1)} needs about "
                      f"{need / 2**30:,.1f} GiB of memory, {available / 2**30:,.1f} GiB are "
                      f"free; {fix}")


def _image(signal: np.ndarray, radar: RadarConfig) -> np.ndarray:
    """``size x size`` dB spectrogram of ``signal`` scaled to [0, 1] (see the module doc)."""
    n_w = radar.window_samples
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_w) / n_w)
    frames = signal[_frame_starts(radar)[:, None] + np.arange(n_w)] * window
    power = np.abs(np.fft.fftshift(np.fft.fft(frames, n=radar.fft_size, axis=1), axes=1)) ** 2
    power = power.reshape(radar.size, radar.size, -1).mean(axis=2)  # [time, doppler up]
    db = 10 * np.log10(power.T[::-1] + 1e-30)
    floor = db.max() - radar.dynamic_range_db
    return ((np.maximum(db, floor) - floor) / radar.dynamic_range_db).astype(np.float32)


def simulate_user(user: UserParams, n_images: int, radar: RadarConfig = RadarConfig(),
                  seed: int = 0, *, user_index: int = 0) -> np.ndarray:
    """``n_images`` spectrograms ``[n, size, size]`` float32 in [0, 1] of one walker.

    Image ``i`` depends only on ``(seed, user_index, i)``: its gait phase, aspect angle,
    range (at mid-recording), speed jitter and SNR are drawn from the ranges in ``radar``.
    """
    if n_images < 0:
        raise ConfigError(f"n_images={n_images} is negative; pass n_images >= 0")
    _check_prf(user, radar)
    t = (np.arange(radar.samples) - radar.samples / 2) / radar.prf_hz
    images = np.empty((n_images, radar.size, radar.size), dtype=np.float32)
    for i in range(n_images):
        rng = np.random.default_rng([seed, _IMAGE_STREAM, user_index, i])
        phase0, aspect, range_m, jitter = rng.uniform(
            [0.0, radar.aspect_deg[0], radar.range_m[0], -radar.speed_jitter],
            [1.0, radar.aspect_deg[1], radar.range_m[1], radar.speed_jitter])
        walker = replace(user, speed_mps=user.speed_mps * (1 + jitter))
        points, weights = scatterer_trajectories(
            walker, t, phase0, aspect_deg=aspect, range_m=range_m,
            approaching=radar.approaching, radar_height_m=radar.radar_height_m)
        phase = (-4 * np.pi / radar.wavelength_m) * np.linalg.norm(points, axis=-1)
        signal = np.einsum("tk,k->t", np.exp(1j * phase), np.sqrt(weights))  # no BLAS threads
        if radar.snr_db is not None:
            snr = rng.uniform(*radar.snr_db)
            sigma = math.sqrt(np.mean(np.abs(signal) ** 2) / 10 ** (snr / 10) / 2)
            signal = signal + sigma * (rng.standard_normal(signal.shape)
                                       + 1j * rng.standard_normal(signal.shape))
        images[i] = _image(signal, radar)
    return images


def _simulate_user_job(job: tuple[UserParams, int, RadarConfig, int, int]) -> np.ndarray:
    """:func:`simulate_user` for a worker process (one picklable argument)."""
    user, n_images, radar, seed, user_index = job
    return simulate_user(user, n_images, radar, seed, user_index=user_index)


@contextlib.contextmanager
def _user_images(jobs: list[tuple[UserParams, int, RadarConfig, int, int]], processes: int
                 ) -> Iterator[Iterator[np.ndarray]]:
    """Each job's images, in job order: simulated here (one process), or by ``processes``
    worker processes."""
    if processes == 1:
        yield (simulate_user(user, n, radar, seed, user_index=u) for user, n, radar, seed, u
               in jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the caller may hold threads (torch's, a progress bar's)
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool.map(_simulate_user_job, jobs)
    finally:  # an interrupted run does not wait for the users not yet started
        pool.shutdown(cancel_futures=True)


def simulate_dataset(out_dir: str | os.PathLike, n_users: int = 31, per_user: int = 50,
                     radar: RadarConfig = RadarConfig(), seed: int = 0, progress: bool = True,
                     *, overwrite: bool = False, workers: int = 1) -> Path:
    """Write ``out_dir/userNN/NNN.{png,npy}`` (8-bit preview, exact float32 image) for
    ``n_users`` drawn walkers and ``out_dir/users.json`` (users, radar, seed, axes).

    ``workers`` processes simulate users in parallel; the images do not depend on it. The
    folder is built beside ``out_dir`` and renamed onto it at the end, so an interrupted run
    leaves no partial dataset; an existing non-empty ``out_dir`` is replaced only with
    ``overwrite=True``.
    """
    from timetok.core.data.images import save_image

    out = Path(out_dir)
    if per_user < 1:
        raise ConfigError(f"per_user={per_user} must be at least 1; pass per_user >= 1")
    if workers < 1:
        raise ConfigError(f"workers={workers} must be at least 1; pass workers >= 1")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder; pass another out_dir")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; pass overwrite=True to replace it "
                          "or choose another out_dir")
    users = draw_users(n_users, seed)
    for user in users:  # before any work: a config that would fail midway fails now
        _check_prf(user, radar)
    processes = min(workers, n_users)
    _check_memory(radar, per_user, processes)
    user_width, image_width = max(2, len(str(n_users - 1))), max(3, len(str(per_user - 1)))
    names = [f"user{u:0{user_width}d}" for u in range(n_users)]
    jobs = [(user, per_user, radar, seed, u) for u, user in enumerate(users)]
    with atomic_folder(out) as tmp:
        with (_progress_bar(progress, n_users * per_user) as advance,
              _user_images(jobs, processes) as simulated):
            for name, images in zip(names, simulated, strict=True):
                folder = tmp / name
                folder.mkdir()
                for i, image in enumerate(images):
                    save_image(folder / f"{i:0{image_width}d}", image)
                    advance()
        info = {
            "seed": seed, "n_users": n_users, "per_user": per_user, "radar": asdict(radar),
            "users": {name: asdict(user) for name, user in zip(names, users, strict=True)},
            "axes": {"rows": "Doppler Hz at each row centre, top row first",
                     "columns": "seconds from the recording's start at each column centre",
                     "doppler_hz": doppler_axis(radar).tolist(),
                     "time_s": time_axis(radar).tolist()},
        }
        (tmp / "users.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


@contextlib.contextmanager
def _progress_bar(show: bool, total: int) -> Iterator[Callable[[], None]]:
    """Yields ``advance()``, to call per image: a rich progress bar on stderr, or nothing."""
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("images", total=total)
        yield lambda: bar.update(task, advance=1)
