"""Norms and reductions over time, channels-last ``(batch, time, C)``.

GroupNorm and LayerNorm with the official model's numerics (biased variance,
statistics in float32). :func:`group_norm_silu` is GroupNorm followed by SiLU
in one pass with a hand-written VJP that keeps only the input and the
statistics for the backward pass; its statistics are per-channel ``(B, C)``
arrays spread over a group's channels by a small matmul (:func:`_group_mean`),
so the elementwise loops broadcast them along time only.
:func:`time_sums` and :func:`mean_and_max` are native variadic reductions
(XLA emits them itself and fuses their producers, where a plain reduction
would go to a YNNPACK fusion that reads written arrays). The measurements
behind these forms are in ``docs/formulations.md``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array


# ----------------------------------------------------------------------------
# Reductions.


def time_sums(*xs: Array) -> list[Array]:
    """Sums over time of several ``(B, L, C)`` arrays in one pass: ``(B, C)`` each.

    One variadic reduction, which XLA:CPU emits itself, fusing the elementwise
    producers of its operands (products, shifts) into the loop. A plain
    ``x.sum(axis=1)`` goes to a YNNPACK reduction, which needs its operand
    written out first: one more write and read of a ``(B, L, C)`` array per
    product summed. Where the operand is written anyway, the YNNPACK
    reduction is the faster one (so GroupNorm's statistics do not use this).
    Reducing over (batch, time) here ran slower than over time alone: sum the
    ``(B, C)`` results over the batch after.
    """
    zeros = [jnp.zeros((), x.dtype) for x in xs]
    return list(lax.reduce(list(xs), zeros, lambda a, b: [u + v for u, v in zip(a, b)], (1,)))


def mean_and_max(t: Array) -> tuple[Array, Array]:
    """Mean and maximum over axis 1 of ``t`` ``(B, N, C)``: ``(B, C)`` each, one reduction.

    The evaluation form of the blocks' token statistics (LCM), a native
    variadic reduction like :func:`time_sums`. As ``mean`` and ``max``,
    XLA:CPU gave the two reductions to one YNNPACK fusion together with the
    token FFN before them and the block's ``(B, L, C)`` modulation after
    them, which ran slower than XLA's own loops. Summed in float32, as ``jnp.mean`` does for
    bfloat16. Not differentiated (training uses ``mean``/``max``), nor
    exported (TFLite has no variadic reduction).
    """
    tf = t.astype(jnp.float32)
    zero, low = jnp.zeros((), jnp.float32), jnp.array(-jnp.inf, jnp.float32)
    total, top = lax.reduce([tf, tf], [zero, low], lambda a, b: [a[0] + b[0], jnp.maximum(a[1], b[1])], (1,))
    return (total / t.shape[1]).astype(t.dtype), top.astype(t.dtype)


# ----------------------------------------------------------------------------
# Norms.


def _group_mean(v: Array, groups: int, n: int) -> Array:
    """``(B, C)`` per-channel sums -> ``(B, C)``: each channel gets its group's sum / ``n``.

    A matmul with a block-diagonal ``(C, C)`` matrix of ``1 / n`` rather than a
    reshape-sum-repeat: the result is a per-channel array, so the large
    elementwise loops that apply it broadcast it along time only. Repeating a
    ``(B, G)`` array inside them costs an integer division per element and
    kept XLA:CPU's loops from vectorising.
    """
    # A NumPy constant: built from jnp.arange it was recomputed on every
    # call (XLA:CPU does not fold it).
    c = v.shape[-1]
    group = np.arange(c) // (c // groups)
    mix = (group[:, None] == group[None, :]).astype(np.float32) / np.float32(n)
    # HIGHEST: TPUs (and GPUs with TF32) would otherwise round f32 operands to bf16/tf32.
    return jnp.dot(v, mix, precision=lax.Precision.HIGHEST)


def _group_stats(xf: Array, groups: int, eps: float) -> tuple[Array, Array]:
    """Per-channel mean and 1/std of each channel's group, ``(B, C)``, of ``(B, L, C)`` float32.

    Contiguous groups of ``C // G`` channels, statistics over (time x
    channels of the group), one pass. The sums run over time first, to
    ``(B, C)``, and then over the channels of a group on that small array
    (:func:`_group_mean`): XLA:CPU reduces the middle axis of ``(B, L, C)`` at
    memory speed, but the reduction over axes (1, 3) of ``(B, L, G, C/G)``
    ran at ~2 GB/s, a quarter of the inference step.
    """
    n = xf.shape[1] * (xf.shape[2] // groups)
    # Sum and sum of squares of the same input. The activations here are conv
    # outputs of order 1, far from the cancellation regime of E[x^2] - E[x]^2
    # in float32.
    mean = _group_mean(xf.sum(axis=1), groups, n)
    mean_sq = _group_mean(jnp.square(xf).sum(axis=1), groups, n)
    var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
    return mean, lax.rsqrt(var + eps)


def group_norm(x: Array, scale: Array, bias: Array, groups: int, eps: float = 1e-5) -> Array:
    """GroupNorm over (time x channels of a group), contiguous groups, per sample.

    Statistics in float32 whatever the compute dtype. ``x``: ``(B, L, C)``;
    ``scale``, ``bias``: ``(C,)``. Returns ``x``'s shape and dtype.
    """
    xf = x.astype(jnp.float32)
    mean, rstd = _group_stats(xf, groups, eps)
    y = (xf - mean[:, None]) * rstd[:, None]
    return (y * scale + bias).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def group_norm_silu(x: Array, scale: Array, bias: Array, groups: int, eps: float = 1e-5) -> Array:
    """``silu(group_norm(x))`` with a VJP that keeps only ``x`` and the statistics.

    ``x``: ``(B, L, C)``; ``scale``, ``bias``: ``(C,)`` float32. Returns ``x``'s
    shape and dtype; statistics and the normalisation run in float32.
    """
    return _gn_silu_fwd(x, scale, bias, groups, eps)[0]


def _gn_silu_fwd(x, scale, bias, groups, eps):
    xf = x.astype(jnp.float32)
    mean, rstd = _group_stats(xf, groups, eps)  # (B, C) each
    z = (xf - mean[:, None]) * rstd[:, None] * scale + bias
    return (z * jax.nn.sigmoid(z)).astype(x.dtype), (x, scale, bias, mean, rstd)


def _gn_silu_bwd(groups, eps, res, g):
    x, scale, bias, mean, rstd = res
    n = x.shape[1] * (x.shape[2] // groups)
    xf = x.astype(jnp.float32)
    mean_c, rstd_c = mean[:, None], rstd[:, None]  # (B, 1, C)
    # x * rstd - mean * rstd, not the forward's (x - mean) * rstd: an identical
    # expression would be merged with the forward's by CSE, and XLA would then
    # write the normalised activations in the forward pass and keep them.
    z = (xf * rstd_c - mean_c * rstd_c) * scale + bias
    s = jax.nn.sigmoid(z)
    dz = g.astype(jnp.float32) * s * (1.0 + z * (1.0 - s))  # silu'(z); (B, L, C), written once
    # Every statistic comes from two time reductions of (B, L, C) arrays that
    # exist anyway (dz and the saved x), not from the normalised activations:
    # sum_t dz * xhat = rstd * (sum_t dz * x - mean * sum_t dz); it cancels only
    # when |mean| >> std, the same regime as the forward's one-pass statistics.
    s_dz = dz.sum(axis=1)  # (B, C)
    s_dzxhat = rstd * ((dz * xf).sum(axis=1) - mean * s_dz)
    # The barrier keeps XLA from merging sum_b(sum_t dz) into one more pass
    # over dz: dbias is summed from the (B, C) sums.
    dbias, dscale = lax.optimization_barrier(s_dz).sum(axis=0), s_dzxhat.sum(axis=0)
    m1 = _group_mean(s_dz * scale, groups, n)  # group mean of dxhat, per channel (B, C)
    m2 = _group_mean(s_dzxhat * scale, groups, n)  # group mean of dxhat * xhat
    # dx = rstd * (dxhat - m1 - xhat * m2), with xhat = (x - mean) * rstd.
    dx = rstd_c * (dz * scale - m1[:, None] - (xf - mean_c) * (rstd_c * m2[:, None]))
    return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(bias.dtype)


group_norm_silu.defvjp(_gn_silu_fwd, _gn_silu_bwd)


def layer_norm(x: Array, scale: Array, bias: Array, eps: float = 1e-5) -> Array:
    """LayerNorm over the last axis, statistics in float32. Any leading shape."""
    xf = x.astype(jnp.float32)
    mean = xf.mean(axis=-1, keepdims=True)
    var = jnp.square(xf - mean).mean(axis=-1, keepdims=True)
    return ((xf - mean) * lax.rsqrt(var + eps) * scale + bias).astype(x.dtype)
