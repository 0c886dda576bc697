"""Attributions of the MI logit to each lead and time sample of a window.

Three methods, each one jitted call per batch of windows on the ``data``
mesh (batches split over the devices, parameters replicated):

* **Integrated Gradients** (Sundararajan et al., 2017): ``(x - x0) * mean
  over alpha of grad f(x0 + alpha (x - x0))``, with the midpoint rule over
  ``ig_steps`` values of alpha (a ``lax.scan``, so memory does not grow with
  the steps). Baseline ``x0``: white Gaussian noise of each lead's training
  std (N(0, 1) in z-score units; one fixed draw of ``(T, N)``, seed
  ``seed``, the same for every window): the power of an ECG lead without
  any of its morphology. Not the all-zero window: LeadMix-MST is blind to
  the input's scale (its first convolution has no bias and a GroupNorm
  follows it, so ``f(a x) = f(x)`` for every ``a > 0``), and on the straight
  path from zero the logit changes only within a tiny neighbourhood of zero,
  where no quadrature resolves it (on the demo model the sums missed
  ``f(x) - f(0)`` by 80-105 %). The attributions sum to ``f(x) - f(x0)``
  (completeness; :func:`leadmix_jax.evaluate.attribution_checks.completeness`).
* **Grad-CAM** (Selvaraju et al., 2017) on the last convolutional stage (its
  output, before pooling, ``T/32`` steps): channel weights are the gradients
  averaged over time; the rectified weighted sum is brought to the input's
  2,500 samples by linear interpolation. The stages mix the leads, so
  Grad-CAM is a time map; it is split among the leads at each time in
  proportion to ``|x * grad f(x)|`` (as Guided Grad-CAM multiplies by a
  gradient map), so it sums over leads to the time map.
* **SmoothGrad** (Smilkov et al., 2017): the gradient averaged over
  ``smooth_samples`` copies of the window with Gaussian noise of
  ``smooth_sigma`` (in z-score units, i.e. that fraction of each lead's
  training std), times the input.

Windows and attributions are ``(B, T, N)`` in the model's input leads (a
lead-robust model: the 12 canonical leads, absent ones exactly 0). Inputs
are z-scored windows; the logits are the model's.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from leadmix_jax import mesh as mesh_lib
from leadmix_jax.model import inference

METHODS = ("integrated_gradients", "grad_cam", "smoothgrad")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the attributions are computed (``config.explain``)."""

    ig_steps: int = 64
    smooth_samples: int = 16
    smooth_sigma: float = 0.15
    seed: int = 0

    @classmethod
    def from_config(cls, cfg) -> "Settings":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(cfg).items() if k in fields})


def _logit_fn(graphdef, params, mask):
    model = nnx.merge(graphdef, params)
    if mask is None:
        return model, lambda x: model(x)
    return model, lambda x: model(x, mask)


def baseline(shape, seed: int = 0) -> jax.Array:
    """IG's baseline window ``(T, N)``: N(0, 1) noise, fixed by ``seed``."""
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def integrated_gradients(graphdef, params, x, mask=None, *, steps: int = 64, seed: int = 0):
    """``(B, T, N)`` IG attributions of windows ``x`` against :func:`baseline`."""
    _, f = _logit_fn(graphdef, params, mask)
    grad = jax.grad(lambda z: f(z).sum())
    x0 = baseline(x.shape[1:], seed)

    def accumulate(total, alpha):
        return total + grad(x0 + alpha * (x - x0)), None

    alphas = (jnp.arange(steps, dtype=jnp.float32) + 0.5) / steps
    total, _ = jax.lax.scan(accumulate, jnp.zeros_like(x), alphas)
    return (x - x0) * total / steps


def grad_cam(graphdef, params, x, mask=None):
    """``(B, T, N)``: the Grad-CAM time map of the last stage, split among leads by ``|x * grad|``."""
    model, f = _logit_fn(graphdef, params, mask)
    feats = (lambda z: model.features(z)) if mask is None else (lambda z: model.features(z, mask))
    h = feats(x)  # (B, L, C)
    dh = jax.grad(lambda a: model.head(a).sum())(h)
    cam = jax.nn.relu(jnp.einsum("blc,bc->bl", h.astype(jnp.float32), dh.astype(jnp.float32).mean(axis=1)))
    t = x.shape[1]
    centres = (jnp.arange(cam.shape[1]) + 0.5) * t / cam.shape[1] - 0.5  # each feature step's input time
    time_map = jax.vmap(lambda c: jnp.interp(jnp.arange(t, dtype=jnp.float32), centres, c))(cam)  # (B, T)
    saliency = jnp.abs(x * jax.grad(lambda z: f(z).sum())(x))
    share = saliency / jnp.maximum(saliency.sum(axis=-1, keepdims=True), 1e-12)
    return time_map[..., None] * share


