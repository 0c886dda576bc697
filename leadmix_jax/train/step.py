"""The pure training step and its optimiser.

:func:`train_step` is a pure function of the state and one global batch;
the feeds (:mod:`leadmix_jax.train.feeds`) compile it inside a loop of ``k``
steps per dispatch, populations (:mod:`leadmix_jax.train.population`) map or
vmap it over their members. Every setting it needs (loss, optimiser) comes
from the config through :func:`bind`.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import optax
from flax import nnx, struct

from leadmix_jax.model.loss import bce_with_logits


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array  # raw uint32 key: dropout key of step s = fold_in(rng, s)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """AdamW (``config.optimizer``) with a constant or warmup-cosine learning rate."""
    o = config.optimizer
    if o.schedule == "constant":
        lr = optax.constant_schedule(o.learning_rate)
    elif o.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0, o.learning_rate, max(o.warmup_steps, 1), max(total_steps, o.warmup_steps + 1)
        )
    else:
        raise ValueError(f"unknown schedule {o.schedule!r}: use 'constant' or 'cosine'")
    tx = optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    if o.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm), tx)
    return tx


# Salt of the lead-mask key: fold_in(dropout key, salt), so the dropout keys of
# the official model's steps stay what they were.
_MASK_KEY_SALT = 0x3A5C


def train_step(
    state: TrainState,
    batch: dict,
    *,
    graphdef,
    tx,
    label_smoothing: float,
    pos_weight: float,
    lead_masks=None,
) -> tuple[TrainState, dict]:
    """One optimiser step on a global batch ``ecg`` (B, T, N), ``label`` (B,).

    ``lead_masks``: for the lead-robust model, a
    :class:`~leadmix_jax.model.lead_robust.MaskSampler`; each example gets a
    ``(12,)`` presence mask drawn here from the step's key (N = 12).
    Returns the new state and ``loss``, ``grad_norm`` (scalars)."""
    key = jax.random.fold_in(state.rng, state.step)
    inputs = (batch["ecg"],)
    if lead_masks is not None:
        inputs += (lead_masks(jax.random.fold_in(key, _MASK_KEY_SALT), batch["ecg"].shape[0]),)

    def loss_fn(params):
        logits = nnx.merge(graphdef, params)(*inputs, rng=key)
        return bce_with_logits(logits, batch["label"], label_smoothing, pos_weight).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def bind(graphdef, tx, loss_cfg, lead_masks=None) -> jax.tree_util.Partial:
    """:func:`train_step` with the model graph, optimiser, ``config.loss`` and
    the lead-mask sampler bound: ``(state, batch) -> (state, metrics)``."""
    return jax.tree_util.Partial(
        train_step,
        graphdef=graphdef,
        tx=tx,
        label_smoothing=loss_cfg.label_smoothing,
        pos_weight=loss_cfg.pos_weight,
        lead_masks=lead_masks,
    )
