"""Training-step and inference throughput of LeadMix-MST: JAX vs PyTorch, each in its own process.

For every (leads, batch) cell each system runs in a worker process of its
own, with its own defaults: the JAX model (a jitted training step: forward,
backward, AdamW update, donated state; and jitted inference) with the
allocator setting ``launch.py`` applies on a CPU (``leadmix_jax.host_memory``),
and the PyTorch baseline of ``bench/torch_baseline.py`` (verified against the
official logits), eager and ``torch.compile``, with glibc's defaults. One
process per system keeps one system's allocator setting and thread pool from
changing another's speed. The workers build and warm up one after another;
then the timed rounds are handed out in turn: in each of ``--rounds`` rounds
every worker in turn times ``--steps`` training steps and ``--infer-steps``
inference calls while the others wait (blocked on a pipe, idle). Reported:
the median samples/s per system, and the JAX/PyTorch ratios of the medians
and [the median of the per-round ratios] (each round's systems ran back to
back, so a slow phase of the machine cancels out). The JAX worker also
reports, from its compiled training step (``jit(...).lower(...).compile()``),
the proxies that do not depend on load: GFLOP and bytes accessed per sample
(``cost_analysis()``), temporary memory per sample (``memory_analysis()``)
and the number of fusions in the optimised HLO.

    PYTHONPATH=. python bench/model_throughput.py                 # 3,12 leads x batch 32,256
    PYTHONPATH=. python bench/model_throughput.py --leads=3 --batch=32 --steps=3 --rounds=11
    PYTHONPATH=. python bench/model_throughput.py --no-torch --dtypes=float32,bfloat16
    PYTHONPATH=. python bench/model_throughput.py --hlo-only     # proxies only, no timing
    PYTHONPATH=. python bench/model_throughput.py --forms=patches,library,grouped --no-torch
    PYTHONPATH=. python bench/model_throughput.py --torch-device=cuda --batch=256,1024 \
        --dtypes=float32,bfloat16 --torch=eager,compile,compile-bf16 --steps=20   # on a GPU

``--forms`` adds JAX systems with one op in its export formulation (the
measurement behind the per-backend choice in ``leadmix_jax/model/conv.py``):
``library`` makes the stem and downsampling convs ``lax.conv_general_dilated``
instead of patch matmuls; ``grouped`` makes the dilated depthwise convs
``feature_group_count`` convs instead of shifted sums.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time

# This checkout's leadmix_jax, not whichever one is installed (as the sibling benchmarks do).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from leadmix_jax import host_memory  # noqa: E402
from leadmix_jax.model import conv  # noqa: E402
from leadmix_jax.model.leadmix import LeadMixMST  # noqa: E402


LENGTH = 2500


FORMULATIONS = {
    # name -> (leadmix_jax.model.conv attribute the model calls, the function put in its place)
    "patches": None,  # the default model: im2col-matmul strided convs, shifted-sum depthwise convs
    "library": ("strided_conv_patches", "strided_conv"),  # lax.conv_general_dilated, stride 2
    "grouped": ("depthwise_conv", "depthwise_conv_grouped"),  # feature_group_count=C conv
}


@contextlib.contextmanager
def formulation(name: str):
    """While tracing: one of the model's ops in formulation ``name`` (see
    ``FORMULATIONS``; 'patches' is the default model: patch-matmul strided
    convs and shifted-sum depthwise convs)."""
    if name not in FORMULATIONS:
        raise ValueError(f"unknown formulation {name!r}: use one of {sorted(FORMULATIONS)}")
    swap = FORMULATIONS[name]
    if swap is None:
        yield
        return
    attr, replacement = swap
    saved = getattr(conv, attr)
    setattr(conv, attr, getattr(conv, replacement))
    try:
        yield
    finally:
        setattr(conv, attr, saved)


def make_jax_steps(num_leads: int, batch: int, dtype, lr: float = 1e-3, wd: float = 1e-3, form="patches"):
    """Compiled JAX ``train(params, opt_state, x, y, key)`` and ``infer(params, x)``
    plus their inputs, for a random batch ``x (batch, 2500, num_leads)``."""
    with formulation(form):
        return _make_jax_steps(num_leads, batch, dtype, lr, wd)


def _make_jax_steps(num_leads, batch, dtype, lr, wd):
    model = LeadMixMST(num_leads, dtype=dtype, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(lr, weight_decay=wd)
    opt_state = tx.init(params)

    def loss_fn(p, x, y, key):
        logits = nnx.merge(graphdef, p)(x, rng=key)
        return optax.sigmoid_binary_cross_entropy(logits, y).mean()

    def train(p, o, x, y, key):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y, key)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    def infer(p, x):
        return jax.nn.sigmoid(nnx.merge(graphdef, p)(x))

    x = jax.random.normal(jax.random.key(0), (batch, LENGTH, num_leads))
    y = (jax.random.uniform(jax.random.key(1), (batch,)) > 0.5).astype(jnp.float32)
    key = jax.random.key(2)
    train_c = jax.jit(train, donate_argnums=(0, 1)).lower(params, opt_state, x, y, key).compile()
    infer_c = jax.jit(infer).lower(params, x).compile()
    return params, opt_state, x, y, key, train_c, infer_c


def hlo_stats(compiled, batch: int) -> dict:
    """Per-sample GFLOP, MB accessed, MB temp, and fusions per step of a compiled step."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    text = compiled.as_text()
    fusions = len(re.findall(r"=\s*\S+\s+fusion\(", text))
    mem = compiled.memory_analysis()
    return {
        "gflop": cost.get("flops", 0.0) / batch / 1e9,
        "mb": cost.get("bytes accessed", 0.0) / batch / 1e6,
        "temp_mb": (mem.temp_size_in_bytes / batch / 1e6) if mem is not None else float("nan"),
        "fusions": fusions,
    }


