"""LeadMix-MST in Flax NNX, a faithful port of the official PyTorch model.

Input is channels-last ``(batch, time, num_leads)`` (z-scored ECG at 250 Hz),
output one MI logit per example ``(batch,)``. The architecture, its quirks
(double Q/K/V projection, input-independent lead tokens, bounded modulation)
and parameter count follow the official PyTorch model of the paper's
repository (its ``state_dict`` names and shapes); official checkpoints load via
:mod:`leadmix_jax.model.torch_import`.

Dropout is functional: ``model(x, rng=key)`` trains with dropout, ``model(x)``
evaluates without. The module holds only parameters, so a jitted train step
is a pure function of ``nnx.split(model)``'s state.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from leadmix_jax.model import conv, norm
from leadmix_jax.model import dropout as dropout_lib

Array = jax.Array


def torch_uniform(fan_in: int):
    """PyTorch's default Conv/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _param(rngs: nnx.Rngs, init, shape) -> nnx.Param:
    return nnx.Param(init(rngs.params(), shape, jnp.float32))


def _zeros(shape) -> nnx.Param:
    return nnx.Param(jnp.zeros(shape, jnp.float32))


def _ones(shape) -> nnx.Param:
    return nnx.Param(jnp.ones(shape, jnp.float32))


def _cast(p: nnx.Param, dtype) -> Array:
    return p[...].astype(dtype)


class Dense(nnx.Module):
    """Linear layer ``(..., in) -> (..., out)`` with PyTorch's default init."""

    def __init__(self, din: int, dout: int, *, use_bias: bool = True, rngs: nnx.Rngs):
        init = torch_uniform(din)
        self.kernel = _param(rngs, init, (din, dout))
        self.bias = _param(rngs, init, (dout,)) if use_bias else None

    def __call__(self, x: Array) -> Array:
        y = x @ _cast(self.kernel, x.dtype)
        return y + _cast(self.bias, x.dtype) if self.bias is not None else y


class Norm(nnx.Module):
    """Affine parameters of a GroupNorm or LayerNorm over ``num_features``."""

    def __init__(self, num_features: int):
        self.scale = _ones((num_features,))
        self.bias = _zeros((num_features,))

    def group_silu(self, x: Array, groups: int) -> Array:
        """``silu(GroupNorm(x))``, fused (:func:`norm.group_norm_silu`). ``(B, L, C)``."""
        return norm.group_norm_silu(x, self.scale[...], self.bias[...], groups)

    def layer(self, x: Array) -> Array:
        return norm.layer_norm(x, self.scale[...], self.bias[...])


