"""One LeadMix-MST for every lead subset (issue #12): the lead-robust variant.

Wearables record whichever 1-3 leads their electrodes give; instead of one
trained model per subset, :class:`LeadRobustMST` takes all 12 leads in the
canonical order ``I, II, III, aVR, aVL, aVF, V1 .. V6`` plus a lead-presence
mask and is trained with random lead-subset masking (as the lead-agnostic
SSL ECG models: fairseq-signals, ECG-FM, ST-MEM).

Design: how the model knows which leads are present, and why absent leads
cannot matter.

1. **Zeroing first.** The z-scored input ``x`` ``(B, T, 12)`` goes through
   ``where(mask, x, 0)`` before anything else touches it (``where``, not a
   product, so that even a NaN or Inf in an absent lead has no effect). An
   absent lead's values therefore reach no parameter and no logit: tested
   by changing them and comparing logits bit for bit.
2. **Mask channels.** The mask is appended to the signal as 12 more input
   channels, constant over time: ``concat(where(mask, x, 0), mask)``
   ``(B, T, 24)``. The stem's convolution sees a lead's signal and its
   presence flag side by side, so "this lead is absent" (flag 0, signal 0)
   differs from "this lead is present and flat" (flag 1, signal 0); the
   flags give a per-subset bias to every stem channel. (Learned
   lead-identity embeddings are implicit: each input channel has its own
   stem weights, so channel position is lead identity.)
3. **Renormalisation.** The stem's GroupNorm renormalises its output per
   example, so the activation scale does not shrink with the number of
   present leads (a 1-lead input is not a 12-lead input at 1/12 amplitude).
4. **The official architecture, unchanged.** The core is the official
   :class:`~leadmix_jax.model.leadmix.LeadMixMST` built with 24 input channels; its
   lead tokens (input-independent in the official model) become 24 learned
   tokens. No line of ``model.py`` changes; the variant is selected by
   ``config.model.variant = 'lead_robust'`` (:func:`is_lead_robust`).

Training (:class:`MaskSampler`): every example of every step gets its own
mask, drawn on the device inside the compiled train step from the step's
key (so grain and device-resident input behave alike; the batch carries all
12 leads). With probability ``paper_set_prob`` the mask is one of the
paper's lead sets (uniform among ``paper_sets``), otherwise a uniformly
random subset whose size is uniform in ``[random_min_leads,
random_max_leads]``. Evaluation and prediction give one fixed mask (a lead
set, or the leads a record has).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.model.leadmix import LeadMixMST

Array = jax.Array
NUM_LEADS = leads_lib.NUM_LEADS  # 12
VARIANT = "lead_robust"


def is_lead_robust(model_cfg: Mapping[str, Any] | None) -> bool:
    """Whether a ``config.model`` mapping (or a checkpoint's ``meta['model']``) is the lead-robust variant."""
    return bool(model_cfg) and dict(model_cfg).get("variant", "official") == VARIANT


def lead_mask(subset: str | Sequence[str]) -> np.ndarray:
    """``(12,)`` float32 presence mask (canonical order) of a lead spec
    (``'inferior'``, ``'II,III,aVF'``, a list of names)."""
    mask = np.zeros((NUM_LEADS,), np.float32)
    mask[list(leads_lib.lead_indices(subset))] = 1.0
    return mask


def to_canonical(x, leads: Sequence[str]):
    """Windows ``(..., T, N)`` of ``leads`` -> ``(..., T, 12)`` in canonical
    lead order, absent leads zero (the model's mask zeroes them anyway).
    numpy in, numpy out; JAX in, JAX out. A concatenation of columns, not a
    scatter: exact, and one CONCATENATION op when exported to TFLite."""
    xp = jnp if isinstance(x, jax.Array) else np
    where = {lead: k for k, lead in enumerate(leads_lib.parse_leads(leads))}
    zero = xp.zeros_like(x[..., :1])
    cols = [x[..., where[n] : where[n] + 1] if n in where else zero for n in leads_lib.CANONICAL_LEADS]
    return xp.concatenate(cols, axis=-1)


def mask_leads(mask: np.ndarray) -> tuple[str, ...]:
    """Canonical names of the leads present in a ``(12,)`` mask."""
    return tuple(n for n, m in zip(leads_lib.CANONICAL_LEADS, np.asarray(mask)) if m > 0)


class LeadRobustMST(nnx.Module):
    """LeadMix-MST for any subset of the 12 leads: ``(B, T, 12), mask -> (B,)`` logits.

    Args:
      base, depth, heads, dropout, dtype, norm_groups, export: as
        :class:`~leadmix_jax.model.leadmix.LeadMixMST` (passed through unchanged).
      rngs: parameter initialisation keys.

    The parameters are those of ``LeadMixMST(24, ...)`` under ``core``.
    """

    def __init__(self, *, rngs: nnx.Rngs, **kwargs):
        self.core = LeadMixMST(2 * NUM_LEADS, rngs=rngs, **kwargs)

    def __call__(self, x: Array, mask: Array | None = None, *, rng: Array | None = None) -> Array:
        """Runs the model.

        Args:
          x: ``(B, T, 12)`` z-scored ECG, canonical lead order; absent leads
            may hold anything (they are zeroed here).
          mask: ``(B, 12)`` or ``(12,)`` presence (1 present, 0 absent);
            ``None`` = all 12 present.
          rng: dropout key; ``None`` evaluates.

        Returns:
          ``(B,)`` float32 logits.
        """
        return self.core(self.core_input(x, mask), rng=rng)

    def core_input(self, x: Array, mask: Array | None = None) -> Array:
        """``(B, T, 24)``: the signal with absent leads zeroed, then the presence flags."""
        if x.ndim != 3 or x.shape[-1] != NUM_LEADS:
            raise ValueError(
                f"expected input (batch, time, {NUM_LEADS}) in canonical lead order, got {x.shape}"
            )
        b, t, _ = x.shape
        if mask is None:
            mask = jnp.ones((NUM_LEADS,), jnp.float32)
        mask = jnp.broadcast_to(jnp.asarray(mask, jnp.float32), (b, NUM_LEADS))
        present = mask[:, None, :] > 0  # (B, 1, 12)
        signal = jnp.where(present, x.astype(jnp.float32), 0.0)  # absent leads: exactly 0
        flags = jnp.broadcast_to(present.astype(jnp.float32), (b, t, NUM_LEADS))
        return jnp.concatenate([signal, flags], axis=-1)

    def features(self, x: Array, mask: Array | None = None) -> Array:
        """The core's last stage output (evaluation): see :meth:`LeadMixMST.features`."""
        return self.core.features(self.core_input(x, mask))

    def head(self, h: Array) -> Array:
        return self.core.head(h)


# ----------------------------------------------------------------------------
# Masks for training.


@dataclasses.dataclass(frozen=True)
class MaskSampler:
    """Random lead-presence masks, one per example, drawn inside the compiled step.

    Fields are ``config.lead_robust``: ``paper_sets`` (comma-separated set
    names), ``paper_set_prob`` (probability of a paper set; otherwise a
    random subset), ``random_min_leads``/``random_max_leads`` (size range of
    random subsets, uniform in ``[min, max]``).
    """

    set_masks: tuple[tuple[float, ...], ...]  # (S, 12) masks of the paper sets drawn from
    paper_set_prob: float
    random_min_leads: int
    random_max_leads: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "MaskSampler":
        cfg = dict(cfg)
        names = [
            s
            for s in str(cfg["paper_sets"]).split(";" if ";" in str(cfg["paper_sets"]) else ",")
            if s.strip()
        ]
        lo, hi = int(cfg["random_min_leads"]), int(cfg["random_max_leads"])
        p = float(cfg["paper_set_prob"])
        if not 1 <= lo <= hi <= NUM_LEADS:
            raise ValueError(
                f"lead_robust.random_min_leads/random_max_leads = {lo}/{hi}: need 1 <= min <= max <= 12"
            )
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"lead_robust.paper_set_prob = {p}: need a probability in [0, 1]")
        if p > 0 and not names:
            raise ValueError("lead_robust.paper_sets is empty but paper_set_prob > 0")
        masks = tuple(tuple(float(v) for v in lead_mask(n.strip())) for n in names)
        return cls(masks, p, lo, hi)

    def __call__(self, key: Array, batch: int) -> Array:
        """``(batch, 12)`` float32 masks, each with at least one lead present."""
        k_choice, k_set, k_size, k_perm = jax.random.split(key, 4)
        # Random subset of size k: the k lowest of 12 uniform scores.
        size = jax.random.randint(k_size, (batch, 1), self.random_min_leads, self.random_max_leads + 1)
        scores = jax.random.uniform(k_perm, (batch, NUM_LEADS))
        rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
        random_masks = (rank < size).astype(jnp.float32)
        if not self.set_masks or self.paper_set_prob <= 0:
            return random_masks
        sets = jnp.asarray(self.set_masks, jnp.float32)
        paper = sets[jax.random.randint(k_set, (batch,), 0, sets.shape[0])]
        use_paper = jax.random.uniform(k_choice, (batch, 1)) < self.paper_set_prob
        return jnp.where(use_paper, paper, random_masks)


def sampler_from_config(config) -> MaskSampler | None:
    """The training mask sampler of an experiment config (None for the official model)."""
    if not is_lead_robust(config.model):
        return None
    return MaskSampler.from_config(config.lead_robust)
