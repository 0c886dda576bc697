"""Test helper: stage outputs of LeadMixMST for parity checks."""

from flax import nnx

from leadmix_jax.model import norm


def forward(model, x, rng=None):
    """``model(x, rng=rng)`` compiled as one program (eager calls of the whole
    model compile every op on its own: minutes on 2 cores)."""
    return _forward(model, x, rng)


@nnx.jit
def _forward(model, x, rng):
    return model(x, rng=rng)


def stage_outputs_jit(model, x):
    """:func:`stage_outputs` compiled as one program."""
    return _stage_outputs_jit(model, x)


@nnx.jit
def _stage_outputs_jit(model, x):
    return stage_outputs(model, x)


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
        acts[f"body.{4 * i + 2}"] = norm.group_norm(
            conv, down.norm.scale[...], down.norm.bias[...], down.groups
        )
        acts[f"body.{4 * i + 3}"] = inter["downs"][i]["__call__"][-1]
    return logits, acts
