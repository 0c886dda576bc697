"""Compile time of the model's steps, batch 256, 3 leads, f32, with and
without :mod:`leadmix_jax.host_memory`'s allocator settings.

    PYTHONPATH=. python bench/gpu_compile_probe.py                       # glibc defaults
    PYTHONPATH=. python bench/gpu_compile_probe.py --glibc-single-arena  # host_memory's settings

Measured on a 16-core H200 host (jax 0.11.2, one run each): inference
12.9 s with glibc's defaults against 89.6 s with the settings, the loss's
forward with dropout 4.7 s against 21.9 s. That is why
``host_memory.keep_freed_memory`` does nothing where an accelerator is expected.
On the 2-core x86 CPU the settings cost less (the gradient: 17.6 s against
12.9 and 14.1 s), and save more per step there than they cost once.
"""

from __future__ import annotations

import sys
import time

from leadmix_jax import host_memory


def main(single_arena: bool):
    if single_arena:  # before JAX starts its threads
        print("host_memory settings applied:", host_memory.apply_mallopt())
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from leadmix_jax.model.leadmix import LeadMixMST

    graphdef, params = nnx.split(LeadMixMST(3, rngs=nnx.Rngs(0)), nnx.Param)
    x, y, key = jnp.ones((256, 2500, 3)), jnp.ones((256,)), jax.random.key(2)

    def infer(p, x):
        return nnx.merge(graphdef, p)(x)

    def loss(p, x, y, key):
        return optax.sigmoid_binary_cross_entropy(nnx.merge(graphdef, p)(x, rng=key), y).mean()

    for name, fn, args in (
        ("inference", infer, (params, x)),
        ("loss forward with dropout", loss, (params, x, y, key)),
        ("loss gradient", jax.grad(loss), (params, x, y, key)),
    ):
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(*args)
        t1 = time.perf_counter()
        lowered.compile()
        print(f"{name}: lower {t1 - t0:.1f} s, compile {time.perf_counter() - t1:.1f} s", flush=True)


if __name__ == "__main__":
    main("--glibc-single-arena" in sys.argv[1:])
