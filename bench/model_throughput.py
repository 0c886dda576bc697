"""Training-step and inference throughput of LeadMix-MST on the local device.

Measures samples/s of a jitted training step (forward, backward, AdamW
update, donated state) and of jitted inference, for leads x batch x dtype,
with the backend's chosen conv formulations ('auto') and, as the baseline in
the same run, the library-conv formulation (grouped depthwise + lax strided).

    python bench/model_throughput.py                      # the full table
    python bench/model_throughput.py --leads=3 --batch=32 --steps=5
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from leadmix_jax.model import LeadMixMST

# name -> (depthwise_impl, strided_impl)
FORMULATIONS = {"auto": ("auto", "auto"), "shifted+lax": ("shifted", "lax"),
                "shifted+im2col": ("shifted", "im2col"), "library": ("grouped", "lax")}


def make_steps(num_leads: int, dtype, formulation: str, lr: float = 1e-3, wd: float = 1e-3):
    dw, st = FORMULATIONS[formulation]
    model = LeadMixMST(num_leads, dtype=dtype, depthwise_impl=dw, strided_impl=st, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(lr, weight_decay=wd)
    opt_state = tx.init(params)

    def loss_fn(p, x, y, key):
        logits = nnx.merge(graphdef, p)(x, rng=key)
        return optax.sigmoid_binary_cross_entropy(logits, y).mean()

    @jax.jit
    def infer(p, x):
        return jax.nn.sigmoid(nnx.merge(graphdef, p)(x))

    def train(p, o, x, y, key):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y, key)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    return params, opt_state, jax.jit(train, donate_argnums=(0, 1)), infer


def timeit(fn, steps: int) -> float:
    fn()  # compile + warm-up
    fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / steps


def bench_one(num_leads, batch, dtype, formulation, steps):
    params, opt_state, train, infer = make_steps(num_leads, dtype, formulation)
    x = jax.random.normal(jax.random.key(0), (batch, 2500, num_leads))
    y = (jax.random.uniform(jax.random.key(1), (batch,)) > 0.5).astype(jnp.float32)
    key = jax.random.key(2)
    state = [params, opt_state]

    def train_once():
        state[0], state[1], loss = train(state[0], state[1], x, y, key)
        return loss

    t_train = timeit(train_once, steps)
    t_infer = timeit(lambda: infer(state[0], x), steps)
    return batch / t_train, batch / t_infer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", default="3,12")
    ap.add_argument("--batch", default="32,256")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--formulations", default="auto,library")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per cell (after 2 warm-up)")
    args = ap.parse_args()
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({jax.default_backend()}, {jax.device_count()} device(s)), "
          f"jax {jax.__version__}")
    print("| leads | batch | dtype | convs | train samples/s | infer samples/s |")
    print("|---|---|---|---|---|---|")
    grid = itertools.product([int(v) for v in args.leads.split(",")],
                             [int(v) for v in args.batch.split(",")],
                             args.dtypes.split(","), args.formulations.split(","))
    for leads, batch, dtype, form in grid:
        tr, inf = bench_one(leads, batch, jnp.dtype(dtype), form, args.steps)
        print(f"| {leads} | {batch} | {dtype} | {form} | {tr:,.0f} | {inf:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
