"""The paper's protocol in one command: lead sets x seeds, trained as
populations, selected on validation, evaluated cross-dataset, tabulated.

    python launch.py --mode=protocol --config=configs/protocol.py \
        --config.data_dir=~/tensorflow_datasets --workdir=runs/protocol

Steps (each resumes where a killed run stopped):

1. per-lead statistics of all 12 leads of the training split, once
   (``workdir/norm_stats.json``); each member uses its leads' rows;
2. the members (``config.population``: the paper's 7 lead sets x 3 seeds by
   default) are trained as one population per lead count
   (:func:`leadmix_jax.train.population.train_population`; 3-, 6- and 12-lead
   groups one after another), each member's best step chosen by its own
   validation AUROC;
3. every member's best checkpoint is evaluated on every
   ``config.eval_targets`` dataset (:func:`leadmix_jax.evaluate.evaluation.evaluate`,
   into ``workdir/members/<name>/eval/<step>/``; done evaluations are kept);
4. the table (:func:`leadmix_jax.evaluate.tables.seed_summary`): mean ± std over seeds
   per lead set and dataset in ``workdir/protocol/table.md`` and ``table.csv``
   (with one row per seed), at ``config.report.level``, ``threshold`` and
   ``metrics``.

With ``config.synthetic`` set (``configs/protocol.py:demo``), the demo's
synthetic databases are written and built first: no download needed.
"""

from __future__ import annotations

import jax
import ml_collections
from etils import epath

from leadmix_jax import checkpointing, mesh as mesh_lib
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.errors import UserError
from leadmix_jax.evaluate import evaluation, tables
from leadmix_jax.input import built, resident
from leadmix_jax.synthetic import prepare
from leadmix_jax.train import feeds, loop, population, resume, trainer


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (or resumes) the whole protocol; returns ``tables.seed_summary``'s
    table plus ``md``/``csv`` paths and each member's training summary."""
    trained = train_members(config, workdir)
    evaluate_members(config, workdir)
    return {**make_table(config, workdir), "trained": trained}


def train_members(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Steps 1-2: statistics and every member trained (or resumed); returns
    each member's training summary by name."""
    work = epath.Path(workdir).absolute()
    if config.get("synthetic"):
        prepare.prepare_data(config, work)
    members = population.make_members(config)
    builder = built.load_builder(config.data_dir, config.train_dataset)
    missing = evaluation.missing_targets(config)  # the protocol evaluates after training: check now
    if missing:
        raise UserError(f"{missing[0]}: fix --config.eval_targets before the protocol trains")
    resume.check(str(work), config)
    if jax.process_index() == 0:
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.json").write_text(config.to_json_best_effort(indent=2))
    stats12 = trainer.norm_stats_for(str(work), builder, config, leads_lib.CANONICAL_LEADS)
    # One copy of the training split (all 12 leads) for every population, read
    # once: at SPH's real size it is 1.4 GB, and each population read it again.
    split = None

    trained = {}
    for num_leads, group in population.groups(members).items():
        loop.say(
            f"[protocol] training {len(group)} models on {num_leads} leads in one population: "
            + ", ".join(m.name for m in group)
        )
        pop_dir = work / f"population_{num_leads}leads"
        if split is None:
            split = resident.load_resident(builder, config.train_split, mesh_lib.make_mesh())
        trained.update(
            population.train_population(config, str(pop_dir), group, stats12, str(work / "members"), split)
        )
    return trained


def member_workdirs(config: ml_collections.ConfigDict, workdir: str) -> dict[str, int]:
    """Each member's workdir and seed."""
    work = epath.Path(workdir).absolute()
    return {str(work / "members" / m.name): m.seed for m in population.make_members(config)}


def evaluate_members(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Step 3: every member's best checkpoint on every target (done ones kept)."""
    data_seed = feeds.data_seed(config)
    for m in population.make_members(config):
        wd = epath.Path(workdir).absolute() / "members" / m.name
        _evaluate_once(population.member_config(config, m, data_seed), wd)


def make_table(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Step 4: the mean ± std table over seeds (``protocol/table.md`` and ``.csv``)."""
    seeds = member_workdirs(config, workdir)
    return tables.make_seed_report(
        list(seeds),
        seeds,
        str(epath.Path(workdir).absolute() / "protocol"),
        config.report.level,
        config.report.threshold,
        tables.metric_names(config.report.metrics),
    )


def _evaluate_once(config: ml_collections.ConfigDict, workdir: epath.Path) -> None:
    """Evaluates ``workdir``'s ``config.eval_checkpoint`` unless its
    ``eval/<step>/metrics.json`` exists (evaluation is deterministic)."""
    manager = checkpointing.make_manager(str(workdir), keep=1, read_only=True)
    try:
        step = checkpointing.select_step(manager, config.eval_checkpoint)
    finally:
        manager.close()
    if (workdir / "eval" / str(step) / "metrics.json").exists():
        loop.say(f"[protocol] {workdir.name}: evaluation of step {step} already done")
        return
    loop.say(f"[protocol] evaluating {workdir.name} (step {step})")
    evaluation.evaluate(config, str(workdir), checkpoint=step)
