"""Functional building blocks of LeadMix-MST, channels-last ``(batch, time, C)``.

Each op has the exact numerics of its PyTorch counterpart in the official
model (zero padding, ``-inf`` max-pool padding, biased variance in the norms)
and, where XLA's backends differ a lot in speed, more than one formulation:

* depthwise conv: ``'shifted'`` (sum of K shifted slices times per-channel
  weights, fused elementwise work) or ``'grouped'`` (``lax.conv_general_dilated``
  with ``feature_group_count=C``). XLA:CPU runs the grouped form ~75x slower.
* strided dense conv: ``'lax'`` (``conv_general_dilated``) or ``'im2col'``
  (K strided slices concatenated on channels, then one matmul).

Both formulations compute the same sums; they differ only in summation
order (float rounding).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


def resolve_impl(impl: str, kind: str) -> str:
    """Picks a conv formulation; ``'auto'`` chooses by backend (see module doc).

    Args:
      impl: ``'auto'`` or an explicit formulation name.
      kind: ``'depthwise'`` (formulations ``shifted``/``grouped``) or
        ``'strided'`` (``im2col``/``lax``).
    """
    choices = {"depthwise": ("shifted", "grouped"), "strided": ("im2col", "lax")}[kind]
    if impl == "auto":
        # Measured on XLA:CPU (bench/model_throughput.py, batch 32, 3 leads):
        # shifted-sum depthwise + library strided convs trained at 112
        # samples/s, shifted + im2col at 98, grouped + library at ~43. The
        # depthwise conv as shifted sums is XLA-fused elementwise work on any
        # backend; strided convs use the library conv (oneDNN, cuDNN, MXU).
        return "shifted" if kind == "depthwise" else "lax"
    if impl not in choices:
        raise ValueError(f"Unknown {kind} conv implementation {impl!r}; use 'auto' or one of {choices}.")
    return impl


def depthwise_conv(x: Array, kernel: Array, dilation: int, impl: str = "auto") -> Array:
    """Depthwise 1-D conv, 'same' length, zero padding ``dilation*(K-1)/2`` per side.

    Args:
      x: ``(B, L, C)``.
      kernel: ``(K, 1, C)`` (Flax layout of a PyTorch ``(C, 1, K)`` weight), K odd.
      dilation: dilation of the kernel.
      impl: ``'auto'``, ``'shifted'`` or ``'grouped'``.

    Returns:
      ``(B, L, C)``.
    """
    k = kernel.shape[0]
    pad = dilation * (k - 1) // 2
    impl = resolve_impl(impl, "depthwise")
    if impl == "grouped":
        return lax.conv_general_dilated(
            x, kernel, window_strides=(1,), padding=[(pad, pad)], rhs_dilation=(dilation,),
            dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=x.shape[-1])
    length = x.shape[1]
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
    out = xp[:, 0:length] * kernel[0, 0]
    for i in range(1, k):
        out = out + xp[:, i * dilation:i * dilation + length] * kernel[i, 0]
    return out


def strided_conv(x: Array, kernel: Array, stride: int, pad: int, impl: str = "auto") -> Array:
    """Dense 1-D conv without bias, symmetric zero padding ``pad``.

    Args:
      x: ``(B, L, Cin)``.
      kernel: ``(K, Cin, Cout)``.
      stride: time stride.
      pad: zeros added on each side of time.
      impl: ``'auto'``, ``'im2col'`` or ``'lax'``.

    Returns:
      ``(B, floor((L + 2 pad - K) / stride) + 1, Cout)``.
    """
    k, cin, cout = kernel.shape
    impl = resolve_impl(impl, "strided")
    if impl == "lax":
        return lax.conv_general_dilated(
            x, kernel, window_strides=(stride,), padding=[(pad, pad)],
            dimension_numbers=("NWC", "WIO", "NWC"))
    out_len = (x.shape[1] + 2 * pad - k) // stride + 1
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
    span = stride * (out_len - 1) + 1
    cols = jnp.concatenate([xp[:, i:i + span:stride] for i in range(k)], axis=-1)
    return cols @ kernel.reshape(k * cin, cout)


def max_pool(x: Array, window: int = 3, stride: int = 2, pad: int = 1) -> Array:
    """Max-pool over time with ``-inf`` padding (PyTorch ``MaxPool1d``). ``(B, L, C)``.

    Written as the maximum of ``window`` strided slices: XLA:CPU runs the
    backward pass of ``lax.reduce_window`` about 8x slower.
    """
    out_len = (x.shape[1] + 2 * pad - window) // stride + 1
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), constant_values=-jnp.inf)
    span = stride * (out_len - 1) + 1
    out = xp[:, 0:span:stride]
    for i in range(1, window):
        out = jnp.maximum(out, xp[:, i:i + span:stride])
    return out


def group_norm(x: Array, scale: Array, bias: Array, groups: int, eps: float = 1e-5) -> Array:
    """GroupNorm over (time x channels of a group), contiguous groups, per sample.

    Statistics in float32 whatever the compute dtype. ``x``: ``(B, L, C)``;
    ``scale``, ``bias``: ``(C,)``. Returns ``x``'s shape and dtype.
    """
    b, length, c = x.shape
    xf = x.astype(jnp.float32).reshape(b, length, groups, c // groups)
    mean = xf.mean(axis=(1, 3), keepdims=True)
    var = jnp.square(xf - mean).mean(axis=(1, 3), keepdims=True)
    y = ((xf - mean) * lax.rsqrt(var + eps)).reshape(b, length, c)
    return (y * scale + bias).astype(x.dtype)


def layer_norm(x: Array, scale: Array, bias: Array, eps: float = 1e-5) -> Array:
    """LayerNorm over the last axis, statistics in float32. Any leading shape."""
    xf = x.astype(jnp.float32)
    mean = xf.mean(axis=-1, keepdims=True)
    var = jnp.square(xf - mean).mean(axis=-1, keepdims=True)
    return ((xf - mean) * lax.rsqrt(var + eps) * scale + bias).astype(x.dtype)


def dropout(x: Array, rate: float, rng: Array | None) -> Array:
    """Element dropout with an independent mask per element (inverted scaling).

    Identity when ``rng`` is None (evaluation) or ``rate`` is 0.
    """
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def torch_uniform(fan_in: int):
    """PyTorch's default Conv/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
