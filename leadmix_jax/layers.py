"""Functional building blocks of LeadMix-MST, channels-last ``(batch, time, C)``.

Each op has the exact numerics of its PyTorch counterpart in the official
model (zero padding, ``-inf`` max-pool padding, biased variance in the norms).

Formulations per backend (a deliberate choice, measured with
``bench/model_throughput.py``; see ``LeadMixMST``'s ``export`` flag):

* **Depthwise (dilated) conv.** Every XLA backend runs the *shifted-sum*
  form (:func:`depthwise_conv`): K shifted views of the input times
  per-channel weights, with a hand-written VJP so that neither the shifted
  views nor the padded input are kept for backward (only ``x``). XLA fuses it
  into one elementwise loop forward and one per output backward. The library
  form, ``lax.conv_general_dilated(feature_group_count=C)``, is ~75x slower on
  XLA:CPU, and public reports say XLA:GPU pads dilated depthwise convs out
  (jax-ml/jax#26266, openxla/xla PR 32231) and runs their backward as slowly
  as a dense conv (jax-ml/jax#13800). Measured on an H200 (12 leads, batch
  256, f32, ``bench/model_throughput.py --forms=grouped``): the grouped form
  trained 13.2x slower (3,368 vs 44,518 samples/s) and inferred 1.6x slower
  (``bench/results/h200-2026-11-26.md``). The grouped form is kept only for
  export (:func:`depthwise_conv_grouped`): TFLite maps it to its
  ``DEPTHWISE_CONV_2D`` kernel.
* **Strided dense conv** (stem and downsampling): when *training*, one
  matmul over im2col patches (:func:`strided_conv_patches`) on every XLA
  backend. Measured on a 2-core XLA:CPU, paper model, 3 leads, one run
  each: inside the training loop's while loop
  (:func:`leadmix_jax.dispatch.run_steps`, every dispatch) the library conv
  trained at 18 samples/s and the patch form at 72-113 (batch 16, K = 1
  and 4); in a plain jitted step the library conv was 1.08x faster (87 vs
  80 samples/s, batch 32, ``bench/model_throughput.py
  --forms=patches,library``). On an H200, plain jitted step, 12 leads,
  batch 256: the same speed in training (45,719 vs 44,518 samples/s).
  Under ``jax.vmap`` over a population's stacked kernels
  (:mod:`leadmix_jax.population`) the matmul becomes a batched matmul, where
  the library conv would become a grouped conv. In *evaluation* (no
  gradient, no vmap) the model calls the library conv
  (:func:`strided_conv`): model inference 1.09x (3 leads) and 1.10x (12
  leads) faster on the 2-core XLA:CPU (batch 32, same process,
  interleaved), 1.22x on the H200. It is also the export form: TFLite maps
  it to ``CONV_2D``. The stem's conv (few input channels, ~100 GFLOP/s as
  a stride-2 library conv on that CPU) evaluates instead as a stride-1 conv
  over its input's two phases (:func:`strided_conv_phases`). The patch
  form has a hand-written VJP: the input's gradient is written from the
  patches' cotangent in one loop, phase by phase (:func:`_unpatch`), where
  autodiff wrote one padded copy per tap and summed them. Measured (paper model, batch 32, 2-core XLA:CPU): the
  training step's bytes 57.4 -> 54.3 MB per sample (3 leads), and with the
  GroupNorm change below the step 1.12x (3 leads, faster in 7 of 8
  interleaved rounds) and 1.03x (12 leads, 6 of 8) faster than before both.
* **GroupNorm + SiLU** (:func:`group_norm_silu`): one pass for the
  statistics and a hand-written VJP that keeps only the input and the
  statistics for backward (recomputing the normalised values),
  instead of the half-dozen full-size intermediates autodiff would keep.
  The backward takes every statistic from two time reductions of arrays it
  has anyway (``dz`` and ``x``), never writing the normalised values: XLA:CPU
  runs reductions as library (YNNPACK) fusions that read materialised
  inputs, so each reduction of a derived array cost a full write and read.
  Measured (``bench/hlo_bytes.py``, paper model, 3 leads, batch 32):
  GroupNorm+SiLU went from 28.5 to 17.7 MB of the step's 72.4 -> 61.4 MB
  per sample; the step trained 1.08x faster (median of 10 interleaved
  rounds, 9 of 10 rounds faster). The statistics are per-channel ``(B, C)``
  arrays (each channel holds its group's), summed over time first and spread
  over a group's channels by a small matmul (:func:`_group_mean`), so the
  elementwise loops broadcast them along time only: inference 1.24x (3
  leads) and 1.13x (12 leads), training 1.09x and 1.11x (same process,
  8 interleaved rounds). The bias gradient is summed from the ``(B, C)``
  time sums behind an optimization barrier: XLA otherwise merged the two
  sums into one more pass over ``dz`` (1.0 MB per training sample).
* **Max-pool** (:func:`max_pool`; in evaluation :func:`max_pool_window`):
  the maximum of strided slices, with a hand-written VJP that routes each
  gradient to the first maximum of its window (PyTorch's rule) and writes
  the input's gradient in one loop (:func:`_untap`, shared with the patch
  conv). With the model's mixing
  matmul written 2-D (see ``LeadMixBlock``): training-step bytes 54.3 ->
  52.9 MB per sample (3 leads) and 58.4 -> 57.0 (12 leads), training 1.09x
  and 1.05x faster (2-core XLA:CPU, batch 32, 9 interleaved rounds, faster
  in 7 and 8 of them); the 2-D matmul alone is 1.1 MB of that.
* **Two XLA:CPU rules** shape the rest (``bench/hlo_bytes.py`` shows each
  written array). It never fuses a concatenate along the minor (channel)
  dimension, so patches, the blocks' two depthwise branches and the
  interleaved phases of :func:`_untap` are stacked on an axis before the
  channels and reshaped. And it gives reductions to YNNPACK, which reads
  only written arrays: with the elementwise chain before a reduction it
  takes each broadcast operand as a written full-size array, and it cannot
  read a shifted or sliced view. Where that forced copies, the sums run
  through :func:`_time_sums` (a native variadic reduction that fuses its
  producers: the depthwise kernel gradient), the dropout VJP ends in its
  select, and the head's mean is a matrix-vector product. Together:
  training-step bytes 52.9 -> 39.4 MB per sample (3 leads) and 57.0 ->
  43.5 (12 leads), each step checked for speed against the one before
  (1.0-1.09x, interleaved A/B runs).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from leadmix_jax import threefry

Array = jax.Array


# ----------------------------------------------------------------------------
# Reductions.


def _time_sums(*xs: Array) -> list[Array]:
    """Sums over time of several ``(B, L, C)`` arrays in one pass: ``(B, C)`` each.

    One variadic reduction, which XLA:CPU emits itself, fusing the elementwise
    producers of its operands (products, shifts) into the loop. A plain
    ``x.sum(axis=1)`` goes to a YNNPACK reduction, which needs its operand
    written out first: one more write and read of a ``(B, L, C)`` array per
    product summed. Where the operand is written anyway, the YNNPACK
    reduction is the faster one (GroupNorm statistics through this loop made
    inference ~7% slower). Reducing over (batch, time) here ran ~3x slower
    than over time alone: sum the ``(B, C)`` results over the batch after.
    """
    zeros = [jnp.zeros((), x.dtype) for x in xs]
    return list(lax.reduce(list(xs), zeros, lambda a, b: [u + v for u, v in zip(a, b)], (1,)))


def mean_and_max(t: Array) -> tuple[Array, Array]:
    """Mean and maximum over axis 1 of ``t`` ``(B, N, C)``: ``(B, C)`` each, one reduction.

    The evaluation form of the blocks' token statistics (LCM), a native
    variadic reduction like :func:`_time_sums`. As ``mean`` and ``max``,
    XLA:CPU gave the two reductions to one YNNPACK fusion together with the
    token FFN before them and the block's ``(B, L, C)`` modulation after
    them, which ran slower than XLA's own loops: 12-lead inference 1.02x
    and 1.05x faster this way in two paired runs, 3 leads unchanged (batch
    32, 2-core XLA:CPU). Summed in float32, as ``jnp.mean`` does for
    bfloat16. Not differentiated (training uses ``mean``/``max``), nor
    exported (TFLite has no variadic reduction).
    """
    tf = t.astype(jnp.float32)
    zero, low = jnp.zeros((), jnp.float32), jnp.array(-jnp.inf, jnp.float32)
    total, top = lax.reduce([tf, tf], [zero, low], lambda a, b: [a[0] + b[0], jnp.maximum(a[1], b[1])], (1,))
    return (total / t.shape[1]).astype(t.dtype), top.astype(t.dtype)


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
    # the K products over time (:func:`_time_sums`, which fuses the shifts;
    # YNNPACK's reductions needed a written copy of every shifted x and of
    # each half of the blocks' concatenated g: 49.8 -> 42.5 MB per training
    # sample, 3 leads), then over the batch. The shifts are pad-then-slice,
    # a different HLO from the forward's slice-then-pad: were they identical,
    # CSE would give the forward's shifts a second consumer and XLA would
    # materialise them in the forward pass. Each shift pads x on its own: one
    # padded x shared by the K slices was written out.
    gf = g.astype(jnp.float32)
    xf = x.astype(jnp.float32)
    dk = jnp.stack(_time_sums(*(gf * _shift_padded(xf, o) for o in offs))).sum(axis=1)
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
    loop (paper model's training step 52.9 -> 49.8 MB per sample, together
    with the same change for the blocks' depthwise branches). (A select over
    the tap axis also writes one loop, but XLA:CPU ran it 5-14% slower.)
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
    over a phase axis instead kept every phase as a written array (1.8 MB per
    training sample more).
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
    backward pass of ``lax.reduce_window`` about 8x slower. The VJP routes
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
    then ran ~3x slower per element: 12-lead inference 1.02x faster (batch 32,
    2-core XLA:CPU, 30 paired rounds). Not for training (XLA:CPU's
    ``reduce_window`` backward is slow, and as :func:`max_pool`'s forward it
    read 0.36 MB more per training sample) nor for export (TFLite's int8
    converter failed on it).
    """
    padding = [(0, 0), (pad, pad), (0, 0)]
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, 1), (1, stride, 1), padding)


