"""The training objective: binary cross-entropy on the MI logit."""

from __future__ import annotations

import jax


def bce_with_logits(
    logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0, pos_weight: float = 1.0
) -> jax.Array:
    """Per-example binary cross-entropy with logits, ``(B,) -> (B,)``.

    Label smoothing maps targets to ``y (1 - s) + s / 2``; ``pos_weight``
    scales the positive term (PyTorch's ``BCEWithLogitsLoss(pos_weight=...)``).
    """
    y = labels * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return pos_weight * y * jax.nn.softplus(-logits) + (1.0 - y) * jax.nn.softplus(logits)
