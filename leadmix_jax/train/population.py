"""Population training: many LeadMix-MST models in one compiled step.

A *population* is P members that differ by seed and/or lead set but share
the lead count N, the model settings, the optimiser and the data order. Their
train states are stacked along a leading ``(P,)`` axis and one compiled step
trains all of them (:func:`population_step`, the solo
:func:`~leadmix_jax.train.step.train_step` mapped or vmapped over members):

* the split is device-resident with all 12 leads
  (:mod:`leadmix_jax.input.resident`); each step gathers one raw 12-lead global
  batch ``(B, T, 12)``, and every member selects its own leads, z-scores them
  with its own statistics and augments them (the same random draws as a solo
  run at that stream position) inside the step;
* each member keeps its own parameters, optimiser state and dropout key
  (``PRNGKey(seed + 1)`` as a solo run), is validated alone and gets its own
  best-checkpoint selection;
* the model is the solo model: its strided convs are patch matmuls when
  training (:mod:`leadmix_jax.model.conv`), which vmap over members into
  batched matmuls, where a library conv would become a grouped conv.

A member with seed ``s`` and leads ``L`` is, up to float rounding, the solo
run with ``seed=s``, ``leads=L`` and ``data_seed`` = the population's data
seed (``tests/train/test_population.py`` checks it).

Layout of a population run under ``root``:

* ``root/population_<N>leads/``: the stacked state's checkpoints (resume),
  ``metrics.jsonl`` (mean loss; validation per member);
* ``root/members/<set>_seed<s>/``: each member as an ordinary training
  workdir: ``config.json`` (its leads and seed), ``norm_stats.json`` and
  ``checkpoints/`` written at the population's checkpoint steps with the
  member's validation metrics, so ``--mode=eval``, ``predict`` and ``export``
  take ``--workdir=root/members/<name>`` and cannot tell it from a solo run.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from flax import nnx

from leadmix_jax import checkpointing
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError
from leadmix_jax.input import built, norm_stats, resident
from leadmix_jax.input.augment import AugmentConfig, augment_example
from leadmix_jax.model import lead_robust, variants
from leadmix_jax.train import feeds, lifecycle, validation
from leadmix_jax.train.experiment import Experiment, make_experiment
from leadmix_jax.train.step import TrainState


@dataclasses.dataclass(frozen=True)
class Member:
    """One model of a population."""

    name: str  # its workdir under members/: '<set>_seed<seed>'
    lead_set: str  # the paper's set name, or the leads joined by '-'
    leads: tuple[str, ...]
    seed: int


def make_members(config: ml_collections.ConfigDict) -> list[Member]:
    """Members of ``config.population``: every lead set x ``seeds`` seeds
    (``seed``, ``seed + 1``, ...), lead sets in the order given."""
    if lead_robust.is_lead_robust(config.model):
        raise UserError("a population trains official LeadMix-MST models: unset --config.model.variant")
    spec = config.population.lead_sets or config.leads
    sets = leads_lib.parse_lead_sets(spec)
    if not sets:
        raise UserError(f"--config.population.lead_sets={spec!r} names no lead set")
    seeds = int(config.population.seeds)
    if seeds < 1:
        raise UserError(f"--config.population.seeds must be >= 1, got {seeds}")
    names = [name for name, _ in sets]
    if len(set(names)) != len(names):
        raise UserError(f"--config.population.lead_sets={spec!r} repeats a lead set")
    return [
        Member(f"{leads_lib.slug(name)}_seed{s}", name, leads, s)
        for name, leads in sets
        for s in range(config.seed, config.seed + seeds)
    ]


def groups(members: list[Member]) -> dict[int, list[Member]]:
    """Members by lead count (one compiled step each), counts in order of first appearance."""
    out: dict[int, list[Member]] = {}
    for m in members:
        out.setdefault(len(m.leads), []).append(m)
    return out


def member_config(config: ml_collections.ConfigDict, member: Member, data_seed: int):
    """The solo config of ``member``: its leads and seed, the population's data order."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.leads = ",".join(member.leads)
    cfg.seed = member.seed
    cfg.data_seed = data_seed
    cfg.population.lead_sets = ""
    cfg.population.seeds = 1
    cfg.mode = "train"
    return cfg


