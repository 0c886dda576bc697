"""End-to-end training throughput: grain streaming vs device-resident input,
K training steps per dispatch.

For every global batch size, input mode and K (steps per dispatch) it prints:
  * end-to-end samples/s: the training loop's dispatches (``feed.run``),
    input included (grain: pipeline + one host->device copy of K batches per
    dispatch; device: shuffle/gather/z-score inside the compiled call);
  * device-only samples/s: the same scan of K training steps on K constant
    batches already on the devices (no input at all);
  * e2e / device-only;
  * dispatches per epoch (of the benchmarked split) and host->device bytes
    per training step;
  * for grain, the fraction of wall time spent waiting for the pipeline.

End-to-end and device-only are timed in alternating rounds (``--rounds``,
median reported) after both have compiled.

    python bench/train_throughput.py --batch=32,256 --modes=grain,device --k=1,8,32
    python bench/train_throughput.py --batch=32 --modes=device --k=8 --dispatches=3   # quick
    python bench/train_throughput.py --data_dir=~/tensorflow_datasets --dataset=sph_mi/paper --workers=4

Without --data_dir it builds the small synthetic dataset of the tests
(tests/builtdata, 32 training windows) in a temporary folder: the numbers
then measure per-example input cost, not disk throughput of a full database.
Each (batch, K) compiles two scans (device mode's and the constant-batch
one), so the full table takes a while on a small CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leadmix_jax import host_memory  # noqa: E402

host_memory.keep_freed_memory()  # before JAX starts its CPU client

from configs import default  # noqa: E402
from leadmix_jax.train import feeds  # noqa: E402
from leadmix_jax.input import pipeline
from leadmix_jax.data import preprocessing
from leadmix_jax.train import experiment
from leadmix_jax.input import norm_stats
from leadmix_jax.input import built


def _timed(feed_run, state, k, dispatches):
    """``dispatches`` dispatches of ``k`` steps; returns (state, seconds)."""
    t0 = time.perf_counter()
    for _ in range(dispatches):
        state, m = feed_run(state, k)
    jax.block_until_ready(m)
    return state, time.perf_counter() - t0


def h2d_bytes_per_step(feed, batch: int, num_leads: int) -> int:
    """Host->device bytes of one step's global batch: float32 windows and labels
    in grain mode, nothing in device mode (the split is already there)."""
    if isinstance(feed, feeds.GrainFeed):
        return batch * (preprocessing.WINDOW_SAMPLES * num_leads + 1) * 4
    return 0


def bench(builder, split, config, mode, k, dispatches, stats, rounds=3):
    """End-to-end and device-only samples/s of one (mode, K): each warmed up
    (compiled) first, then timed in ``rounds`` alternating rounds of
    ``dispatches`` dispatches; the medians are reported, so that drift in the
    machine's speed hits both alike."""
    exp = experiment.make_experiment(config, built.split_size(builder, split))
    pcfg = pipeline.PipelineConfig(
        leads=exp.leads, global_batch=config.batch_size, seed=0, workers=config.workers
    )
    feed = feeds.make_feed(exp, config, builder, stats, pcfg, mode=mode, reason="benchmark")
    # Device-only: the loop of k steps over constant batches already on the devices.
    # (grain mode: the very function its end-to-end run used.)
    const = feed if isinstance(feed, feeds.GrainFeed) else feeds.GrainFeed(exp, None)
    shape = (k, config.batch_size, preprocessing.WINDOW_SAMPLES, len(exp.leads))
    rng = np.random.default_rng(0)
    batches = {
        "ecg": jax.device_put(rng.standard_normal(shape, np.float32), const._sharding),  # noqa: SLF001
        "label": jax.device_put((rng.uniform(size=shape[:2]) < 0.5).astype(np.float32), const._sharding),
    }  # noqa: SLF001
    runs = {"e2e": feed.run, "device": lambda s, _k: const.run_on_device(s, batches, k)}
    state = exp.init_state()
    for fn in runs.values():  # warm-up: compiles
        state, _ = _timed(fn, state, k, 1)
    seconds = {name: [] for name in runs}
    feed.wait_s = 0.0
    for _ in range(rounds):
        for name, fn in runs.items():
            state, t = _timed(fn, state, k, dispatches)
            seconds[name].append(t)
    n = built.split_size(builder, split)
    rate = {name: config.batch_size * k * dispatches / statistics.median(t) for name, t in seconds.items()}
    return {
        **rate,
        "dispatches_per_epoch": math.ceil(max(1, n // config.batch_size) / k),
        "h2d_bytes": h2d_bytes_per_step(feed, config.batch_size, len(exp.leads)),
        "wait": feed.wait_s / sum(seconds["e2e"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--dataset", default="built_mi")
    ap.add_argument("--split", default="train")
    ap.add_argument("--batch", default="32,256", help="global batch sizes")
    ap.add_argument("--modes", default="grain,device", help="input modes: grain, device")
    ap.add_argument("--k", default="1,8,32", help="steps per dispatch")
    ap.add_argument("--leads", default="II,III,aVF")
    ap.add_argument("--workers", type=int, default=0, help="grain worker processes")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--base", type=int, default=None, help="model width (default: the paper's 48)")
    ap.add_argument(
        "--min_steps",
        type=int,
        default=16,
        help="timed steps per measurement at least (rounded up to whole dispatches)",
    )
    ap.add_argument("--dispatches", type=int, default=None, help="timed dispatches (overrides --min_steps)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per mode (median)")
    args = ap.parse_args()
    from absl import flags

    flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags
    if args.data_dir is None:
        sys.path.insert(0, str(ROOT / "tests"))
        import builtdata

        args.data_dir = builtdata.build(tempfile.mkdtemp(prefix="leadmix_bench_"))
        args.dataset = builtdata.NAME
    builder = built.load_builder(args.data_dir, args.dataset)
    dev = jax.devices()[0]
    n = built.split_size(builder, args.split)
    print(
        f"device: {dev.device_kind} x{jax.device_count()} ({jax.default_backend()}), "
        f"dataset {args.dataset}:{args.split} ({n} examples), leads {args.leads}, {args.dtype}, "
        f"grain workers {args.workers}; load average at start {os.getloadavg()}"
    )
    print(
        "| batch | mode | K | end-to-end samples/s | device-only samples/s | e2e / device-only | "
        "dispatches per epoch | host->device bytes per step | waiting for data |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    stats = None
    for batch in (int(b) for b in args.batch.split(",")):
        for k in (int(x) for x in args.k.split(",")):
            for mode in args.modes.split(","):
                config = default.get_config()
                config.leads, config.batch_size, config.workers = args.leads, batch, args.workers
                config.model.dtype = args.dtype
                if args.base:
                    config.model.base = args.base
                if stats is None:
                    leads = experiment.make_experiment(config).leads
                    stats = norm_stats.compute_from_split(builder, args.split, leads, 512)
                dispatches = args.dispatches or math.ceil(args.min_steps / k)
                r = bench(builder, args.split, config, mode, k, dispatches, stats, args.rounds)
                wait = f"{100 * r['wait']:.0f} %" if mode == "grain" else "-"
                print(
                    f"| {batch} | {mode} | {k} | {r['e2e']:,.1f} | {r['device']:,.1f} | "
                    f"{r['e2e'] / r['device']:.3f} | {r['dispatches_per_epoch']} | {r['h2d_bytes']:,} | "
                    f"{wait} |",
                    flush=True,
                )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
