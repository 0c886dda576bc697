"""End-to-end training throughput with the real grain input pipeline.

Prints, per global batch size:
  * pipeline: batches/s of the input pipeline alone (samples/s),
  * device: training steps on one constant in-memory batch (the baseline
    with no input cost),
  * end-to-end: pipeline + training step, and the fraction of wall time the
    loop waited for the next batch.

    python bench/train_throughput.py --data_dir=~/tensorflow_datasets --dataset=sph_mi/paper \
        --batch=32,256 --leads=II,III,aVF --workers=4

Without --data_dir it builds a small synthetic dataset (tests/builtdata) in a
temporary folder, so the numbers measure the pipeline's per-example cost on
real-format ArrayRecord files, not disk throughput of a full database.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs import default  # noqa: E402
from leadmix_jax import input_pipeline, train  # noqa: E402


def _timed(it, n):
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return time.perf_counter() - t0


def bench(builder, split, config, steps):
    exp = train.make_experiment(config)
    stats = input_pipeline.compute_norm_stats(builder, split, exp.leads, 512)
    pcfg = input_pipeline.PipelineConfig(leads=exp.leads, global_batch=config.batch_size,
                                         seed=0, workers=config.workers)
    it = iter(input_pipeline.train_dataset(builder, split, pcfg, stats))
    next(it)  # start workers
    # Many batches: the iterator prefetches in threads, a short count would
    # only drain its buffer.
    n_pipe = max(steps, 20_000 // config.batch_size)
    pipe = config.batch_size * n_pipe / _timed(it, n_pipe)

    state = exp.init_state()
    step = exp.compiled_train_step()
    batch = train.global_batch(next(it), exp.data_sharding)
    for _ in range(2):  # compile + warm-up
        state, m = step(state, batch)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    device = config.batch_size * steps / (time.perf_counter() - t0)

    wait = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        tw = time.perf_counter()
        local = next(it)
        wait += time.perf_counter() - tw
        state, m = step(state, train.global_batch(local, exp.data_sharding))
    jax.block_until_ready(m)
    total = time.perf_counter() - t0
    return pipe, device, config.batch_size * steps / total, wait / total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--dataset", default="built_mi")
    ap.add_argument("--split", default="train")
    ap.add_argument("--batch", default="32,256")
    ap.add_argument("--leads", default="II,III,aVF")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    from absl import flags
    flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags
    if args.data_dir is None:
        sys.path.insert(0, str(ROOT / "tests"))
        import builtdata
        args.data_dir = builtdata.build(tempfile.mkdtemp(prefix="leadmix_bench_"))
        args.dataset = builtdata.NAME
    builder = input_pipeline.load_builder(args.data_dir, args.dataset)
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} x{jax.device_count()} ({jax.default_backend()}), "
          f"dataset {args.dataset} ({input_pipeline.split_size(builder, args.split)} examples), "
          f"leads {args.leads}, {args.dtype}, grain workers {args.workers}")
    print("| batch | pipeline samples/s | device-only samples/s | end-to-end samples/s | waiting for data |")
    print("|---|---|---|---|---|")
    for batch in (int(b) for b in args.batch.split(",")):
        config = default.get_config()
        config.leads, config.batch_size, config.workers = args.leads, batch, args.workers
        config.model.dtype = args.dtype
        pipe, device, e2e, wait = bench(builder, args.split, config, args.steps)
        print(f"| {batch} | {pipe:,.0f} | {device:,.0f} | {e2e:,.0f} | {100 * wait:.0f} % |", flush=True)


if __name__ == "__main__":
    main()
