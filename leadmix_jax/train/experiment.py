"""What one training run is made of, built once from its config: leads, mesh,
model graph, optimiser, step counts and the bound train step."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh

from leadmix_jax import checkpointing
from leadmix_jax import mesh as mesh_lib
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.model import inference, lead_robust, variants
from leadmix_jax.train import step as step_lib
from leadmix_jax.train.step import TrainState


def check_batch_divides(global_batch_size: int) -> None:
    if global_batch_size % jax.device_count():
        raise ValueError(
            f"batch_size {global_batch_size} must be divisible by the {jax.device_count()} "
            "devices of the data-parallel mesh"
        )


@dataclasses.dataclass
class Experiment(mesh_lib.OnMesh):
    """Everything the feeds, the loop and validation need, built once from a config."""

    config: ml_collections.ConfigDict
    leads: tuple[str, ...]
    mesh: Mesh
    graphdef: Any
    tx: optax.GradientTransformation
    total_steps: int
    steps_per_epoch: int
    lead_masks: Any = None  # lead_robust.MaskSampler of a lead-robust model, else None

    def init_state(self) -> TrainState:
        """Fresh state, replicated on the mesh (same on every process: seeded)."""
        cfg = self.config

        def init():
            model = variants.build_model(cfg.model, len(self.leads), cfg.seed)
            params = nnx.state(model, nnx.Param)
            return TrainState(
                step=jnp.zeros((), jnp.int32),
                params=params,
                opt_state=self.tx.init(params),
                rng=jax.random.PRNGKey(cfg.seed + 1),
            )

        return jax.jit(init, out_shardings=self.replicated)()

    def abstract_state(self) -> TrainState:
        shapes = jax.eval_shape(lambda: self.init_state())
        return checkpointing.replicated_abstract(shapes, self.replicated)

    @property
    def step_fn(self) -> jax.tree_util.Partial:
        """The bound pure train step, ``(state, batch) -> (state, metrics)``."""
        return step_lib.bind(self.graphdef, self.tx, self.config.loss, self.lead_masks)

    @functools.cached_property
    def runner(self) -> inference.Runner:
        """The eval step of this experiment's model on its mesh (compiled once)."""
        return inference.Runner(self.graphdef, self.mesh)


def make_experiment(config: ml_collections.ConfigDict, train_size: int | None = None) -> Experiment:
    """The :class:`Experiment` of ``config`` for a training split of ``train_size`` examples."""
    # A lead-robust model trains on all 12 leads in canonical order (masks pick subsets).
    robust = lead_robust.is_lead_robust(config.model)
    leads = leads_lib.CANONICAL_LEADS if robust else leads_lib.parse_leads(config.leads)
    check_batch_divides(config.batch_size)
    model = nnx.eval_shape(lambda: variants.build_model(config.model, len(leads)))
    graphdef, _ = nnx.split(model, nnx.Param)
    steps_per_epoch = max(1, (train_size or config.batch_size) // config.batch_size)
    total = config.num_train_steps if config.num_train_steps > 0 else config.num_epochs * steps_per_epoch
    return Experiment(
        config,
        leads,
        mesh_lib.make_mesh(),
        graphdef,
        step_lib.make_optimizer(config, total),
        total,
        steps_per_epoch,
        lead_robust.sampler_from_config(config),
    )