# ----------------------------------------------------------------------------
# The compiled step.


@dataclasses.dataclass(frozen=True)
class MemberInputs:
    """Static per-member input settings (constants of the step)."""

    lead_idx: np.ndarray  # (P, N) canonical indices of each member's leads, int32
    mean: np.ndarray  # (P, 1, 1, N) float32 z-scoring factors (norm_stats.zscore_factors)
    inv_std: np.ndarray  # (P, 1, 1, N) float32
    augment: AugmentConfig

    @classmethod
    def make(cls, members: list[Member], stats12, augment: AugmentConfig) -> "MemberInputs":
        factors = [
            norm_stats.zscore_factors(s.mean, s.std) for s in (stats12.select(m.leads) for m in members)
        ]
        return cls(
            np.asarray([leads_lib.lead_indices(m.leads) for m in members], np.int32),
            np.stack([f[0] for f in factors])[:, None, None, :],
            np.stack([f[1] for f in factors])[:, None, None, :],
            augment,
        )


def member_windows(batch: dict, inputs: MemberInputs) -> jax.Array:
    """Each member's input ``(P, B, T, N)`` from a raw 12-lead batch: ``ecg``
    ``(B, T, 12)``, stream positions ``pos`` ``(B,)``, ``augment_key``.

    Lead selection, z-scoring and augmentation as
    :func:`leadmix_jax.input.resident.make_batch_fn` does for one model (the
    example at position ``p`` is augmented with ``fold_in(augment_key, p)``)."""
    x = jnp.moveaxis(batch["ecg"][:, :, inputs.lead_idx], 2, 0)  # (P, B, T, N)
    x = norm_stats.zscore(x, inputs.mean, inputs.inv_std)
    aug = inputs.augment
    if aug.active:
        keys = jax.vmap(lambda p: jax.random.fold_in(batch["augment_key"], p))(batch["pos"])
        one = jax.vmap(lambda e, k: augment_example(e, k, aug))
        x = jax.vmap(one, in_axes=(0, None))(x, keys)
    return x


def members_per_pass(config: ml_collections.ConfigDict, num_members: int) -> int:
    """How many members one vectorised pass of the step trains:
    ``config.population.members_per_pass`` when > 0, else all of them on a
    GPU/TPU (one wide program fills the device) and one on a CPU, where one
    model's ops already keep the cores busy and vmapped ops (a leading member
    axis on every activation) spread worse over them
    (``bench/population_throughput.py`` measures both)."""
    chosen = int(config.population.get("members_per_pass", 0))
    if chosen > 0:
        return min(chosen, num_members)
    return 1 if jax.default_backend() == "cpu" else num_members


def population_step(states: TrainState, batch: dict, *, step, inputs: MemberInputs, per_pass: int):
    """One optimiser step of every member (``states`` stacked ``(P, ...)``) on
    one raw global batch; ``step`` is the bound solo train step. ``per_pass``
    members are vmapped together (:func:`members_per_pass`); passes run one
    after another. Metrics are ``(P,)``."""
    xs = member_windows(batch, inputs)

    def one(args):
        s, x = args
        return step(s, {"ecg": x, "label": batch["label"]})

    if per_pass == 1:  # one after another, each exactly a solo step (also for P=1: no vmap axis)
        return jax.lax.map(one, (states, xs))
    if per_pass >= xs.shape[0]:
        return jax.vmap(lambda s, x: one((s, x)))(states, xs)
    return jax.lax.map(one, (states, xs), batch_size=per_pass)


class PopulationFeed(feeds.DeviceFeed):
    """:class:`~leadmix_jax.train.feeds.DeviceFeed` of raw 12-lead batches into
    :func:`population_step` (the solo feed's order, dispatching and resume)."""

    def __init__(self, exp, split, inputs: MemberInputs, seed: int, per_pass: int):
        raw = resident.BatchSpec(
            tuple(range(len(leads_lib.CANONICAL_LEADS))), (0.0,) * 12, (1.0,) * 12
        )  # x - 0 and x * 1 are exact: the raw windows
        super().__init__(exp, split, raw, seed)
        # the solo feed's train step over the members, per_pass of them vmapped at a time
        self._step = jax.tree_util.Partial(population_step, step=self._step, inputs=inputs, per_pass=per_pass)

    @staticmethod
    def step_of(states) -> jax.Array:
        return states.step[0]  # every member is at the same step

    def make_batch(self, arrays: dict, idx: jax.Array, pos: jax.Array) -> dict:
        return {**super().make_batch(arrays, idx, pos), "pos": pos, "augment_key": arrays["augment_key"]}


