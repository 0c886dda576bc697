"""Convolutions and pooling over time, channels-last ``(batch, time, C)``.

Exact numerics of the official PyTorch model's ops (zero padding, ``-inf``
max-pool padding). Each op has the forms the model picks per use (see
:class:`~leadmix_jax.model.leadmix.LeadMixMST`); all forms are tested to agree:

* **Depthwise dilated conv**: :func:`depthwise_conv`, a sum of shifted slices
  times per-channel weights with a hand-written VJP (keeps only ``x`` for the
  backward pass), for training and inference on every XLA backend, where the
  library's grouped conv (``feature_group_count=C``) is slow;
  :func:`depthwise_conv_grouped`, the library form, for export (TFLite maps
  it to ``DEPTHWISE_CONV_2D``).
* **Strided dense conv** (stem and downsampling): :func:`strided_conv_patches`,
  one matmul over im2col patches with a hand-written VJP, for training (fast
  inside the training loop's ``while`` loop, and a batched matmul under a
  population's ``vmap`` where a library conv would become a grouped conv);
  :func:`strided_conv`, the library conv, in evaluation and for export; the
  stem's conv in evaluation as a stride-1 conv over its input's phases
  (:func:`strided_conv_phases`).
* **Max-pool**: :func:`max_pool`, the maximum of strided slices with a VJP
  that routes each gradient to the first maximum of its window (PyTorch's
  rule); :func:`max_pool_window` (``lax.reduce_window``) in evaluation.

Two XLA:CPU rules shape these forms: it never fuses a concatenate along the
minor (channel) dimension, so taps and phases are stacked on an axis before
the channels and reshaped; and it gives reductions to YNNPACK fusions that
read only written arrays, so sums over shifted products go through
:func:`leadmix_jax.model.norm.time_sums`. The measurements behind each choice
are in ``docs/formulations.md``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from leadmix_jax.model.norm import time_sums

Array = jax.Array


# ----------------------------------------------------------------------------
# Depthwise conv.


def _shift(x: Array, s: int) -> Array:
    """``y[:, t] = x[:, t + s]`` with zeros outside; ``(B, L, C)``."""
    if s == 0:
        return x
    length = x.shape[1]
    if s > 0:
        return jnp.pad(x[:, s:], ((0, 0), (0, min(s, length)), (0, 0)))[:, :length]
    return jnp.pad(x[:, : length + s], ((0, 0), (min(-s, length), 0), (0, 0)))[:, :length]


def _shift_padded(x: Array, s: int) -> Array:
    """:func:`_shift` written pad-then-slice (a different HLO, same values)."""
    length = x.shape[1]
    if s >= 0:
        return jnp.pad(x, ((0, 0), (0, s), (0, 0)))[:, s : s + length]
    return jnp.pad(x, ((0, 0), (-s, 0), (0, 0)))[:, :length]


def _offsets(k: int, dilation: int) -> list[int]:
    pad = dilation * (k - 1) // 2
    return [i * dilation - pad for i in range(k)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv(x: Array, kernel: Array, dilation: int) -> Array:
    """Depthwise 1-D conv, 'same' length, zero padding ``dilation*(K-1)/2`` per side.

    Shifted-sum form with a hand-written VJP (see the module docstring).

    Args:
      x: ``(B, L, C)``.
      kernel: ``(K, 1, C)`` (Flax layout of a PyTorch ``(C, 1, K)`` weight), K odd.
      dilation: dilation of the kernel.

    Returns:
      ``(B, L, C)``.
    """
    # Each tap is its own slice-then-pad of x (one consumer each), which XLA
    # fuses into the sum; nothing is kept for backward but x (see _dw_bwd).
    offs = _offsets(kernel.shape[0], dilation)
    out = _shift(x, offs[0]) * kernel[0, 0]
    for i in range(1, len(offs)):
        out = out + _shift(x, offs[i]) * kernel[i, 0]
    return out


def _dw_fwd(x, kernel, dilation):
    return depthwise_conv(x, kernel, dilation), (x, kernel)


def _dw_bwd(dilation, res, g):
    x, kernel = res
    offs = _offsets(kernel.shape[0], dilation)
    # d/dx of sum_i shift(x, o_i) w_i is sum_i shift(g, -o_i) w_i.
    dx = _shift(g, -offs[0]) * kernel[0, 0]
    for i in range(1, len(offs)):
        dx = dx + _shift(g, -offs[i]) * kernel[i, 0]
    # dk_i = sum_{b,t} g[b, t] x[b, t + o_i]: one pass over g and x that sums
    # the K products over time (:func:`~leadmix_jax.model.norm.time_sums`, which fuses the shifts;
    # YNNPACK's reductions needed a written copy of every shifted x and of
    # each half of the blocks' concatenated g), then over the batch. The shifts are pad-then-slice,
    # a different HLO from the forward's slice-then-pad: were they identical,
    # CSE would give the forward's shifts a second consumer and XLA would
    # materialise them in the forward pass. Each shift pads x on its own: one
    # padded x shared by the K slices was written out.
    gf = g.astype(jnp.float32)
    xf = x.astype(jnp.float32)
    dk = jnp.stack(time_sums(*(gf * _shift_padded(xf, o) for o in offs))).sum(axis=1)
    return dx, dk[:, None, :].astype(kernel.dtype)


depthwise_conv.defvjp(_dw_fwd, _dw_bwd)


def depthwise_conv_grouped(x: Array, kernel: Array, dilation: int) -> Array:
    """:func:`depthwise_conv` as a grouped library conv (``feature_group_count=C``).

    The export form: TFLite lowers it to ``DEPTHWISE_CONV_2D``. Same shapes.
    """
    pad = dilation * (kernel.shape[0] - 1) // 2
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(1,),
        padding=[(pad, pad)],
        rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=x.shape[-1],
    )


# ----------------------------------------------------------------------------
# Strided conv and pooling.


def strided_conv(x: Array, kernel: Array, stride: int, pad: int) -> Array:
    """Dense 1-D conv without bias, symmetric zero padding ``pad``.

    Args:
      x: ``(B, L, Cin)``.
      kernel: ``(K, Cin, Cout)``.
      stride: time stride.
      pad: zeros added on each side of time.

    Returns:
      ``(B, floor((L + 2 pad - K) / stride) + 1, Cout)``.
    """
    return lax.conv_general_dilated(
        x, kernel, window_strides=(stride,), padding=[(pad, pad)], dimension_numbers=("NWC", "WIO", "NWC")
    )


def strided_conv_phases(x: Array, kernel: Array, stride: int, pad: int) -> Array:
    """:func:`strided_conv` as a stride-1 conv over the input's ``stride`` phases.

    ``x`` ``(B, L, Cin)`` with ``L % stride == 0`` is reshaped (no copy) to
    ``(B, L / stride, stride * Cin)``: row ``u`` holds ``x[stride u + r]``
    for ``r < stride``. The kernel gets ``(-pad) % stride`` zero taps in
    front (so that the padding is whole rows) and zero taps at the end up
    to a multiple of ``stride``, and is regrouped the same way to
    ``(K' / stride, stride * Cin, Cout)``. Same shapes and values as
    :func:`strided_conv`, with up to ``stride - 1`` zero taps more work.
    """
    b, length, cin = x.shape
    k, _, cout = kernel.shape
    if length % stride:
        raise ValueError(f"length {length} is not a multiple of the stride {stride}")
    front = (-pad) % stride
    taps = -(-(k + front) // stride) * stride
    w = jnp.pad(kernel, ((front, taps - k - front), (0, 0), (0, 0)))
    w = w.reshape(taps // stride, stride * cin, cout)
    out_len = (length + 2 * pad - k) // stride + 1
    left = (pad + front) // stride
    right = out_len + taps // stride - 1 - left - length // stride
    return lax.conv_general_dilated(
        x.reshape(b, length // stride, stride * cin),
        w,
        window_strides=(1,),
        padding=[(left, right)],
        dimension_numbers=("NWC", "WIO", "NWC"),
    )


def _strided_views(x: Array, k: int, stride: int, pad: int, fill: float = 0.0) -> list[Array]:
    """The ``k`` strided time views of ``x`` padded by ``pad`` (value ``fill``)
    on each side: view ``i`` holds ``xp[stride t + i]`` for every output ``t``.
    ``(B, L, C) -> k x (B, out_len, C)``, ``out_len = (L + 2 pad - k) // stride + 1``."""
    out_len = (x.shape[1] + 2 * pad - k) // stride + 1
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), constant_values=fill)
    span = stride * (out_len - 1) + 1
    return [xp[:, i : i + span : stride] for i in range(k)]


