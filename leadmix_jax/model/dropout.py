"""Dropout with an independent mask per element, from ``jax.random``'s threefry bits.

The bits are computed as straight-line elementwise code
(:mod:`leadmix_jax.model.threefry`) that XLA fuses into the select, and the
hand-written VJP recomputes the mask from the key, so neither the bits nor
the mask are written to memory.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from leadmix_jax.model import threefry

Array = jax.Array


# ----------------------------------------------------------------------------
# Dropout.


def dropout(x: Array, rate: float, rng: Array | None) -> Array:
    """Element dropout with an independent mask per element (inverted scaling).

    Identity when ``rng`` is None (evaluation) or ``rate`` is 0. ``x``: any
    shape ``(B, ..., C)``.

    The mask compares 16 random bits per element with ``rate * 2**16``
    (keep probability ``1 - rate`` to within ``2**-17``): one 32-bit draw
    feeds two elements. The bits are ``jax.random``'s threefry bits, computed
    as straight-line elementwise code (:mod:`leadmix_jax.model.threefry`) that XLA
    fuses into the select: on XLA:CPU ``jax.random`` runs threefry as a
    ``while`` loop and writes the bits. Draws are counter-based, so the mask
    does not depend on how the batch is sharded.
    """
    if rng is None or rate == 0.0:
        return x
    return _dropout(x, rate, rng)


def _keep(rng: Array, rate: float, shape: tuple[int, ...]) -> Array:
    """The keep mask of :func:`dropout`, recomputed (not stored) by its VJP."""
    if shape[-1] % 2:
        return threefry.bernoulli(rng, 1.0 - rate, shape)
    return threefry.random_halves(rng, shape) >= min(int(round(rate * 65536)), 65536)


def _scaled_select(keep: Array, x: Array, rate: float) -> Array:
    return jnp.where(keep, x * (1.0 / (1.0 - rate)), jnp.zeros_like(x))


# A hand-written VJP so that the backward pass, like the forward, ends in the
# select: autodiff scales after it, and XLA:CPU handed that multiply by a
# broadcast constant to the YNNPACK reductions that read the gradient, as a
# written (B, L, C) array of the constant. The mask is recomputed from the key.
@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _dropout(x: Array, rate: float, rng: Array) -> Array:
    return _scaled_select(_keep(rng, rate, x.shape), x, rate)


def _dropout_fwd(x, rate, rng):
    return _dropout(x, rate, rng), rng


def _dropout_bwd(rate, rng, g):
    return _scaled_select(_keep(rng, rate, g.shape), g, rate), None


_dropout.defvjp(_dropout_fwd, _dropout_bwd)
