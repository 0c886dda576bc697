"""Training augmentations, one spec in two forms: NumPy (grain) and JAX (device-resident input).

Both forms apply the same operations in the same order to one z-scored
example ``(T, N)``: a circular time shift in ``[-shift, shift]`` samples, a
per-lead amplitude scale ``U(1 - scale, 1 + scale)``, a baseline-wander
sinusoid of amplitude ``wander`` at ``U(wander_low_hz, wander_high_hz)`` Hz
with a uniform phase per lead, and Gaussian noise of std ``noise``
(:func:`apply`). They differ only in where the random numbers come from: a
NumPy generator per example in the grain pipeline (:class:`NumpyAugment`), a
JAX key per stream position inside the compiled step (:func:`augment_example`).
Every constant is a field of :class:`AugmentConfig`, i.e. of ``config.augment``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import grain
import numpy as np


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations, in z-scored units; 0 turns one off (``config.augment``)."""

    scale: float = 0.0  # amplitude scaling per lead, U(1 - s, 1 + s)
    noise: float = 0.0  # std of additive Gaussian noise
    wander: float = 0.0  # amplitude of a baseline sinusoid (0 = off)
    wander_low_hz: float = 0.05  # its frequency is uniform in [low, high] Hz
    wander_high_hz: float = 0.5
    shift: int = 0  # circular time shift, up to +-shift samples
    fs: float = 250.0  # sampling rate of the windows (Hz)

    @property
    def active(self) -> bool:
        return bool(self.scale or self.noise or self.wander or self.shift)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "AugmentConfig":
        """From ``config.augment`` (fields it leaves out keep their defaults)."""
        return cls(**dict(cfg))


def apply(x, draws: Mapping[str, Any], c: AugmentConfig, xp=np):
    """The augmentations of ``c`` on one example ``x`` ``(T, N)`` with given random draws.

    Args:
      x: ``(T, N)`` float32 z-scored example (NumPy or JAX, as ``xp``).
      draws: ``shift`` (integer), ``scale``, ``freq``, ``phase`` ``(1, N)`` and
        ``noise`` ``(T, N)`` already scaled by ``c.noise``; only those of the
        active augmentations are read.
      c: the augmentation settings.
      xp: ``numpy`` or ``jax.numpy``.

    Returns:
      ``(T, N)`` float32.
    """
    if c.shift:
        x = xp.roll(x, draws["shift"], axis=0)
    if c.scale:
        x = x * draws["scale"]
    if c.wander:
        t = xp.arange(x.shape[0], dtype=draws["freq"].dtype)[:, None]
        x = x + (c.wander * xp.sin(2 * np.pi * draws["freq"] * t / c.fs + draws["phase"])).astype(x.dtype)
    if c.noise:
        x = x + draws["noise"]
    return x.astype(np.float32)


def numpy_draws(rng: np.random.Generator, shape: tuple[int, int], c: AugmentConfig) -> dict:
    """The random draws of :func:`apply` for one ``(T, N)`` example, from a NumPy generator."""
    n = shape[1]
    draws = {}
    if c.shift:
        draws["shift"] = int(rng.integers(-c.shift, c.shift + 1))
    if c.scale:
        draws["scale"] = rng.uniform(1 - c.scale, 1 + c.scale, size=(1, n)).astype(np.float32)
    if c.wander:
        draws["freq"] = rng.uniform(c.wander_low_hz, c.wander_high_hz, size=(1, n))
        draws["phase"] = rng.uniform(0, 2 * np.pi, size=(1, n))
    if c.noise:
        draws["noise"] = rng.normal(0, c.noise, size=shape).astype(np.float32)
    return draws


def jax_draws(key, shape: tuple[int, int], c: AugmentConfig) -> dict:
    """The random draws of :func:`apply` for one ``(T, N)`` example, from a JAX key
    (traceable: used inside the compiled train step)."""
    import jax  # here, not at the top: grain workers unpickle only the NumPy form

    n = shape[1]
    k_shift, k_scale, k_freq, k_phase, k_noise = jax.random.split(key, 5)
    draws = {}
    if c.shift:
        draws["shift"] = jax.random.randint(k_shift, (), -c.shift, c.shift + 1)
    if c.scale:
        draws["scale"] = jax.random.uniform(k_scale, (1, n), minval=1 - c.scale, maxval=1 + c.scale)
    if c.wander:
        draws["freq"] = jax.random.uniform(k_freq, (1, n), minval=c.wander_low_hz, maxval=c.wander_high_hz)
        draws["phase"] = jax.random.uniform(k_phase, (1, n), minval=0.0, maxval=2 * np.pi)
    if c.noise:
        draws["noise"] = c.noise * jax.random.normal(k_noise, shape)
    return draws


def augment_example(x, key, c: AugmentConfig):
    """JAX form: :func:`apply` on one example ``(T, N)`` with draws from ``key``."""
    import jax.numpy as jnp

    return apply(x, jax_draws(key, x.shape, c), c, jnp)


class NumpyAugment(grain.transforms.RandomMap):
    """NumPy form, a grain transform: :func:`apply` on an example's ``ecg``
    with draws from grain's per-example generator."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def random_map(self, ex, rng: np.random.Generator):
        x = ex["ecg"]
        return {**ex, "ecg": apply(x, numpy_draws(rng, x.shape, self.cfg), self.cfg)}