def jax_timers(num_leads, batch, dtype, form="patches"):
    params, opt_state, x, y, key, train_c, infer_c = make_jax_steps(num_leads, batch, dtype, form=form)
    state = [params, opt_state]

    def train_once():
        state[0], state[1], loss = train_c(state[0], state[1], x, y, key)
        loss.block_until_ready()

    def infer_once():
        infer_c(state[0], x).block_until_ready()

    return train_once, infer_once, hlo_stats(train_c, batch), hlo_stats(infer_c, batch)


def time_steps(fn, steps: int) -> float:
    """Seconds per call over ``steps`` calls (the caller has warmed ``fn`` up)."""
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def load() -> str:
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average n/a"


TORCH_SYSTEMS = {  # --torch name -> (label, compiled, bf16 autocast)
    "eager": ("torch eager", False, False),
    "compile": ("torch.compile", True, False),
    "eager-bf16": ("torch eager bf16", False, True),
    "compile-bf16": ("torch.compile bf16", True, True),
}
_MSG = "@@ "  # prefix of the worker's protocol lines (anything else on its stdout is passed through)


# ----------------------------------------------------------------------------
# The worker: one system in one process.


def build_system(system: str, leads: int, batch: int, torch_device: str):
    """``(train_fn, infer_fn, proxies)`` of ``system``: ``jax <dtype>[ <form>]`` or a --torch name."""
    if system.startswith("jax "):
        dtype, _, form = system[len("jax ") :].partition(" ")
        train_fn, infer_fn, st_train, st_infer = jax_timers(leads, batch, jnp.dtype(dtype), form or "patches")
        return train_fn, infer_fn, {"train": st_train, "infer": st_infer}
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_baseline

    _, compiled, bf16 = TORCH_SYSTEMS[system]
    train_fn, infer_fn = torch_baseline.make_steps(leads, batch, compiled, device=torch_device, bf16=bf16)
    return train_fn, infer_fn, None