def smoothgrad(graphdef, params, x, mask=None, *, samples: int = 16, sigma: float = 0.15, seed: int = 0):
    """``(B, T, N)``: input times the gradient averaged over noisy copies of ``x``."""
    _, f = _logit_fn(graphdef, params, mask)
    grad = jax.grad(lambda z: f(z).sum())
    keys = jax.random.split(jax.random.key(seed), samples)

    def accumulate(total, key):
        return total + grad(x + sigma * jax.random.normal(key, x.shape, x.dtype)), None

    total, _ = jax.lax.scan(accumulate, jnp.zeros_like(x), keys)
    return x * total / samples


@functools.lru_cache(maxsize=16)
def _jitted(method: str, graphdef, mesh, settings: Settings, masked: bool):
    fn = {
        "integrated_gradients": functools.partial(
            integrated_gradients, steps=settings.ig_steps, seed=settings.seed
        ),
        "grad_cam": grad_cam,
        "smoothgrad": functools.partial(
            smoothgrad, samples=settings.smooth_samples, sigma=settings.smooth_sigma, seed=settings.seed
        ),
    }[method]
    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(mesh_lib.AXIS))
    if masked:
        return jax.jit(
            lambda p, x, m: fn(graphdef, p, x, m), in_shardings=(rep, split, rep), out_shardings=split
        )
    return jax.jit(lambda p, x: fn(graphdef, p, x), in_shardings=(rep, split), out_shardings=split)


@dataclasses.dataclass
class Explainer:
    """Attributions of one restored model (:class:`~leadmix_jax.evaluate.restore.RestoredModel`)."""

    graphdef: object
    params: object
    mesh: object
    lead_mask: np.ndarray | None = None  # (12,) for a lead-robust model
    settings: Settings = Settings()

    @classmethod
    def of(cls, model, settings: Settings = Settings()) -> "Explainer":
        runner = model.runner
        return cls(runner.graphdef, model.params, runner.mesh, runner.lead_mask, settings)

    def attribute(self, method: str, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """``(B, T, N)`` float32 attributions of z-scored windows ``x`` ``(B, T, N)``
        by ``method`` (one of :data:`METHODS`), in padded batches (one compiled shape)."""
        if method not in METHODS:
            raise ValueError(f"unknown attribution method {method!r}: use one of {', '.join(METHODS)}")
        fn = _jitted(method, self.graphdef, self.mesh, self.settings, self.lead_mask is not None)
        out = []
        for chunk, n in inference.padded_batches(x, batch_size, self.mesh.size):
            args = (self.params, chunk) + ((self.lead_mask,) if self.lead_mask is not None else ())
            out.append(np.asarray(fn(*args))[:n])
        return np.concatenate(out) if out else np.zeros((0, *x.shape[1:]), np.float32)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(B,)`` logits of z-scored windows (unbatched: for the checks)."""
        _, f = _logit_fn(self.graphdef, self.params, self.lead_mask)
        return np.asarray(jax.jit(f)(jnp.asarray(x, jnp.float32)))


def lead_importance(attr: np.ndarray) -> np.ndarray:
    """``(N,)``: each lead's share of the total ``|attribution|`` of windows ``(B, T, N)``."""
    mass = np.abs(np.asarray(attr, np.float64)).sum(axis=tuple(range(attr.ndim - 1)))
    return mass / mass.sum() if mass.sum() > 0 else mass


def top_segments(attr: np.ndarray, fs: float, seconds: float = 0.2, top: int = 5) -> list[dict]:
    """The ``top`` non-overlapping ``seconds``-long segments of one window
    ``(T, N)`` with the most ``|attribution|`` over all leads: start and end
    in s, share of the window's total, and the lead carrying most of it."""
    a = np.abs(np.asarray(attr, np.float64))
    width = max(1, int(round(seconds * fs)))
    n = a.shape[0] // width
    blocks = a[: n * width].reshape(n, width, a.shape[1]).sum(axis=1)  # (n, N)
    total = a.sum()
    order = np.argsort(-blocks.sum(axis=1))[:top]
    return [
        {
            "start_s": round(i * width / fs, 3),
            "end_s": round((i + 1) * width / fs, 3),
            "share": float(blocks[i].sum() / total) if total > 0 else 0.0,
            "lead_index": int(np.argmax(blocks[i])),
        }
        for i in order
    ]
