"""Population training: many LeadMix-MST models in one compiled step.

A *population* is P members that differ by seed and/or lead set but share
the lead count N, the model settings, the optimiser and the data order. Their
train states are stacked along a leading ``(P,)`` axis and one compiled step
trains all of them (``jax.vmap`` over :func:`leadmix_jax.train.train_step`):

* the split is device-resident with all 12 leads
  (:mod:`leadmix_jax.device_input`); each step gathers one raw 12-lead global
  batch ``(B, T, 12)``, and every member selects its own leads, z-scores them
  with its own statistics and augments them (the same random draws as a solo
  run at that stream position) inside the step;
* each member keeps its own parameters, optimiser state and dropout key
  (``PRNGKey(seed + 1)`` as a solo run), is validated alone and gets its own
  best-checkpoint selection;
* the model is the solo model: its strided convs are patch matmuls (see
  :mod:`leadmix_jax.layers`), which vmap over members into batched matmuls,
  where a library conv would become a grouped conv (~75x slower on XLA:CPU).

A member with seed ``s`` and leads ``L`` is, up to float rounding, the solo
run with ``seed=s``, ``leads=L`` and ``data_seed`` = the population's data
seed (``tests/test_population.py`` checks 20 steps within 1e-5).

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

from leadmix_jax import (
    checkpointing,
    device_input,
    dispatch,
    eval_outputs,
    inference,
    input_pipeline,
    lead_robust,
    loop,
    train,
)
from leadmix_jax import leads as leads_lib
from leadmix_jax.errors import UserError


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
    sets = lead_robust.parse_eval_leads(spec)
    if not sets:
        raise UserError(f"--config.population.lead_sets={spec!r} names no lead set")
    seeds = int(config.population.seeds)
    if seeds < 1:
        raise UserError(f"--config.population.seeds must be >= 1, got {seeds}")
    names = [name for name, _ in sets]
    if len(set(names)) != len(names):
        raise UserError(f"--config.population.lead_sets={spec!r} repeats a lead set")
    return [
        Member(f"{eval_outputs.slug(name)}_seed{s}", name, leads, s)
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
    """Static per-member input settings, ``(P, N)`` numpy (constants of the step)."""

    lead_idx: np.ndarray  # canonical indices of each member's leads, int32
    mean: np.ndarray  # float32
    inv_std: np.ndarray  # float32, 1 / std rounded as the solo path does
    augment: input_pipeline.AugmentConfig

    @classmethod
    def make(cls, members: list[Member], stats12, augment) -> "MemberInputs":
        picked = [stats12.select(m.leads) for m in members]
        return cls(
            np.asarray([leads_lib.lead_indices(m.leads) for m in members], np.int32),
            np.asarray([s.mean for s in picked], np.float32),
            (1.0 / np.asarray([s.std for s in picked], np.float64)).astype(np.float32),
            augment,
        )


def member_windows(batch: dict, inputs: MemberInputs) -> jax.Array:
    """Each member's input ``(P, B, T, N)`` from a raw 12-lead batch: ``ecg``
    ``(B, T, 12)``, stream positions ``pos`` ``(B,)``, ``augment_key``.

    Lead selection, z-scoring and augmentation as
    :func:`leadmix_jax.device_input.make_batch_fn` does for one model (the
    example at position ``p`` is augmented with ``fold_in(augment_key, p)``)."""
    x = jnp.moveaxis(batch["ecg"][:, :, inputs.lead_idx], 2, 0)  # (P, B, T, N)
    x = (x - inputs.mean[:, None, None, :]) * inputs.inv_std[:, None, None, :]
    aug = inputs.augment
    if aug.active:
        keys = jax.vmap(lambda p: jax.random.fold_in(batch["augment_key"], p))(batch["pos"])
        one = jax.vmap(lambda e, k: device_input.augment_example(e, k, aug))
        x = jax.vmap(one, in_axes=(0, None))(x, keys)
    return x


def members_per_pass(config: ml_collections.ConfigDict, num_members: int) -> int:
    """How many members one vectorised pass of the step trains:
    ``config.population.members_per_pass`` when > 0, else all of them on a
    GPU/TPU (one wide program fills the device) and one on a CPU.

    Why one on a CPU: one model's ops already keep the cores busy there, and
    vmapped ops (a leading member axis on every activation) parallelise worse
    over the cores. Measured on 2 cores, paper model, batch 16, P=4, one jitted
    step: vmap 0.85x a solo model's member-samples/s, members one after
    another in the same program (``lax.map``) 1.18x, 2 per pass 1.04x
    (``bench/population_throughput.py``)."""
    chosen = int(config.population.get("members_per_pass", 0))
    if chosen > 0:
        return min(chosen, num_members)
    return 1 if jax.default_backend() == "cpu" else num_members


def population_step(states: train.TrainState, batch: dict, *, step, inputs: MemberInputs, per_pass: int):
    """One optimiser step of every member (``states`` stacked ``(P, ...)``) on
    one raw global batch; ``step`` is the solo train step (graph, optimiser,
    loss settings bound). ``per_pass`` members are vmapped together
    (:func:`members_per_pass`); passes run one after another. Metrics are
    ``(P,)``."""
    xs = member_windows(batch, inputs)

    def one(args):
        s, x = args
        return step(s, {"ecg": x, "label": batch["label"]})

    if per_pass == 1:  # one after another, each exactly a solo step (also for P=1: no vmap axis)
        return jax.lax.map(one, (states, xs))
    if per_pass >= xs.shape[0]:
        return jax.vmap(lambda s, x: one((s, x)))(states, xs)
    return jax.lax.map(one, (states, xs), batch_size=per_pass)


class PopulationFeed(dispatch.DeviceFeed):
    """:class:`~leadmix_jax.dispatch.DeviceFeed` of raw 12-lead batches into
    :func:`population_step` (the solo feed's order, dispatching and resume)."""

    def __init__(self, exp, resident, inputs: MemberInputs, seed: int, per_pass: int):
        raw = device_input.BatchSpec(
            tuple(range(len(leads_lib.CANONICAL_LEADS))), (0.0,) * 12, (1.0,) * 12
        )  # x - 0 and x * 1 are exact: the raw windows
        super().__init__(exp, resident, raw, seed)
        # the solo feed's train step over the members, per_pass of them vmapped at a time
        self._step = jax.tree_util.Partial(population_step, step=self._step, inputs=inputs, per_pass=per_pass)

    @staticmethod
    def step_of(states) -> jax.Array:
        return states.step[0]  # every member is at the same step

    def _make_batch(self, arrays, idx, pos):
        return {**super()._make_batch(arrays, idx, pos), "pos": pos, "augment_key": arrays["augment_key"]}


def init_states(exp, seeds) -> train.TrainState:
    """Fresh stacked states ``(P, ...)``, member ``i`` exactly as a solo run
    with ``seed=seeds[i]`` initialises (parameters, optimiser, dropout key)."""
    num_leads = len(exp.leads)

    def init(seed):
        # nnx.Rngs(int) keys its streams with jax.random.key(int): the same key, traced
        model = inference.build_model(exp.config.model, num_leads, jax.random.key(seed))
        params = nnx.state(model, nnx.Param)
        return train.TrainState(
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
# Training one population.


def _member_meta(config, member: Member, stats12, index: int, members: list[Member], data_seed: int) -> dict:
    """A member checkpoint's ``meta``: a solo run's, plus where it came from."""
    origin = {
        "index": index,
        "members": [m.name for m in members],
        "seed": member.seed,
        "data_seed": data_seed,
    }
    return checkpointing.model_meta(config, member.leads, stats12.select(member.leads), population=origin)


def _open_members(config, members, stats12, members_root: epath.Path, start: int, data_seed: int) -> dict:
    """Each member's checkpoint manager; its workdir gets ``config.json`` and
    ``norm_stats.json``; steps after ``start`` (written before a kill, redone
    now) are deleted."""
    managers = {}
    for m in members:
        wd = members_root / m.name
        if jax.process_index() == 0:
            wd.mkdir(parents=True, exist_ok=True)
            (wd / "config.json").write_text(member_config(config, m, data_seed).to_json_best_effort(indent=2))
            (wd / "norm_stats.json").write_text(json.dumps(stats12.select(m.leads).to_json(), indent=1))
        manager = checkpointing.make_manager(str(wd), config.keep_checkpoints)
        for step in manager.all_steps():
            if step > start:
                manager.delete(step)
        managers[m.name] = manager
    return managers


def train_population(
    config: ml_collections.ConfigDict,
    workdir: str,
    members: list[Member],
    stats12,
    members_root: str,
) -> dict[str, dict]:
    """Trains ``members`` (one lead count) together; resumes from ``workdir``.

    Args:
      config: the experiment (data, model, optimiser, schedule, validation).
      workdir: the population's workdir (stacked-state checkpoints, metrics).
      members: the members, all with the same number of leads.
      stats12: :class:`~leadmix_jax.norm_stats.NormStats` of all 12 leads of
        the training split; each member uses its leads' rows.
      members_root: folder of the members' own workdirs.

    Returns:
      ``{member name: {'best_step', 'best_val_auroc', 'workdir'}}``.
    """
    counts = {len(m.leads) for m in members}
    if len(counts) != 1:
        raise ValueError(f"a population shares one lead count, got {sorted(counts)}")
    is_chief = jax.process_index() == 0
    if is_chief:
        epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    data_seed = dispatch.data_seed(config)
    builder = input_pipeline.load_builder(config.data_dir, config.train_dataset)
    solo = train.make_experiment(
        member_config(config, members[0], data_seed), input_pipeline.split_size(builder, config.train_split)
    )
    inputs = MemberInputs.make(members, stats12, input_pipeline.AugmentConfig(**config.augment))
    resident = device_input.load_resident(builder, config.train_split, solo.mesh)
    feed = PopulationFeed(solo, resident, inputs, data_seed, members_per_pass(config, len(members)))
    seeds = [m.seed for m in members]

    manager = checkpointing.make_manager(workdir, config.keep_checkpoints)
    abstract = checkpointing.replicated_abstract(
        jax.eval_shape(lambda: init_states(solo, seeds)), solo.replicated
    )
    state, _, start = checkpointing.restore_newest_intact(manager, abstract, feed.checkpointable)
    if start is not None:
        loop.say(f"population resumed from step {start}")
    else:
        state, start = init_states(solo, seeds), 0
    managers = _open_members(config, members, stats12, epath.Path(members_root), start, data_seed)
    metas = [_member_meta(config, m, stats12, i, members, data_seed) for i, m in enumerate(members)]
    val_builder = train.validation_builder(config)
    vals: dict[int, list[dict]] = {}  # per-member validation of a step, until its checkpoint
    unstack = make_unstack(len(members), solo.replicated)
    split: dict[int, list] = {}  # the members' states of the latest validation step

    def members_at(states) -> list:
        step = int(states.step[0])
        if step not in split:
            split.clear()
            split[step] = unstack(states)
        return split[step]

    def validate(states) -> dict:
        step = int(states.step[0])
        per = []
        for m, state in zip(members, members_at(states)):
            stats = stats12.select(m.leads)
            per.append(
                train.validate(
                    solo, state.params, val_builder, config.val_split, stats, config.eval_batch_size
                )
            )
        vals[step] = per
        record = {k: float(np.mean([v[k] for v in per])) for k in ("val_loss", "val_auroc")}
        record.update({f"val_auroc/{m.name}": v["val_auroc"] for m, v in zip(members, per)})
        if is_chief:
            logging.info(
                "step %d  validation AUROC per member: %s",
                step,
                ", ".join(f"{m.name} {v['val_auroc']:.4f}" for m, v in zip(members, per)),
            )
        return record

    def save(step, states, val) -> None:
        per = vals.pop(step, None) if val is not None else None
        # Saved from one host copy: Orbax would slice every replicated leaf on
        # the devices (one small compiled program per leaf shape) per save.
        host = jax.device_get(states)
        for i, m in enumerate(members):
            member = jax.tree.map(lambda a: a[i], host)
            checkpointing.save(
                managers[m.name], step, member, feed.checkpointable, metas[i], per[i] if per else None
            )
        pop_meta = {"members": [dataclasses.asdict(m) for m in members], "data_seed": data_seed}
        checkpointing.save(manager, step, host, feed.checkpointable, pop_meta, None)

    every = [manager, *managers.values()]
    try:
        loop.run_loop(
            config,
            solo,
            feed,
            state,
            start,
            workdir,
            validate=validate if val_builder is not None else None,
            save=save,
        )
    except loop.Interrupted:
        for mgr in every:
            mgr.wait_until_finished()
            mgr.close()
        raise
    for mgr in every:
        mgr.wait_until_finished()
    out = {}
    for m in members:
        best = checkpointing.best_step(managers[m.name])
        metrics = checkpointing.step_metrics(managers[m.name], best) if best is not None else None
        out[m.name] = {
            "best_step": best,
            "best_val_auroc": metrics["val_auroc"] if metrics else None,
            "workdir": str(epath.Path(members_root) / m.name),
        }
    for mgr in every:
        mgr.close()
    return out
