"""Building LeadMix-MST from its settings: the official model or the lead-robust variant.

The settings are ``config.model`` at training time and ``meta['model']`` of
every checkpoint afterwards, so evaluation, prediction and export rebuild the
trained architecture without the experiment config.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from leadmix_jax.model import lead_robust
from leadmix_jax.model.leadmix import LeadMixMST


def build_model(model_cfg: Mapping[str, Any], num_leads: int, seed: int | jax.Array = 0):
    """LeadMix-MST for ``num_leads`` leads from a ``config.model`` mapping
    (or a checkpoint's ``meta['model']``); with ``variant='lead_robust'`` the
    lead-robust :class:`~leadmix_jax.model.lead_robust.LeadRobustMST` (always the 12
    canonical leads plus a presence mask; ``num_leads`` must be 12).
    ``seed``: an int or a typed key (``jax.random.key(int)`` is the same model).

    Settings the model no longer accepts (e.g. formulation options of older
    checkpoints) are ignored, so old checkpoints keep loading.
    """
    cfg = dict(model_cfg)
    cfg["dtype"] = jnp.dtype(cfg.get("dtype", "float32"))
    accepted = set(inspect.signature(LeadMixMST.__init__).parameters) - {"self", "num_leads", "rngs"}
    kwargs = {k: v for k, v in cfg.items() if k in accepted}
    if lead_robust.is_lead_robust(cfg):
        if num_leads != lead_robust.NUM_LEADS:
            raise ValueError(
                f"the lead-robust model takes all 12 leads (and a mask), got num_leads={num_leads}"
            )
        return lead_robust.LeadRobustMST(**kwargs, rngs=nnx.Rngs(seed))
    return LeadMixMST(num_leads, **kwargs, rngs=nnx.Rngs(seed))


def graph_and_shapes(model_cfg: Mapping[str, Any], num_leads: int):
    """``(graphdef, parameter shapes)`` of the model, without allocating parameters."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: build_model(model_cfg, num_leads)), nnx.Param)
    shapes = jax.eval_shape(lambda: nnx.state(build_model(model_cfg, num_leads), nnx.Param))
    return graphdef, shapes
