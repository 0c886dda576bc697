"""Why bfloat16 is slower than float32 on this CPU: the model's own ops, timed in both.

    python bench/bf16_cpu.py            # about a minute on 2 cores

Prints the CPU's bf16-related instruction sets (AVX-512 BF16 and AMX give
x86 CPUs native bf16 dot products; without them every bf16 value is widened
to f32 for arithmetic and narrowed again to store it), then times, interleaved
(median of rounds), in float32 and in bfloat16 with float32 accumulation:

* the matmuls of the paper model's training step at batch 32 (the stem's
  patch matmul, the blocks' mixing matmuls, the downsampling convs), and
* the fused GroupNorm+SiLU forward and backward on the stem's activations
  (statistics in float32 in both, as in the model),

and counts the ``convert`` instructions in the compiled bf16 and f32 training
steps (``bench/model_throughput.py``'s step).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from leadmix_jax import host_memory  # noqa: E402

host_memory.keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from leadmix_jax.model import norm

# (rows, inner, cols) of the paper model's matmuls at batch 32, 3 leads.
MATMULS = {
    "stem patches (40000x21 @ 21x48)": (40000, 21, 48),
    "block 1 mixing (20000x96 @ 96x48)": (20000, 96, 48),
    "down 1 patches (10016x144 @ 144x96)": (10016, 144, 96),
    "block 3 mixing (5024x384 @ 384x192)": (5024, 384, 192),
    "down 3 patches (2528x576 @ 576x384)": (2528, 576, 384),
}


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    model = re.search(r"model name\s*:\s*(.*)", text)
    flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split()) if "flags" in text else set()
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    have = ", ".join(f"{w} {'yes' if w in flags else 'no'}" for w in wanted)
    return f"{model.group(1) if model else '?'}: {have}"


def timed(fns: dict, rounds: int, calls: int) -> dict:
    for f in fns.values():
        f()
        f()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            times[name].append((time.perf_counter() - t0) / calls)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_fns(m: int, k: int, n: int) -> dict:
    fns = {}
    for dt in (jnp.float32, jnp.bfloat16):
        a = jax.random.normal(jax.random.key(0), (m, k)).astype(dt)
        b = jax.random.normal(jax.random.key(1), (k, n)).astype(dt)
        f = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
        fns[jnp.dtype(dt).name] = lambda f=f, a=a, b=b: f(a, b).block_until_ready()
    return fns


def group_norm_fns() -> dict:
    fns = {}
    shape = (32, 1250, 48)  # the stem's activations
    scale, bias = jnp.ones((48,)), jnp.zeros((48,))
    for dt in (jnp.float32, jnp.bfloat16):
        x = jax.random.normal(jax.random.key(0), shape).astype(dt)
        g = jax.random.normal(jax.random.key(1), shape).astype(dt)

        def fwd_bwd(x, g):
            y, vjp = jax.vjp(lambda x: norm.group_norm_silu(x, scale, bias, 8), x)
            return y, vjp(g)[0]

        f = jax.jit(fwd_bwd)
        fns[jnp.dtype(dt).name] = lambda f=f, x=x, g=g: jax.block_until_ready(f(x, g))
    return fns


def convert_counts() -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import model_throughput

    counts = {}
    for dt in (jnp.float32, jnp.bfloat16):
        *_, train_c, _ = model_throughput.make_jax_steps(3, 32, dt)
        text = train_c.as_text()
        counts[jnp.dtype(dt).name] = (
            len(re.findall(r"\bconvert\(", text)),
            len(re.findall(r"\bbf16\[", text)),
            model_throughput.hlo_stats(train_c, 32)["mb"],
        )
    return counts


def main():
    print(f"cpu: {cpu_flags()}; jax {jax.__version__}, {jax.devices()[0].device_kind}")
    print("\n| op | float32 ms | bfloat16 ms | bf16 / f32 time |\n|---|---:|---:|---:|")
    for name, (m, k, n) in MATMULS.items():
        t = timed(matmul_fns(m, k, n), rounds=7, calls=5)
        print(
            f"| {name} | {t['float32'] * 1e3:.2f} | {t['bfloat16'] * 1e3:.2f} | {t['bfloat16'] / t['float32']:.2f} |"
        )
    t = timed(group_norm_fns(), rounds=7, calls=3)
    print(
        f"| GroupNorm+SiLU fwd+bwd (32x1250x48) | {t['float32'] * 1e3:.2f} | {t['bfloat16'] * 1e3:.2f} | "
        f"{t['bfloat16'] / t['float32']:.2f} |"
    )
    print("\ncompiled training step (paper model, 3 leads, batch 32):")
    for dt, (converts, bf16_shapes, mb) in convert_counts().items():
        print(
            f"  {dt}: {converts} convert instructions, {bf16_shapes} bf16-typed shapes, {mb:.1f} MB accessed/sample"
        )


if __name__ == "__main__":
    main()
