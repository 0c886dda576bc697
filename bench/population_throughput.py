"""Population training throughput: P models per compiled step vs one model.

For each population size P it trains P members (same lead count, seeds
0..P-1, lead sets cycling through the paper's 3-lead sets) from a
device-resident split through :class:`leadmix_jax.train.population.PopulationFeed`
and prints:
  * for each number of members per vectorised pass (``--passes``): 1 runs
    the members one after another inside the program (``lax.map``, the CPU
    default), all vmaps them (the GPU/TPU default);
  * samples/s per member (global batch x steps x dispatches / wall time:
    every member trains on every sample) and member-samples/s (P x that: the
    models' training work done per second);
  * member-samples/s over the solo baseline: one model trained by the
    ordinary device feed (:class:`leadmix_jax.train.feeds.DeviceFeed`), same
    run, batch and K. 1.0 means P models train as fast together as one after
    another; above 1, the population fills the machine better;
  * from the compiled one-step program (``cost_analysis()`` and the optimised
    HLO): fusions (kernels) per step and per member, bytes accessed per
    sample and GFLOP per sample;
  * an *estimate* of the whole protocol (7 lead sets x 3 seeds, i.e.
    populations of 12, 6 and 3 members) on one H100 from the bytes accessed
    per sample (memory-bound bound at --hbm_tbps) and the FLOPs at
    --tflops: clearly a bound-based estimate, not a measurement.

    python bench/population_throughput.py                       # P = 1,2,4,8, paper model, batch 16, 1 and all per pass
    python bench/population_throughput.py --p=1,4 --dispatches=2 --base=24 --depth=2   # quick

The data are the tests' small synthetic built dataset (tests/builtdata,
32 training windows, resident on the devices), so input cost is the
on-device gather, as in a real device-mode run.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from leadmix_jax import host_memory  # noqa: E402

host_memory.keep_freed_memory()  # before JAX starts its CPU client

from configs import default  # noqa: E402
from leadmix_jax.input import resident  # noqa: E402
from leadmix_jax.train import feeds, population
from leadmix_jax.data import preprocessing
from leadmix_jax.data import leads as leads_lib  # noqa: E402
from leadmix_jax.train import experiment
from leadmix_jax.input import norm_stats
from leadmix_jax.input import built
from leadmix_jax.input import augment
from leadmix_jax import mesh as mesh_lib

THREE_LEAD_SETS = ("inferior", "lateral", "I-II-V3", "V1-V3-V5")


def config_for(args) -> "default.ml_collections.ConfigDict":
    c = default.get_config()
    c.model.base, c.model.depth = args.base, args.depth
    c.batch_size = args.batch
    c.steps_per_dispatch = args.k
    c.input_mode = "device"
    c.val_split = ""
    c.train_dataset = "built_mi"
    return c


def timed(run, state, k: int, dispatches: int):
    """One warm-up dispatch (compiles), then ``dispatches`` timed ones; returns seconds."""
    state, m = run(state, k)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(dispatches):
        state, m = run(state, k)
    jax.block_until_ready((state, m))
    return time.perf_counter() - t0


def hlo_stats(fn, *args) -> dict:
    compiled = jax.jit(fn).lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {
        "fusions": len(re.findall(r"=\s*\S+\s+fusion\(", compiled.as_text())),
        "bytes": float(cost.get("bytes accessed", float("nan"))),
        "flops": float(cost.get("flops", float("nan"))),
    }


def members_of(p: int, config) -> list[population.Member]:
    sets = [THREE_LEAD_SETS[i % len(THREE_LEAD_SETS)] for i in range(p)]
    return [population.Member(f"m{i}", s, leads_lib.parse_leads(s), i) for i, s in enumerate(sets)]


def bench_population(p, per_pass, config, builder, stats12, split, args) -> dict:
    members = members_of(p, config)
    solo = experiment.make_experiment(population.member_config(config, members[0], 0), args.train_size)
    inputs = population.MemberInputs.make(members, stats12, augment.AugmentConfig())
    feed = population.PopulationFeed(solo, split, inputs, 0, per_pass)
    state = population.init_states(solo, [m.seed for m in members])
    seconds = timed(feed.run, state, args.k, args.dispatches)
    raw = {
        "ecg": jnp.zeros((args.batch, preprocessing.WINDOW_SAMPLES, 12), jnp.float32),
        "label": jnp.zeros((args.batch,), jnp.float32),
        "pos": jnp.arange(args.batch, dtype=jnp.int32),
        "augment_key": jax.random.PRNGKey(0),
    }
    stats = hlo_stats(lambda s, b: feed._step(s, b), state, raw)  # noqa: SLF001
    return {"seconds": seconds, **stats}


def bench_solo(config, builder, stats12, split, args) -> dict:
    member = members_of(1, config)[0]
    cfg = population.member_config(config, member, 0)
    exp = experiment.make_experiment(cfg, args.train_size)
    spec = resident.BatchSpec.from_config(exp.leads, stats12.select(exp.leads), augment.AugmentConfig())
    feed = feeds.DeviceFeed(exp, split, spec, 0)
    state = exp.init_state()
    seconds = timed(feed.run, state, args.k, args.dispatches)
    x = {"ecg": jnp.zeros((args.batch, preprocessing.WINDOW_SAMPLES, 3)), "label": jnp.zeros((args.batch,))}
    stats = hlo_stats(lambda s, b: feed._step(s, b), state, x)  # noqa: SLF001
    return {"seconds": seconds, **stats}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p", default="1,2,4,8", help="population sizes")
    ap.add_argument(
        "--passes",
        default="1,all",
        help="members per vectorised pass to compare: 1 = one after another (lax.map), all = vmap of all",
    )
    ap.add_argument("--batch", type=int, default=16, help="global batch")
    ap.add_argument("--k", type=int, default=4, help="steps per dispatch")
    ap.add_argument("--dispatches", type=int, default=3, help="timed dispatches per cell")
    ap.add_argument("--base", type=int, default=48)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--protocol_windows", type=int, default=11_700, help="estimate: training windows")
    ap.add_argument("--protocol_epochs", type=int, default=25, help="estimate: epochs")
    ap.add_argument("--hbm_tbps", type=float, default=3.35, help="estimate: H100 SXM memory bandwidth")
    ap.add_argument("--tflops", type=float, default=60.0, help="estimate: sustained float32 TFLOP/s")
    args = ap.parse_args()

    import builtdata

    data_dir = builtdata.build(tempfile.mkdtemp(prefix="popbench-"))
    config = config_for(args)
    config.data_dir = data_dir
    builder = built.load_builder(data_dir, "built_mi")
    args.train_size = built.split_size(builder, "train")
    stats12 = norm_stats.compute_from_split(builder, "train", leads_lib.CANONICAL_LEADS, 64)
    mesh = mesh_lib.make_mesh()
    split = resident.load_resident(builder, "train", mesh)
    samples = args.batch * args.k * args.dispatches
    print(
        f"devices: {jax.device_count()} x {jax.devices()[0].platform}; model base {args.base} depth "
        f"{args.depth}; batch {args.batch}; K={args.k}; {args.dispatches} timed dispatches; 3 leads"
    )
    solo = bench_solo(config, builder, stats12, split, args)
    solo_rate = samples / solo["seconds"]
    print(
        "| P | members per pass | samples/s per member | member-samples/s | vs solo | fusions/step "
        "| fusions/step/member | MB/member-sample | GFLOP/member-sample |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| solo | - | {solo_rate:.1f} | {solo_rate:.1f} | 1.00 | {solo['fusions']} | {solo['fusions']} | "
        f"{solo['bytes'] / args.batch / 1e6:.1f} | {solo['flops'] / args.batch / 1e9:.3f} |"
    )
    per_sample = None
    for p in [int(v) for v in args.p.split(",")]:
        passes = sorted({p if v == "all" else min(int(v), p) for v in args.passes.split(",")}, reverse=True)
        for per_pass in passes:
            r = bench_population(p, per_pass, config, builder, stats12, split, args)
            rate = samples / r["seconds"]  # each member trains on every sample
            mb = r["bytes"] / args.batch / p / 1e6
            gf = r["flops"] / args.batch / p / 1e9
            # cost_analysis() counts a loop body once: with passes in a loop
            # (per_pass < P) bytes and FLOPs per member would be undercounted
            cost = f"{mb:.1f} | {gf:.3f}" if per_pass == p else "n/a (loop) | n/a (loop)"
            print(
                f"| {p} | {per_pass} | {rate:.1f} | {rate * p:.1f} | {rate * p / solo_rate:.2f} | "
                f"{r['fusions']} | {r['fusions'] / p:.1f} | {cost} |",
                flush=True,
            )
            if per_pass == p:
                per_sample = (mb * 1e6, gf * 1e9)
    if per_sample:
        bytes_s, flops_s = per_sample
        member_samples = args.protocol_windows * args.protocol_epochs * 21
        t_mem = member_samples * bytes_s / (args.hbm_tbps * 1e12)
        t_flop = member_samples * flops_s / (args.tflops * 1e12)
        print(
            f"\nESTIMATE (not a measurement), from the largest P's per-sample cost (vmap of all members): the protocol trains "
            f"21 members x {args.protocol_epochs} epochs x {args.protocol_windows} windows = "
            f"{member_samples / 1e6:.1f} M member-samples; on one H100 that is >= {t_mem / 60:.1f} min if "
            f"memory-bound at {args.hbm_tbps} TB/s and >= {t_flop / 60:.1f} min at {args.tflops} TFLOP/s "
            "(training only; bytes of the CPU-compiled program)."
        )


if __name__ == "__main__":
    main()
