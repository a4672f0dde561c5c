"""Camera paths that follow a moving character: orbit, arc and handheld."""

from __future__ import annotations

import numpy as np

from lab4d_core.geometry.transforms import look_at

CAMERA_PATHS = ("orbit", "arc", "handheld")


def _smooth_noise(times: np.ndarray, rng: np.random.Generator, scale: float, dims: int = 3) -> np.ndarray:
    """Band-limited wander: a few random sinusoids per dimension (what a hand does)."""
    out = np.zeros((len(times), dims))
    for frequency in (0.3, 0.7, 1.9):
        amplitude = scale / frequency**0.5
        phase = rng.uniform(0, 2 * np.pi, dims)
        out += amplitude * np.sin(2 * np.pi * frequency * times[:, None] + phase) * rng.uniform(0.5, 1.0, dims)
    return out


def camera_path(
    kind: str,
    targets: np.ndarray,
    times: np.ndarray,
    distance: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """(N, 4, 4) world-to-camera matrices looking at ``targets`` (N, 3) in a y-down world.

    ``distance`` is the mean camera distance; elevation is positive above the target.
    """
    duration = max(times[-1] - times[0], 1e-6)
    u = (times - times[0]) / duration
    azimuth0 = rng.uniform(0, 2 * np.pi)
    if kind == "orbit":
        azimuth = azimuth0 + rng.choice([-1, 1]) * 2 * np.pi * u
        elevation = np.full_like(u, np.deg2rad(rng.uniform(10, 30)))
        radius = np.full_like(u, distance)
        jitter = np.zeros((len(u), 3))
    elif kind == "arc":
        azimuth = azimuth0 + np.deg2rad(70) * np.sin(np.pi * (u - 0.5))
        elevation = np.deg2rad(rng.uniform(5, 20) + 12 * np.sin(2 * np.pi * u))
        radius = distance * (1.0 + 0.1 * np.cos(2 * np.pi * u))
        jitter = np.zeros((len(u), 3))
    elif kind == "handheld":
        azimuth = azimuth0 + np.deg2rad(rng.uniform(30, 90)) * u
        elevation = np.deg2rad(18 + 14 * np.sin(2 * np.pi * (u + rng.uniform())))
        radius = distance * (1.0 + 0.25 * np.sin(2 * np.pi * (0.7 * u + rng.uniform())))
        jitter = _smooth_noise(times, rng, 0.02 * distance)
    else:
        raise ValueError(f"unknown camera path {kind!r}; choose one of {CAMERA_PATHS}")
    offset = np.stack(
        [
            radius * np.cos(elevation) * np.sin(azimuth),
            -radius * np.sin(elevation),
            radius * np.cos(elevation) * np.cos(azimuth),
        ],
        axis=-1,
    )
    eye = targets + offset + jitter
    return look_at(eye, targets + 0.5 * jitter)