def init_states(exp: Experiment, seeds) -> TrainState:
    """Fresh stacked states ``(P, ...)``, member ``i`` exactly as a solo run
    with ``seed=seeds[i]`` initialises (parameters, optimiser, dropout key)."""
    num_leads = len(exp.leads)

    def init(seed):
        # nnx.Rngs(int) keys its streams with jax.random.key(int): the same key, traced
        model = variants.build_model(exp.config.model, num_leads, jax.random.key(seed))
        params = nnx.state(model, nnx.Param)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=exp.tx.init(params),
            rng=jax.random.PRNGKey(seed + 1),
        )

    return jax.jit(jax.vmap(init), out_shardings=exp.replicated)(jnp.asarray(seeds, jnp.int32))


def make_unstack(num_members: int, sharding):
    """A compiled ``states -> [member 0's state, ...]`` (solo states on
    ``sharding``). One program for all members and leaves: slicing leaf by
    leaf eagerly compiles one small program per leaf shape."""
    return jax.jit(
        lambda s: [jax.tree.map(lambda a: a[i], s) for i in range(num_members)], out_shardings=sharding
    )


# ----------------------------------------------------------------------------
# The members' own workdirs.


class MemberRuns:
    """The members' workdirs under ``root``: their checkpoint managers, metadata,
    validation and saves at the population's checkpoint steps."""

    def __init__(self, config, members: list[Member], stats12, root: epath.Path, data_seed: int, exp):
        self.config, self.members, self.stats12, self.root = config, members, stats12, root
        self.data_seed, self.exp = data_seed, exp
        self.managers: dict[str, object] = {}
        self._vals: dict[int, list[dict]] = {}  # per-member validation of a step, until its checkpoint
        self._unstack = make_unstack(len(members), exp.replicated)
        self._split: dict[int, list] = {}  # the members' states of the latest validation step
        self.metas = [self._meta(m, i) for i, m in enumerate(members)]

    def _meta(self, member: Member, index: int) -> dict:
        """A member checkpoint's ``meta``: a solo run's, plus where it came from."""
        origin = {
            "index": index,
            "members": [m.name for m in self.members],
            "seed": member.seed,
            "data_seed": self.data_seed,
        }
        stats = self.stats12.select(member.leads)
        return checkpointing.model_meta(self.config, member.leads, stats, population=origin)

    def open(self, start: int) -> None:
        """Each member's checkpoint manager; its workdir gets ``config.json`` and
        ``norm_stats.json``; steps after ``start`` (written before a kill, redone
        now) are deleted."""
        for m in self.members:
            wd = self.root / m.name
            if jax.process_index() == 0:
                wd.mkdir(parents=True, exist_ok=True)
                cfg = member_config(self.config, m, self.data_seed)
                (wd / "config.json").write_text(cfg.to_json_best_effort(indent=2))
                (wd / "norm_stats.json").write_text(
                    json.dumps(self.stats12.select(m.leads).to_json(), indent=1)
                )
            manager = checkpointing.make_manager(str(wd), self.config.keep_checkpoints)
            for step in manager.all_steps():
                if step > start:
                    manager.delete(step)
            self.managers[m.name] = manager

    def _states(self, states) -> list:
        step = int(states.step[0])
        if step not in self._split:
            self._split.clear()
            self._split[step] = self._unstack(states)
        return self._split[step]

    def validate(self, states, val_builder) -> dict:
        """Each member validated alone; the record of ``metrics.jsonl``."""
        step = int(states.step[0])
        per = [
            validation.validate(
                self.exp, s.params, val_builder, self.config.val_split, self.stats12.select(m.leads)
            )
            for m, s in zip(self.members, self._states(states))
        ]
        self._vals[step] = per
        record = {k: float(np.mean([v[k] for v in per])) for k in ("val_loss", "val_auroc")}
        record.update({f"val_auroc/{m.name}": v["val_auroc"] for m, v in zip(self.members, per)})
        if jax.process_index() == 0:
            logging.info(
                "step %d  validation AUROC per member: %s",
                step,
                ", ".join(f"{m.name} {v['val_auroc']:.4f}" for m, v in zip(self.members, per)),
            )
        return record

    def save(self, step: int, host_states, checkpointable, validated: bool) -> None:
        """Each member's checkpoint of ``step`` from one host copy of the stacked states."""
        per = self._vals.pop(step, None) if validated else None
        for i, m in enumerate(self.members):
            member = jax.tree.map(lambda a: a[i], host_states)
            checkpointing.save(
                self.managers[m.name], step, member, checkpointable, self.metas[i], per[i] if per else None
            )

    def summary(self) -> dict[str, dict]:
        """``{member name: {'best_step', 'best_val_auroc', 'workdir'}}``."""
        return {
            m.name: {**lifecycle.best(self.managers[m.name]), "workdir": str(self.root / m.name)}
            for m in self.members
        }


