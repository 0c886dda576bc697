"""Test helper: stage outputs of LeadMixMST for parity checks."""

from flax import nnx

from leadmix_jax import layers


def stage_outputs(model, x):
    """Logits and the reference's stage outputs (``stem``, ``body.<i>``), channels-last.

    Collected with ``nnx.capture`` from the outputs of ``stem``, ``blocks[i]``,
    ``downs[i].conv`` and ``downs[i]``; the GroupNorm stage ``body.{4i+2}``
    (fused with its SiLU in the model) is recomputed from ``body.{4i+1}``.
    """
    logits, inter = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
    acts = {"stem": inter["stem"]["__call__"][-1]}
    for i, down in enumerate(model.downs):
        conv = inter["downs"][i]["conv"][-1]
        acts[f"body.{4 * i}"] = inter["blocks"][i]["__call__"][-1]
        acts[f"body.{4 * i + 1}"] = conv
        acts[f"body.{4 * i + 2}"] = layers.group_norm(
            conv, down.norm.scale[...], down.norm.bias[...], down.groups
        )
        acts[f"body.{4 * i + 3}"] = inter["downs"][i]["__call__"][-1]
    return logits, acts