def _patches(x: Array, k: int, stride: int, pad: int) -> Array:
    """im2col: ``(B, L, Cin) -> (B, out_len, K * Cin)``, patch ``t`` holding
    ``xp[stride t + i]`` for ``i < K`` in its ``i``-th ``Cin`` block (``xp``:
    ``x`` zero-padded by ``pad`` on each side).

    The K strided views stacked on a tap axis before the channels, then
    reshaped: XLA:CPU never fuses a concatenate along the minor (channel)
    dimension, so ``concatenate(axis=-1)`` wrote each view and then copied
    them; a concatenate along the tap axis fuses with the slices into one
    loop. (A select over the tap axis also writes one loop, but ran slower.)
    """
    views = _strided_views(x, k, stride, pad)
    b, out_len, c = views[0].shape
    return jnp.stack(views, axis=2).reshape(b, out_len, k * c)


def _unpatch(dp: Array, k: int, stride: int, pad: int, length: int) -> Array:
    """Transpose of :func:`_patches`: ``(B, out_len, K * Cin) -> (B, length, Cin)``."""
    b, out_len, kc = dp.shape
    dp4 = dp.reshape(b, out_len, k, kc // k)
    return _untap([dp4[:, :, i] for i in range(k)], stride, pad, length)


def _untap(taps: list[Array], stride: int, pad: int, length: int) -> Array:
    """Sum strided taps back onto the input: ``K x (B, out_len, C) -> (B, length, C)``.

    Tap ``i`` of output ``t`` sits at padded position ``stride t + i``. Padded
    position ``s = stride u + j`` (``j < stride``) collects
    ``taps[j + stride m][u - m]`` over ``m``: per phase ``j``, a sum of
    time-shifted taps. The phases are stacked on an axis before the channels
    and reshaped, which interleaves them, and the padding is cut off. XLA:CPU
    writes the stacked phases in one loop; interleaving them by a select
    over a phase axis instead kept every phase as a written array.
    """
    k = len(taps)
    b, out_len, c = taps[0].shape
    rows = max(out_len - 1 + -(-k // stride), -(-(length + pad) // stride))
    phases = []
    for j in range(stride):
        acc = None
        for m in range((k - 1 - j) // stride + 1):
            term = jnp.pad(taps[j + stride * m], ((0, 0), (m, rows - out_len - m), (0, 0)))
            acc = term if acc is None else acc + term
        phases.append(acc if acc is not None else jnp.zeros((b, rows, c), taps[0].dtype))
    return jnp.stack(phases, axis=2).reshape(b, rows * stride, c)[:, pad : pad + length]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv_patches(x: Array, kernel: Array, stride: int, pad: int) -> Array:
    """:func:`strided_conv` as one matmul over im2col patches; same shapes.

    The training form on XLA backends (see the module docstring). Under
    ``jax.vmap`` over members with stacked kernels the matmul becomes a
    batched dot product, where a vmapped library conv becomes a grouped conv
    (``feature_group_count`` = members). Patch ``t`` is the ``K`` taps of
    output ``t`` side by side, ``(K * Cin,)`` in the kernel's ``(K, Cin)``
    order. The VJP keeps the patches and writes ``dx`` from the patches'
    cotangent in one loop (:func:`_unpatch`).
    """
    return _patches_fwd(x, kernel, stride, pad)[0]


def _patches_fwd(x, kernel, stride, pad):
    k, cin, cout = kernel.shape
    patches = _patches(x, k, stride, pad)
    return patches @ kernel.reshape(k * cin, cout), (patches, kernel, x.shape[1])


def _patches_bwd(stride, pad, res, g):
    patches, kernel, length = res
    k, cin, cout = kernel.shape
    w = kernel.reshape(k * cin, cout)
    dx = _unpatch(g @ w.T, k, stride, pad, length)
    dw = (patches.reshape(-1, k * cin).T @ g.reshape(-1, cout)).reshape(k, cin, cout)
    return dx, dw


strided_conv_patches.defvjp(_patches_fwd, _patches_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool(x: Array, window: int = 3, stride: int = 2, pad: int = 1) -> Array:
    """Max-pool over time with ``-inf`` padding (PyTorch ``MaxPool1d``). ``(B, L, C)``.

    Written as the maximum of ``window`` strided slices: XLA:CPU runs the
    backward pass of ``lax.reduce_window`` several times slower. The VJP routes
    each output's gradient to the first maximal tap of its window, as
    PyTorch does (autodiff of the maximum chain split ties in halves), and
    writes the input's gradient in one loop (:func:`_untap`, as for the
    patch conv). It keeps the input and the output.
    """
    return functools.reduce(jnp.maximum, _strided_views(x, window, stride, pad, -jnp.inf))


def _max_pool_fwd(x, window, stride, pad):
    out = max_pool(x, window, stride, pad)
    return out, (x, out)


def _max_pool_bwd(window, stride, pad, res, g):
    x, out = res
    taken = jnp.zeros(out.shape, bool)
    routed = []
    for tap in _strided_views(x, window, stride, pad, -jnp.inf):
        first = (tap == out) & ~taken
        taken = taken | first
        routed.append(jnp.where(first, g, jnp.zeros_like(g)))
    return (_untap(routed, stride, pad, x.shape[1]),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool_window(x: Array, window: int = 3, stride: int = 2, pad: int = 1) -> Array:
    """:func:`max_pool` as ``lax.reduce_window``: the evaluation form, same values.

    XLA:CPU writes the unpadded input once and pools it, where
    :func:`max_pool`'s slices of the ``-inf``-padded input had the pad fused
    into the loop that computes the input (the stem's GroupNorm+SiLU), which
    then ran slower per element. Not for training (XLA:CPU's
    ``reduce_window`` backward is slow, and as :func:`max_pool`'s forward it
    read more bytes per training sample) nor for export (TFLite's int8
    converter failed on it).
    """
    padding = [(0, 0), (pad, pad), (0, 0)]
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, 1), (1, stride, 1), padding)
