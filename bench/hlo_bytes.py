"""Where the bytes of the compiled training step go: per layer function, forward and backward.

    python bench/hlo_bytes.py                      # paper model, 3 leads, batch 32, training step
    python bench/hlo_bytes.py --leads=12 --step=infer --top=20

Compiles ``bench/model_throughput.py``'s step with every function of
the model's ops (:mod:`leadmix_jax.model.conv`, ``norm``, ``dropout``) it calls
wrapped in a ``jax.named_scope``,
then reads the optimised HLO: for each instruction outside fused
computations, the bytes it accesses are its output plus its operands (the
same rule as XLA's ``cost_analysis()``; both totals are printed).
Instructions are attributed to the innermost layer scope in their
``op_name`` (``bwd`` when it is under ``transpose(...)``, the backward pass);
``other`` is what no layer function produced (optimizer, loss, head).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from leadmix_jax import host_memory  # noqa: E402

host_memory.keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import model_throughput  # noqa: E402
from leadmix_jax.model import conv, dropout, norm  # noqa: E402

# name -> the module the model calls it from
SCOPED = {
    "depthwise_conv": conv,
    "group_norm_silu": norm,
    "strided_conv_patches": conv,
    "strided_conv": conv,
    "max_pool": conv,
    "dropout": dropout,
    "layer_norm": norm,
}
DTYPE_BYTES = {
    "f32": 4,
    "bf16": 2,
    "f16": 2,
    "s32": 4,
    "u32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
    "pred": 1,
    "s8": 1,
    "u8": 1,
}
SHAPE = re.compile(r"\b(" + "|".join(DTYPE_BYTES) + r")\[([0-9,]*)\]")
INSTR = re.compile(r"^\s+(?:ROOT )?%?([\w.\-]+) = (.*?) ([a-z\-]+)\((.*)$")


def shape_bytes(text: str) -> int:
    total = 0
    for dtype, dims in SHAPE.findall(text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * DTYPE_BYTES[dtype]
    return total


@contextlib.contextmanager
def scoped_layers():
    """While tracing: each layer function in ``SCOPED`` runs under a named scope of its name."""
    saved = {name: getattr(module, name) for name, module in SCOPED.items()}

    def wrap(name, fn):
        @functools.wraps(fn)
        def scoped(*args, **kwargs):
            with jax.named_scope(name):
                return fn(*args, **kwargs)

        return scoped

    for name, fn in saved.items():
        setattr(SCOPED[name], name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(SCOPED[name], name, fn)


def instructions(hlo: str) -> list[tuple[int, str, str, str]]:
    """``(bytes accessed, name, opcode, op_name)`` of every unfused instruction with data."""
    sizes, rows, computation = {}, [], None
    lines = hlo.splitlines()
    for line in lines:  # output sizes of every instruction and computation parameter
        m = INSTR.match(line)
        if m:
            sizes[m.group(1)] = shape_bytes(m.group(2))
        header = re.match(r"^(?:ENTRY )?%?[\w.\-]+ \((.*)\) -> .*\{$", line)
        if header:
            for p in re.finditer(r"([\w.\-]+): ([a-z0-9]+\[[0-9,]*\])", header.group(1)):
                sizes[p.group(1)] = shape_bytes(p.group(2))
    for line in lines:
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header:
            computation = header.group(1)
            continue
        m = INSTR.match(line)
        if not m or computation is None or "fused" in computation:
            continue
        name, opcode, rest = m.group(1), m.group(3), m.group(4)
        if opcode in ("parameter", "get-tuple-element", "tuple", "constant", "bitcast"):
            continue
        operands = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
        meta = re.search(r'op_name="([^"]*)"', rest)
        rows.append(
            (
                sizes.get(name, 0) + sum(sizes.get(o, 0) for o in operands),
                name,
                opcode,
                meta.group(1) if meta else "",
            )
        )
    return rows


def component(op_name: str) -> str:
    names = re.findall("|".join(SCOPED), op_name)
    return ("bwd " if "transpose(" in op_name else "fwd ") + (names[-1] if names else "other")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--step", choices=("train", "infer"), default="train")
    ap.add_argument("--top", type=int, default=10, help="also list the N largest instructions")
    args = ap.parse_args()
    with scoped_layers():
        *_, train_c, infer_c = model_throughput.make_jax_steps(args.leads, args.batch, jnp.dtype(args.dtype))
    compiled = train_c if args.step == "train" else infer_c
    stats = model_throughput.hlo_stats(compiled, args.batch)
    rows = instructions(compiled.as_text())
    total = sum(r[0] for r in rows)
    per_sample = lambda b: b / args.batch / 1e6  # noqa: E731
    print(
        f"{args.step} step, {args.leads} leads, batch {args.batch}, {args.dtype}: cost_analysis() "
        f"{stats['mb']:.1f} MB/sample; instructions below sum to {per_sample(total):.1f} MB/sample, "
        f"{stats['fusions']} fusions"
    )
    by_component = collections.Counter()
    for b, _, _, op_name in rows:
        by_component[component(op_name)] += b
    print("\n| part | MB per sample | share |\n|---|---:|---:|")
    for name, b in by_component.most_common():
        print(f"| {name} | {per_sample(b):.2f} | {b / total:.0%} |")
    if args.top:
        print("\n| largest instructions | opcode | part | MB per sample |\n|---|---|---|---:|")
        for b, name, opcode, op_name in sorted(rows, reverse=True)[: args.top]:
            print(f"| {name} | {opcode} | {component(op_name)} | {per_sample(b):.2f} |")


if __name__ == "__main__":
    main()
