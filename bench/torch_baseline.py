"""PyTorch baseline for bench/model_throughput.py: LeadMix-MST in PyTorch,
written from the paper's architecture (module names match the official state_dict, so
official weights load with strict=True), timed the same way as the JAX model
in the same run: training step (forward, backward, AdamW) and inference
samples/s, eager and torch.compile.

    python bench/torch_baseline.py --leads=3 --batch=32 [--compile] [--check=fixture.npz]

--check loads an official parity fixture and asserts the logits match, which
proves this baseline is the official architecture.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 8):
        super().__init__()
        h = max(1, c // r)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool1d(1), nn.Conv1d(c, h, 1), nn.ReLU(), nn.Conv1d(h, c, 1), nn.Sigmoid()
        )

    def forward(self, x):
        return x * self.fc(x)


class Block(nn.Module):
    def __init__(self, c: int, n: int, heads: int = 4, drop: float = 0.1):
        super().__init__()
        self.ms1 = nn.Sequential(
            nn.Conv1d(c, c, 3, padding=1, groups=c, bias=False), nn.Conv1d(c, c // 2, 1, bias=False)
        )
        self.ms2 = nn.Sequential(
            nn.Conv1d(c, c, 3, padding=2, dilation=2, groups=c, bias=False),
            nn.Conv1d(c, c // 2, 1, bias=False),
        )
        self.proj = nn.Conv1d(c, c, 1, bias=False)
        self.gn = nn.GroupNorm(8, c)
        self.se = SqueezeExcite(c)
        self.drop = drop
        self.lead_embed = nn.Parameter(torch.randn(n, c))
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.mha = nn.MultiheadAttention(c, heads, dropout=drop, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(c, 2 * c), nn.SiLU(), nn.Dropout(drop), nn.Linear(2 * c, c))
        self.norm_tokens1 = nn.LayerNorm(c)
        self.norm_tokens2 = nn.LayerNorm(c)

    def forward(self, x):
        y = self.proj(torch.cat([self.ms1(x), self.ms2(x)], dim=1))
        y = F.dropout(self.se(F.silu(self.gn(y))), self.drop, self.training)
        g = y.mean(dim=2)
        t0 = self.lead_embed.unsqueeze(0).expand(x.shape[0], -1, -1)
        q, k, v = self.qkv(t0).chunk(3, dim=-1)
        k, v = k + g[:, None], v + g[:, None]
        ln = self.norm_tokens1
        t1 = t0 + self.mha(ln(q), ln(k), ln(v), need_weights=False)[0]
        t2 = t1 + self.ffn(self.norm_tokens2(t1))
        th = torch.tanh(t2)
        y = y * (1 + 0.1 * th.mean(dim=1)[..., None]) + 0.1 * th.max(dim=1).values[..., None]
        return x + y


class LeadMixMSTTorch(nn.Module):
    def __init__(self, n: int, base: int = 48, depth: int = 3, heads: int = 4, drop: float = 0.1):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(n, base, 7, 2, 3, bias=False), nn.GroupNorm(8, base), nn.SiLU(), nn.MaxPool1d(3, 2, 1)
        )
        body, c = [], base
        for _ in range(depth):
            body += [
                Block(c, n, heads, drop),
                nn.Conv1d(c, 2 * c, 3, 2, 1, bias=False),
                nn.GroupNorm(8, 2 * c),
                nn.SiLU(),
            ]
            c *= 2
        self.body = nn.Sequential(*body)
        self.head = nn.Sequential(nn.AdaptiveAvgPool1d(1))
        self.drop = drop
        self.fc = nn.Linear(c, 1)

    def forward(self, x):
        h = self.head(self.body(self.stem(x))).squeeze(-1)
        return self.fc(F.dropout(h, self.drop, self.training))


def check(path: str) -> float:
    data = np.load(path)
    n, base, depth, heads, _ = (int(v) for v in data["config"])
    model = LeadMixMSTTorch(n, base, depth, heads).eval()
    model.load_state_dict(
        {
            k[len("state_dict/") :]: torch.from_numpy(data[k])
            for k in data.files
            if k.startswith("state_dict/")
        },
        strict=True,
    )
    with torch.no_grad():
        out = model(torch.from_numpy(data["x"])).numpy()
    err = float(np.abs(out - data["logits"]).max())
    assert err < 1e-4, f"baseline does not match the official logits: max error {err}"
    return err


def make_steps(leads: int, batch: int, compiled: bool, device: str = "cpu", bf16: bool = False):
    """``(train_step, infer)`` closures on a fixed random batch ``(batch, leads, 2500)``:
    a training step (forward, backward, AdamW) and inference (sigmoid, no grad).

    On ``device='cuda'`` each closure ends with ``torch.cuda.synchronize()`` so
    that a host clock around it times the work (as JAX's ``block_until_ready``);
    ``bf16`` runs forward and backward under bf16 autocast (weights and AdamW in f32).
    """
    torch.manual_seed(0)
    model = LeadMixMSTTorch(leads).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    x = torch.randn(batch, leads, 2500, device=device)
    y = (torch.rand(batch, 1, device=device) > 0.5).float()
    fwd = torch.compile(model) if compiled else model
    autocast = functools.partial(torch.autocast, device_type=torch.device(device).type, dtype=torch.bfloat16)
    context = autocast if bf16 else contextlib.nullcontext
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        with context():
            loss = F.binary_cross_entropy_with_logits(fwd(x).float(), y)
        loss.backward()
        opt.step()
        sync()

    def infer():
        model.eval()
        with torch.no_grad(), context():
            torch.sigmoid(fwd(x))
        sync()

    return train_step, infer


def bench(leads: int, batch: int, compiled: bool, steps: int) -> tuple[float, float]:
    train_step, infer = make_steps(leads, batch, compiled)
    t_train = _time(train_step, steps)
    t_infer = _time(infer, steps)
    return batch / t_train, batch / t_infer


def _time(fn, steps):
    fn()
    fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", default="3")
    ap.add_argument("--batch", default="32")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--check", default=None, help="official parity fixture .npz to verify against")
    args = ap.parse_args()
    if args.check:
        print(f"baseline matches official logits (max abs error {check(args.check):.2e})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| leads | batch | mode | train samples/s | infer samples/s |")
    print("|---|---|---|---|---|")
    for leads in (int(v) for v in args.leads.split(",")):
        for batch in (int(v) for v in args.batch.split(",")):
            for compiled in [False, True] if args.compile else [False]:
                tr, inf = bench(leads, batch, compiled, args.steps)
                mode = "torch.compile" if compiled else "eager"
                print(f"| {leads} | {batch} | {mode} | {tr:,.0f} | {inf:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