# ----------------------------------------------------------------------------
# Norms.


def _group_mean(v: Array, groups: int, n: int) -> Array:
    """``(B, C)`` per-channel sums -> ``(B, C)``: each channel gets its group's sum / ``n``.

    A matmul with a block-diagonal ``(C, C)`` matrix of ``1 / n`` rather than a
    reshape-sum-repeat: the result is a per-channel array, so the large
    elementwise loops that apply it broadcast it along time only. Repeating a
    ``(B, G)`` array inside them costs an integer division per element and
    kept XLA:CPU's loops from vectorising (1.5 ns per element).
    """
    # A NumPy constant: built from jnp.arange it was recomputed on every
    # call (XLA:CPU does not fold it): 12-lead inference 1.02x faster.
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


# ----------------------------------------------------------------------------
# Dropout and init.


def dropout(x: Array, rate: float, rng: Array | None) -> Array:
    """Element dropout with an independent mask per element (inverted scaling).

    Identity when ``rng`` is None (evaluation) or ``rate`` is 0. ``x``: any
    shape ``(B, ..., C)``.

    The mask compares 16 random bits per element with ``rate * 2**16``
    (keep probability ``1 - rate`` to within ``2**-17``): one 32-bit draw
    feeds two elements. The bits are ``jax.random``'s threefry bits, computed
    as straight-line elementwise code (:mod:`leadmix_jax.threefry`) that XLA
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


def torch_uniform(fan_in: int):
    """PyTorch's default Conv/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