def serve(args) -> None:
    """Worker: builds ``args.worker``, warms it up, then times one round per line on stdin."""
    if args.worker.startswith("jax "):
        host_memory.keep_freed_memory()  # launch.py's default; before JAX starts its CPU client
    train_fn, infer_fn, proxies = build_system(args.worker, args.leads_one, args.batch_one, args.torch_device)
    for fn in (train_fn, infer_fn, train_fn, infer_fn):  # compile + warm-up
        fn()
    info = {"proxies": proxies}
    if args.worker.startswith("jax "):
        dev = jax.devices()[0]
        info["device"] = (
            f"device: {dev.device_kind} ({jax.default_backend()}, {jax.device_count()} device(s)), "
            f"jax {jax.__version__}"
        )
    else:
        import torch

        info["torch"] = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(_MSG + json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        result = {
            "train_s": time_steps(train_fn, args.steps),
            "infer_s": time_steps(infer_fn, args.infer_steps),
        }
        print(_MSG + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------
# The parent: workers started in sequence, rounds handed out in turn.


class Worker:
    """One system's worker process and its line protocol."""

    def __init__(self, system: str, leads: int, batch: int, args):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            f"--worker={system}",
            f"--leads={leads}",
            f"--batch={batch}",
            f"--steps={args.steps}",
            f"--infer-steps={args.infer_steps}",
            f"--torch-device={args.torch_device}",
        ]
        env = dict(os.environ)
        env.setdefault("PYTHONPATH", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        # On a GPU the workers share its memory: JAX must not take 75 % of it up front.
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        self.system = system
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self.receive()

    def receive(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(_MSG):
                return json.loads(line[len(_MSG) :])
            print(line, end="", flush=True)
        raise RuntimeError(f"worker {self.system!r} exited with status {self.proc.wait()}")

    def round(self) -> dict:
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _print_proxies(leads: int, batch: int, name: str, proxies: dict) -> None:
    s, si = proxies["train"], proxies["infer"]
    print(
        f"| {leads} | {batch} | {name} | train step: {s['gflop']:.3f} GFLOP, "
        f"{s['mb']:.1f} MB accessed, {s['temp_mb']:.1f} MB temp per sample, "
        f"{s['fusions']} fusions | inference: {si['mb']:.1f} MB/sample, {si['fusions']} fusions |",
        flush=True,
    )


def run_cell(leads: int, batch: int, systems: list[str], args):
    """Times every system of one cell, each in its own worker, rounds in turn.

    Returns ``{system: (train samples/s, infer samples/s)}`` (medians over the
    rounds) and ``{system: (train seconds per round, infer seconds per round)}``."""
    workers = []
    try:
        for system in systems:  # one after another: no compilation overlaps another's
            worker = Worker(system, leads, batch, args)
            workers.append(worker)
            for key in ("device", "torch"):
                if worker.info.get(key):
                    print(f"{system}: {worker.info[key]}", flush=True)
            if worker.info.get("proxies"):
                _print_proxies(leads, batch, system, worker.info["proxies"])
        times = {w.system: ([], []) for w in workers}
        for _ in range(args.rounds):
            for w in workers:
                r = w.round()
                times[w.system][0].append(r["train_s"])
                times[w.system][1].append(r["infer_s"])
    finally:
        for w in workers:
            w.close()
    rates = {
        name: (batch / statistics.median(t), batch / statistics.median(i)) for name, (t, i) in times.items()
    }
    for name, (tr, inf) in rates.items():  # per cell too, so a cut-short run still reports
        print(
            f"| {leads} | {batch} | {name} | train {tr:,.1f} samples/s | infer {inf:,.1f} samples/s |",
            flush=True,
        )
    return rates, times


def paired_ratio(fast: list[float], base: list[float]) -> float:
    """Median over rounds of ``base / fast`` seconds: each round's systems ran
    back to back, so a slow phase of the machine cancels out of the ratio."""
    return statistics.median(b / f for f, b in zip(fast, base))


def print_ratios(results, dtypes) -> None:
    print(
        "\nratios (JAX / baseline; >1 means JAX is faster): of the medians, and [the median of the "
        "per-round ratios]"
    )
    for leads, batch, rates, times in results:
        for dt in dtypes:
            jt, ji = rates[f"jax {dt}"]
            for base in (label for label, *_ in TORCH_SYSTEMS.values()):
                if base in rates:
                    bt, bi = rates[base]
                    pt, pi = (paired_ratio(times[f"jax {dt}"][k], times[base][k]) for k in (0, 1))
                    print(
                        f"leads {leads} batch {batch}: jax {dt} / {base}: train {jt / bt:.2f}x "
                        f"[{pt:.2f}x], infer {ji / bi:.2f}x [{pi:.2f}x]"
                    )
        for dt, form in ((dt, f) for dt in dtypes for f in FORMULATIONS if FORMULATIONS[f]):
            if f"jax {dt} {form}" in rates:
                (pt, pi), (lt, li) = rates[f"jax {dt}"], rates[f"jax {dt} {form}"]
                print(
                    f"leads {leads} batch {batch}: jax {dt} default / {form}: "
                    f"train {pt / lt:.2f}x, infer {pi / li:.2f}x"
                )
        if "jax bfloat16" in rates and "jax float32" in rates:
            (bt, bi), (ft, fi) = rates["jax bfloat16"], rates["jax float32"]
            print(
                f"leads {leads} batch {batch}: jax bfloat16 / float32: train {bt / ft:.2f}x, infer {bi / fi:.2f}x"
            )


def hlo_only(leads_list, batches, dtypes) -> None:
    host_memory.keep_freed_memory()
    for leads in leads_list:
        for batch in batches:
            for dt in dtypes:
                *_, train_c, infer_c = make_jax_steps(leads, batch, jnp.dtype(dt))
                proxies = {"train": hlo_stats(train_c, batch), "infer": hlo_stats(infer_c, batch)}
                _print_proxies(leads, batch, f"jax {dt}", proxies)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", default="3,12", help="comma-separated lead counts")
    ap.add_argument("--batch", default="32,256", help="comma-separated batch sizes")
    ap.add_argument("--dtypes", default="float32", help="JAX compute dtypes, e.g. float32,bfloat16")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per system per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (median reported)")
    ap.add_argument(
        "--infer-steps",
        type=int,
        default=None,
        help="timed inference calls per system per round (default: 4 x --steps; an inference call "
        "is ~4x shorter than a training step, so this gives both about the same time per round)",
    )
    ap.add_argument("--no-torch", action="store_true", help="JAX only")
    ap.add_argument(
        "--torch", default="eager,compile", help=f"PyTorch systems to time: {','.join(TORCH_SYSTEMS)}"
    )
    ap.add_argument("--torch-device", default="cpu", help="PyTorch device: cpu or cuda")
    ap.add_argument("--hlo-only", action="store_true", help="print the compiled-HLO proxies, no timing")
    ap.add_argument(
        "--forms",
        default="patches",
        help="JAX formulations to time: patches (the default model), library (strided convs as "
        "conv_general_dilated), grouped (depthwise convs as feature_group_count convs)",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one system's process
    args = ap.parse_args()
    args.infer_steps = args.infer_steps or 4 * args.steps
    leads_list = [int(v) for v in args.leads.split(",")]
    batches = [int(v) for v in args.batch.split(",")]
    if args.worker:
        args.leads_one, args.batch_one = leads_list[0], batches[0]
        return serve(args)
    dtypes = args.dtypes.split(",")
    # The parent starts no JAX backend (on a GPU it would take memory the workers need).
    print(f"{os.cpu_count()} cores, {load()}")
    print("| leads | batch | system | compiled-HLO proxies (per sample) |\n|---|---|---|---|")
    if args.hlo_only:
        return hlo_only(leads_list, batches, dtypes)
    systems = [
        f"jax {dt}" + ("" if form == "patches" else f" {form}")
        for dt in dtypes
        for form in args.forms.split(",")
    ]
    systems += [] if args.no_torch else [t for t in args.torch.split(",") if t]
    results = []
    for leads in leads_list:
        for batch in batches:
            rates, times = run_cell(leads, batch, systems, args)
            results.append(
                (
                    leads,
                    batch,
                    {_label(k): v for k, v in rates.items()},
                    {_label(k): v for k, v in times.items()},
                )
            )
    print(
        f"\neach system in its own process, rounds in turn ({args.rounds} rounds x {args.steps} training "
        f"steps and {args.infer_steps} inference calls, median), {load()}"
    )
    print("| leads | batch | system | train samples/s | infer samples/s |\n|---|---|---|---|---|")
    for leads, batch, rates, _ in results:
        for name, (tr, inf) in rates.items():
            print(f"| {leads} | {batch} | {name} | {tr:,.1f} | {inf:,.1f} |")
    print_ratios(results, dtypes)


def _label(system: str) -> str:
    """A system's name in the tables (a --torch name becomes its label)."""
    return TORCH_SYSTEMS[system][0] if system in TORCH_SYSTEMS else system


if __name__ == "__main__":
    main()