class ConvNorm(nnx.Module):
    """Bias-free strided conv, GroupNorm(8), SiLU: every downsampling step of
    the body (``body.{1,2,3}`` etc.) and the first part of the stem.

    ``(B, L, Cin) -> (B, floor((L + 2 (K // 2) - K) / 2) + 1, Cout)``.
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, *, groups: int, export: bool = False, rngs: nnx.Rngs
    ):
        self.kernel = _param(rngs, torch_uniform(cin * kernel), (kernel, cin, cout))
        self.norm = Norm(cout)
        self.groups = groups
        self.export = export

    def conv(self, x: Array, training: bool = True) -> Array:
        """The stride-2 conv alone (``body.{4i+1}`` of the reference).

        A patch matmul when training, the library conv in evaluation and for
        export (see :class:`LeadMixMST`).
        """
        k = self.kernel.shape[0]
        op = conv.strided_conv_patches if training and not self.export else conv.strided_conv
        return op(x, _cast(self.kernel, x.dtype), 2, k // 2)

    def __call__(self, x: Array, training: bool = True) -> Array:
        return self.norm.group_silu(self.conv(x, training), self.groups)


class Stem(ConvNorm):
    """Stem: stride-2 conv k7, GroupNorm, SiLU, max-pool k3 s2 (``-inf`` padding).

    ``(B, T, N) -> (B, T/4, base)``. In evaluation the conv runs over the
    input's phases (:meth:`conv`) and the pool is ``reduce_window``
    (:func:`conv.max_pool_window`); when training and for export they are
    :class:`ConvNorm`'s conv and strided slices with a hand-written VJP
    (:func:`conv.max_pool`).
    """

    def conv(self, x: Array, training: bool = True) -> Array:
        """The stem's conv. In evaluation (not export), for an even length,
        a stride-1 conv over the input's two phases
        (:func:`conv.strided_conv_phases`): XLA:CPU runs a stride-2 conv
        over a few input channels well below the rate it reaches on the
        wider convs after it."""
        if training or self.export or x.shape[1] % 2:
            return super().conv(x, training)
        return conv.strided_conv_phases(x, _cast(self.kernel, x.dtype), 2, self.kernel.shape[0] // 2)

    def __call__(self, x: Array, training: bool = True) -> Array:
        pool = conv.max_pool if training or self.export else conv.max_pool_window
        return pool(super().__call__(x, training))


class TokenAttention(nnx.Module):
    """The MHA of the lead tokens (``torch.nn.MultiheadAttention`` numerics).

    Kernels use Flax's DenseGeneral layouts: ``query/key/value`` kernel
    ``(C, heads, d)`` and bias ``(heads, d)``; ``out`` kernel ``(heads, d, C)``.
    """

    def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"channels {dim} not divisible by heads {heads}")
        d = dim // heads
        # xavier-uniform over the whole stacked (3C, C) in-projection.
        bound = math.sqrt(6.0 / (dim + 3 * dim))
        xavier = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)
        self.query = _param(rngs, xavier, (dim, heads, d))
        self.key = _param(rngs, xavier, (dim, heads, d))
        self.value = _param(rngs, xavier, (dim, heads, d))
        self.query_bias = _zeros((heads, d))
        self.key_bias = _zeros((heads, d))
        self.value_bias = _zeros((heads, d))
        self.out = _param(rngs, torch_uniform(dim), (heads, d, dim))
        self.out_bias = _zeros((dim,))

    def __call__(self, q: Array, k: Array, v: Array, rate: float, rng: Array | None) -> Array:
        """q ``(N, C)`` (the same for every sample), k, v ``(B, N, C)`` -> ``(B, N, C)``."""
        dt = k.dtype
        qh = jnp.einsum("nc,chd->nhd", q, _cast(self.query, dt)) + _cast(self.query_bias, dt)
        kh = jnp.einsum("bnc,chd->bnhd", k, _cast(self.key, dt)) + _cast(self.key_bias, dt)
        vh = jnp.einsum("bnc,chd->bnhd", v, _cast(self.value, dt)) + _cast(self.value_bias, dt)
        scores = jnp.einsum("nhd,bmhd->bhnm", qh, kh) / math.sqrt(qh.shape[-1])
        probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(dt)
        probs = dropout_lib.dropout(probs, rate, rng)
        ctx = jnp.einsum("bhnm,bmhd->bnhd", probs, vh)
        return jnp.einsum("bnhd,hdc->bnc", ctx, _cast(self.out, dt)) + _cast(self.out_bias, dt)


class LeadMixBlock(nnx.Module):
    """MS-DSC -> LTA -> LCM with a residual; ``(B, L, C) -> (B, L, C)``."""

    def __init__(
        self,
        channels: int,
        num_leads: int,
        *,
        heads: int,
        dropout: float,
        groups: int,
        export: bool = False,
        rngs: nnx.Rngs,
    ):
        c, half, hidden = channels, channels // 2, max(1, channels // 8)
        if c % 2:
            raise ValueError(f"LeadMixBlock needs an even channel count, got {c}")
        self.ms1_dw = _param(rngs, torch_uniform(3), (3, 1, c))
        self.ms1_pw = _param(rngs, torch_uniform(c), (c, half))
        self.ms2_dw = _param(rngs, torch_uniform(3), (3, 1, c))
        self.ms2_pw = _param(rngs, torch_uniform(c), (c, half))
        self.proj = _param(rngs, torch_uniform(c), (c, c))
        self.gn = Norm(c)
        self.se_fc1 = Dense(c, hidden, rngs=rngs)
        self.se_fc2 = Dense(hidden, c, rngs=rngs)
        self.lead_embed = _param(rngs, jax.random.normal, (num_leads, c))
        self.qkv = Dense(c, 3 * c, use_bias=False, rngs=rngs)
        self.norm_tokens1 = Norm(c)
        self.mha = TokenAttention(c, heads, rngs=rngs)
        self.norm_tokens2 = Norm(c)
        self.ffn1 = Dense(c, 2 * c, rngs=rngs)
        self.ffn2 = Dense(2 * c, c, rngs=rngs)
        self.rate = dropout
        self.groups = groups
        self.export = export

    def mixing_kernel(self, dtype) -> Array:
        """The two pointwise convs and ``proj`` folded into one ``(2C, C)`` matrix.

        ``concat(dw1 @ pw1, dw2 @ pw2) @ proj == concat(dw1, dw2) @ W`` with
        ``W = [pw1 @ proj[:C/2]; pw2 @ proj[C/2:]]``: one matmul instead of three
        and two fewer ``(B, L, C/2..C)`` intermediates kept for backward.
        """
        half = self.proj.shape[0] // 2
        proj = self.proj[...]
        w = jnp.concatenate([self.ms1_pw[...] @ proj[:half], self.ms2_pw[...] @ proj[half:]], axis=0)
        return w.astype(dtype)

    def __call__(self, x: Array, rng: Array | None = None) -> Array:
        """``(B, L, C) -> (B, L, C)``; ``rng`` is the dropout key (None: eval)."""
        dt = x.dtype
        keys = jax.random.split(rng, 3) if rng is not None else (None,) * 3
        # (a) MS-DSC: two dilated depthwise branches, pointwise convs and proj.
        dw = conv.depthwise_conv_grouped if self.export else conv.depthwise_conv
        # Stacked on a new axis before the channels, not concatenated along
        # them: XLA:CPU never fuses a minor-dimension concatenate, so that
        # wrote both branches and then copied them (see conv._patches).
        # Reshaped straight to 2-D for a 2-D matmul: the weight gradient of a
        # (B, L, 2C) @ (2C, C) product is a dot_general over (B, L) that
        # XLA:CPU fed with a transposed copy of the output gradient (one more
        # pass over it per block).
        b, length, _ = x.shape
        d = jnp.stack([dw(x, _cast(self.ms1_dw, dt), 1), dw(x, _cast(self.ms2_dw, dt), 2)], axis=2)
        p = (d.reshape(b * length, -1) @ self.mixing_kernel(dt)).reshape(b, length, -1)
        y = self.gn.group_silu(p, self.groups)
        gate = jax.nn.sigmoid(self.se_fc2(jax.nn.relu(self.se_fc1(y.mean(axis=1)))))
        y = dropout_lib.dropout(y * gate[:, None, :], self.rate, keys[0])
        # (b) LTA: learned lead tokens; the input enters only through g.
        g = y.mean(axis=1)  # (B, C)
        t0 = _cast(self.lead_embed, dt)  # (N, C)
        q, k, v = jnp.split(self.qkv(t0), 3, axis=-1)  # (N, C) each
        k = k[None] + g[:, None, :]  # (B, N, C)
        v = v[None] + g[:, None, :]
        ln1 = self.norm_tokens1.layer
        t1 = t0 + self.mha(ln1(q), ln1(k), ln1(v), self.rate, keys[1])
        h = jax.nn.silu(self.ffn1(self.norm_tokens2.layer(t1)))
        t2 = t1 + self.ffn2(dropout_lib.dropout(h, self.rate, keys[2]))
        # (c) LCM: bounded per-channel scale and shift from the tokens.
        th = jnp.tanh(t2)
        # Evaluation: one variadic reduction (:func:`norm.mean_and_max`).
        # Training keeps mean/max, whose gradients JAX defines (ties of the
        # max split evenly), and so does export (TFLite has no variadic
        # reduction).
        if rng is not None or self.export:
            scale, shift = th.mean(axis=1), th.max(axis=1)  # (B, C)
        else:
            scale, shift = norm.mean_and_max(th)
        y = y * (1 + 0.1 * scale[:, None, :]) + 0.1 * shift[:, None, :]
        return x + y


class LeadMixMST(nnx.Module):
    """LeadMix-MST: ``(B, T, num_leads) -> (B,)`` MI logits.

    Conv formulations are chosen per use, not configured (see
    :mod:`leadmix_jax.model.conv`; the measurements are in
    ``docs/formulations.md``): for training and inference on any XLA backend
    (CPU, GPU, TPU) the depthwise convs are shifted sums with a hand-written
    VJP, because XLA's grouped dilated conv is slow on CPU and on GPU (public
    reports); ``export=True`` swaps in the grouped library
    conv, which TFLite maps to ``DEPTHWISE_CONV_2D``. Both give the same
    numbers up to float rounding, and the parameter tree is the same, so a
    trained model is exported by rebuilding it with ``export=True`` and
    loading its parameters. The strided convs (stem, downsampling) are patch
    matmuls when training (with a dropout key): differentiated inside the
    training loop's ``while`` loop the library conv was several times slower
    on XLA:CPU, and under ``jax.vmap`` over a population's members the matmul
    becomes a batched matmul where a library conv becomes a grouped conv. In
    evaluation (no key) and for export (TFLite ``CONV_2D``) they are library
    convs (in evaluation the stem's over its input's phases, see
    :class:`Stem`), the faster inference form on CPU and GPU. Both give the
    same numbers up to float rounding.

    Args:
      num_leads: input channels (1-12).
      base: channels after the stem (48 in the paper); doubled per stage.
      depth: number of (block, downsample) stages.
      heads: attention heads in every block.
      dropout: rate of every dropout (block, attention, FFN, head).
      dtype: compute dtype (``jnp.float32`` or ``jnp.bfloat16``); parameters
        stay float32 and norms/softmax compute their statistics in float32.
      norm_groups: GroupNorm groups (8 in the reference).
      export: use the export (TFLite) formulation of the depthwise convs.
      rngs: parameter initialisation keys.

    Stage outputs (for parity checks against the reference's ``stem`` and
    ``body.<i>``) are the outputs of ``stem``, ``blocks[i]``, ``downs[i].conv``
    and ``downs[i]``; tests collect them with ``nnx.capture(...,
    method_outputs=nnx.Intermediate)`` rather than the model returning them.
    """

    def __init__(
        self,
        num_leads: int,
        *,
        base: int = 48,
        depth: int = 3,
        heads: int = 4,
        dropout: float = 0.1,
        dtype: Any = jnp.float32,
        norm_groups: int = 8,
        export: bool = False,
        rngs: nnx.Rngs,
    ):
        if not 1 <= num_leads:
            raise ValueError(f"num_leads must be >= 1, got {num_leads}")
        self.num_leads, self.depth = num_leads, depth
        self.dtype, self.rate = dtype, dropout
        self.stem = Stem(num_leads, base, 7, groups=norm_groups, export=export, rngs=rngs)
        blocks, downs = [], []
        c = base
        for _ in range(depth):
            blocks.append(
                LeadMixBlock(
                    c, num_leads, heads=heads, dropout=dropout, groups=norm_groups, export=export, rngs=rngs
                )
            )
            downs.append(ConvNorm(c, 2 * c, 3, groups=norm_groups, export=export, rngs=rngs))
            c *= 2
        self.blocks = nnx.List(blocks)
        self.downs = nnx.List(downs)
        self.fc = Dense(c, 1, rngs=rngs)

    def __call__(self, x: Array, *, rng: Array | None = None) -> Array:
        """Runs the model.

        Args:
          x: ``(B, T, num_leads)`` ECG windows (T = 2500 in the paper).
          rng: dropout key; ``None`` evaluates (no dropout).

        Returns:
          ``(B,)`` float32 logits.
        """
        keys = list(jax.random.split(rng, self.depth + 1)) if rng is not None else [None] * (self.depth + 1)
        return self.head(self.features(x, keys[:-1]), keys[-1])

    def features(self, x: Array, keys=None) -> Array:
        """The last stage's output ``(B, T / 32, C)`` (before pooling): what
        Grad-CAM weighs. ``keys``: one dropout key per stage, or None to evaluate."""
        if x.ndim != 3 or x.shape[-1] != self.num_leads:
            raise ValueError(f"expected input (batch, time, {self.num_leads}), got {x.shape}")
        keys = keys if keys is not None else [None] * self.depth
        training = keys[0] is not None
        h = self.stem(x.astype(self.dtype), training)
        for i, (block, down) in enumerate(zip(self.blocks, self.downs)):
            h = down(block(h, keys[i]), training)
        return h

    def head(self, h: Array, key: Array | None = None) -> Array:
        """``(B,)`` float32 logits of the last stage's output ``h`` (mean over
        time, dropout with ``key``, the linear layer)."""
        training = key is not None
        # Training: the mean over time as a matrix-vector product. As a
        # reduction, XLA:CPU gave it to YNNPACK together with the last
        # GroupNorm+SiLU, which then took every broadcast operand of that
        # elementwise chain (statistics, affine parameters, constants) as a
        # written (B, L, C) array. Evaluation keeps the reduction: there the
        # product's transposed copy of h was the slower one. Summed in
        # float32 and divided after, like jnp.mean of bfloat16.
        if training:
            ones = jnp.ones(h.shape[1:2], h.dtype)
            total = jnp.einsum("blc,l->bc", h, ones, preferred_element_type=jnp.float32)
        else:
            total = h.astype(jnp.float32).sum(axis=1)
        pooled = dropout_lib.dropout((total / h.shape[1]).astype(h.dtype), self.rate, key)
        return self.fc(pooled)[:, 0].astype(jnp.float32)


def count_params(model: nnx.Module) -> int:
    """Number of scalar parameters of an NNX module."""
    state = nnx.state(model, nnx.Param)
    return sum(int(x.size) for x in jax.tree.leaves(state))
