"""The whole product at the databases' real size (or a fraction of it), from nothing to the table.

    PYTHONPATH=. python bench/full_scale.py --fraction=1 --steps=20 --workdir=/tmp/full1
    PYTHONPATH=. python bench/full_scale.py --fraction=0.01 --steps=2          # CI-sized
    PYTHONPATH=. python bench/full_scale.py --fraction=1 --dtype=bfloat16      # GPU: 25 epochs

Stages, each in its own process (so that its peak memory is its own), each
resuming what a killed run left (a finished stage is skipped):

1. ``write``: synthetic PTB, PTB-XL and SPH in their original layouts at
   ``--fraction`` of the real size and proportions
   (:mod:`leadmix_jax.synthetic.full_size`);
2. ``build``: the three TFDS builds (``paper`` config), through the builder
   classes' ``download_and_prepare``, the code path of ``tfds build``;
3. ``train``: the protocol's members (the paper's 7 lead sets x 3 seeds by
   default) trained on SPH as populations (:func:`leadmix_jax.workflows.protocol.train_members`),
   ``--steps`` steps per population (default: the paper's 25 epochs);
4. ``eval``: every member on every target: all of PTB and PTB-XL, SPH test,
   with patient-bootstrap CIs (:func:`~leadmix_jax.workflows.protocol.evaluate_members`);
5. ``table``: the mean ± std table over seeds.

One line per stage: wall time, records, samples or windows per second, the
stage's peak host RSS (its process and the worker processes it waited
for), peak device memory (where the backend reports it) and the disk its
outputs take. The lines are also written to ``<workdir>/full_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("write", "build", "train", "eval", "table")
DATASETS = {"ptbdb_mi": "ptb", "ptbxl_mi": "ptbxl", "sph_mi": "sph"}


def disk_bytes(path: Path) -> int:
    """Bytes of ``path``, or of the files under it (links not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def protocol_dir(args) -> Path:
    """The protocol's workdir: ``protocol`` or, with ``--run``, ``protocol_<run>``
    (several runs, e.g. float32 and bfloat16, on one set of built databases)."""
    return Path(args.workdir) / (f"protocol_{args.run}" if args.run else "protocol")


def stage_file(args, stage: str) -> Path:
    run = f"_{args.run}" if args.run and stage in ("train", "eval", "table") else ""
    return Path(args.workdir) / "stages" / f"{stage}{run}.json"


def protocol_config(args):
    """configs/protocol.py (train on SPH, evaluate on PTB, PTB-XL, SPH test) on
    the built synthetic databases, with this run's steps, sets, seeds and dtype."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from configs import protocol

    c = protocol.get_config()
    c.data_dir = str(Path(args.workdir) / "tfds")
    c.population.lead_sets = args.lead_sets
    c.population.seeds = args.seeds
    c.model.dtype = args.dtype
    c.bootstrap_samples = args.bootstrap
    if args.steps:
        c.num_train_steps = args.steps
        c.eval_every_steps = c.checkpoint_every_steps = args.steps
    return c


def run_write(args, work: Path) -> tuple[float, str]:
    from leadmix_jax.synthetic import full_size

    summary = full_size.write_databases(work / "databases", args.fraction, args.seed, args.workers)
    (work / "databases" / "summary.json").write_text(json.dumps(summary, indent=1))
    return sum(s["n_records"] for s in summary.values()), "records"


def run_build(args, work: Path) -> tuple[float, str]:
    import tensorflow_datasets as tfds

    from leadmix_jax.data.build import databases

    done = 0
    for name, folder in DATASETS.items():
        builder = databases.builder_class(name)(
            data_dir=str(work / "tfds"), config="paper", num_workers=args.workers
        )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(work / "databases" / folder))
        )
        report = json.loads((Path(builder.data_dir) / "build_report.json").read_text())
        done += report["records_labelled"]
    return done, "records"


def run_train(args, work: Path) -> tuple[float, str]:
    from leadmix_jax.workflows import protocol

    from leadmix_jax.input import built

    config = protocol_config(args)
    trained = protocol.train_members(config, str(protocol_dir(args)))
    train_size = built.split_size(built.load_builder(config.data_dir, config.train_dataset), "train")
    steps = (
        config.num_train_steps
        if config.num_train_steps > 0
        else config.num_epochs * (train_size // config.batch_size)
    )
    print(f"{len(trained)} members, {steps} steps each, training split {train_size} windows", flush=True)
    return steps * config.batch_size * len(trained), "member-samples"


def run_eval(args, work: Path) -> tuple[float, str]:
    from leadmix_jax.evaluate import evaluation
    from leadmix_jax.input import built
    from leadmix_jax.workflows import protocol

    config = protocol_config(args)
    protocol.evaluate_members(config, str(protocol_dir(args)))
    windows = 0
    for dataset, split in evaluation.parse_targets(config.eval_targets):
        builder = built.load_builder(config.data_dir, dataset)
        names = list(builder.info.splits) if split == "all" else [split]
        windows += sum(built.split_size(builder, s) for s in names)
    return windows * len(protocol.member_workdirs(config, str(protocol_dir(args)))), "member-windows"


def run_table(args, work: Path) -> tuple[float, str]:
    from leadmix_jax.workflows import protocol

    config = protocol_config(args)
    protocol.make_table(config, str(protocol_dir(args)))  # prints the table
    return len(protocol.member_workdirs(config, str(protocol_dir(args)))), "members"


def device_peak() -> int | None:
    """Peak bytes in use on the first device, where the backend says (GPU, TPU)."""
    if "jax" not in sys.modules:
        return None
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def stage_main(args) -> int:
    """Runs one stage in this process and writes its measurements."""
    from leadmix_jax import host_memory

    host_memory.keep_freed_memory()  # as launch.py, before JAX starts
    from absl import flags, logging

    from leadmix_jax import launching

    flags.FLAGS(sys.argv[:1])  # grain reads absl flags: their defaults, as launch.py parses them
    logging.use_absl_handler()  # progress lines on stderr, as under launch.py's app.run
    logging.set_verbosity(logging.INFO)
    launching.quiet_third_parties()
    work = Path(args.workdir)
    t0 = time.perf_counter()
    count, unit = globals()[f"run_{args.stage}"](args, work)
    wall = time.perf_counter() - t0
    rss = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    result = {"stage": args.stage, "wall_s": wall, "count": count, "unit": unit, "peak_rss_bytes": rss * 1024}
    result["peak_device_bytes"] = device_peak()
    stage_file(args, args.stage).parent.mkdir(parents=True, exist_ok=True)
    stage_file(args, args.stage).write_text(json.dumps(result))
    return 0


#: What each stage writes (globs under the workdir; {p}: the protocol's folder).
OUTPUTS = {
    "write": ["databases"],
    "build": ["tfds"],
    "train": ["{p}/population_*", "{p}/members/*/checkpoints", "{p}/norm_stats.json"],
    "eval": ["{p}/members/*/eval"],
    "table": ["{p}/protocol"],
}


def line(r: dict) -> str:
    gib = 2.0**30
    dev = "n/a" if r["peak_device_bytes"] is None else f"{r['peak_device_bytes'] / gib:.2f} GiB"
    return (
        f"{r['stage']:<6} {r['wall_s']:9.1f} s  {r['count'] / max(r['wall_s'], 1e-9):12,.1f} {r['unit']}/s "
        f"({r['count']:,.0f})  peak RSS {r['peak_rss_bytes'] / gib:6.2f} GiB  peak device {dev}  "
        f"disk {r['disk_bytes'] / gib:6.2f} GiB"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, default=1.0, help="of the real databases' size")
    parser.add_argument("--steps", type=int, default=0, help="steps per population (0: 25 epochs)")
    parser.add_argument("--workdir", default="", help="default /tmp/full_scale_<fraction>")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="writer and build processes")
    parser.add_argument("--lead_sets", default="paper")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--bootstrap", type=int, default=1000, help="patient-bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="of the synthetic databases")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--run", default="", help="name of this protocol run (protocol_<run>/)")
    parser.add_argument("--stage", default="", help=argparse.SUPPRESS)  # internal: run one stage here
    args = parser.parse_args(argv)
    args.workdir = args.workdir or f"/tmp/full_scale_{args.fraction:g}"
    if args.stage:
        return stage_main(args)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for stage in args.stages.split(","):
        done = stage_file(args, stage)
        if not done.exists():
            cmd = [
                sys.executable,
                __file__,
                f"--stage={stage}",
                *(argv if argv is not None else sys.argv[1:]),
            ]
            if "--workdir" not in " ".join(cmd):
                cmd.append(f"--workdir={args.workdir}")
            proc = subprocess.run(cmd)
            if proc.returncode != 0:
                print(f"stage {stage} failed (exit {proc.returncode}); run the same command to resume")
                return proc.returncode
        r = json.loads(done.read_text())
        globs = [g.format(p=protocol_dir(args).name) for g in OUTPUTS[stage]]
        r["disk_bytes"] = sum(disk_bytes(p) for pattern in globs for p in work.glob(pattern))
        results.append(r)
        print(line(r), flush=True)
    (work / f"full_scale{'_' + args.run if args.run else ''}.json").write_text(
        json.dumps({"args": vars(args), "stages": results}, indent=1)
    )
    print("\n".join(["", f"fraction {args.fraction:g}, steps {args.steps or '25 epochs'}, {args.workdir}"]))
    for r in results:
        print(line(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