# ----------------------------------------------------------------------------
# Training one population.


def train_population(
    config: ml_collections.ConfigDict,
    workdir: str,
    members: list[Member],
    stats12,
    members_root: str,
    split: resident.Resident | None = None,
) -> dict[str, dict]:
    """Trains ``members`` (one lead count) together; resumes from ``workdir``.

    Args:
      config: the experiment (data, model, optimiser, schedule, validation).
      workdir: the population's workdir (stacked-state checkpoints, metrics).
      members: the members, all with the same number of leads.
      stats12: :class:`~leadmix_jax.input.norm_stats.NormStats` of all 12 leads of
        the training split; each member uses its leads' rows.
      members_root: folder of the members' own workdirs.
      split: the training split already in device memory (all 12 leads, as
        :func:`~leadmix_jax.input.resident.load_resident` loads it on
        ``mesh_lib.make_mesh()``), shared by the protocol's populations;
        ``None``: loaded here.

    Returns:
      ``{member name: {'best_step', 'best_val_auroc', 'workdir'}}``.
    """
    counts = {len(m.leads) for m in members}
    if len(counts) != 1:
        raise ValueError(f"a population shares one lead count, got {sorted(counts)}")
    if jax.process_index() == 0:
        epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    data_seed = feeds.data_seed(config)
    builder = built.load_builder(config.data_dir, config.train_dataset)
    solo = make_experiment(
        member_config(config, members[0], data_seed), built.split_size(builder, config.train_split)
    )
    inputs = MemberInputs.make(members, stats12, AugmentConfig.from_config(config.augment))
    if split is None:
        split = resident.load_resident(builder, config.train_split, solo.mesh)
    feed = PopulationFeed(solo, split, inputs, data_seed, members_per_pass(config, len(members)))
    seeds = [m.seed for m in members]

    manager = checkpointing.make_manager(workdir, config.keep_checkpoints)
    abstract = checkpointing.replicated_abstract(
        jax.eval_shape(lambda: init_states(solo, seeds)), solo.replicated
    )
    state, start = lifecycle.restore_or_init(
        manager, abstract, lambda: init_states(solo, seeds), feed.checkpointable, "population "
    )
    runs = MemberRuns(config, members, stats12, epath.Path(members_root), data_seed, solo)
    runs.open(start)
    val_builder = validation.validation_builder(config)
    pop_meta = {"members": [dataclasses.asdict(m) for m in members], "data_seed": data_seed}

    def save(step, states, val) -> None:
        # Saved from one host copy: Orbax would slice every replicated leaf on
        # the devices (one small compiled program per leaf shape) per save.
        host = jax.device_get(states)
        runs.save(step, host, feed.checkpointable, validated=val is not None)
        checkpointing.save(manager, step, host, feed.checkpointable, pop_meta, None)

    every = [manager, *runs.managers.values()]
    lifecycle.train(
        config,
        solo,
        feed,
        state,
        start,
        workdir,
        every,
        validate=(lambda states: runs.validate(states, val_builder)) if val_builder is not None else None,
        save=save,
    )
    out = runs.summary()
    lifecycle.close(every)
    return out
