"""The official PyTorch LeadMix-MST trained on the same windows as a JAX run:
the reference against which launch.py's results are read.

    PYTHONPATH=. python bench/torch_train.py --data_dir=~/tensorflow_datasets \
        --dataset=ptbxl_mi/paper_100hz --leads=all12 --seeds=0,1,2 [--out=results.json]

Model: ``bench/torch_baseline.LeadMixMSTTorch`` (the official architecture;
its module names load official state_dicts with ``strict=True``). Recipe:
docs/training.md, as the JAX paper config runs it: AdamW (lr 1e-3, weight
decay 1e-3, betas 0.9/0.999), batch 32 of shuffled training windows (the
last partial batch dropped, as the JAX loop does), 25 epochs, BCE with
logits, dropout 0.1, per-lead z-scoring with the training split's mean and
std, the epoch with the best validation AUROC kept. Prints, per seed, the
test window AUROC and the patient-level AUROC with its patient-bootstrap
95 % CI, computed by the same functions as ``--mode=eval``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from torch.nn import functional as F

from torch_baseline import LeadMixMSTTorch  # bench/torch_baseline.py, beside this script
from leadmix_jax import metrics
from leadmix_jax.data import leads as leads_lib
from leadmix_jax.evaluate import level_metrics
from leadmix_jax.input import built


def load_split(builder, split: str, lead_idx) -> dict[str, np.ndarray]:
    """``ecg (n, N, 2500)`` float32 channels-first, ``label (n,)``, ids."""
    rows = [ex for _, ex in built.read_rows(builder, split, range(built.split_size(builder, split)))]
    return {
        "ecg": np.stack([r["ecg"][:, lead_idx].T for r in rows]).astype(np.float32),
        "label": np.array([int(r["label"]) for r in rows], np.float32),
        "record": np.array([built.decode(r["record_id"]) for r in rows]),
        "patient": np.array([built.decode(r["patient_id"]) for r in rows]),
    }


def probabilities(model, ecg: np.ndarray, batch: int = 128) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        out = [torch.sigmoid(model(torch.from_numpy(ecg[i : i + batch]))) for i in range(0, len(ecg), batch)]
    return torch.cat(out).squeeze(-1).numpy()


def train_one(data: dict, seed: int, epochs: int, batch: int) -> tuple[dict, list[float]]:
    """Trains one model; returns the best-validation state and the validation AUROC per epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = data["train"]
    model = LeadMixMSTTorch(train["ecg"].shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-3)
    best, best_auc, history = None, -1.0, []
    steps = len(train["ecg"]) // batch
    for _ in range(epochs):
        order = rng.permutation(len(train["ecg"]))
        model.train()
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            x, y = torch.from_numpy(train["ecg"][idx]), torch.from_numpy(train["label"][idx])
            opt.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(model(x).squeeze(-1), y).backward()
            opt.step()
        auc = metrics.auroc(data["validation"]["label"], probabilities(model, data["validation"]["ecg"]))
        history.append(round(float(auc), 4))
        if auc > best_auc:
            best_auc, best = auc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best)
    return model, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--dataset", default="ptbxl_mi/paper_100hz")
    parser.add_argument("--leads", default="all12")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    builder = built.load_builder(args.data_dir, args.dataset)
    idx = list(leads_lib.lead_indices(args.leads))
    data = {s: load_split(builder, s, idx) for s in ("train", "validation", "test")}
    mean = data["train"]["ecg"].mean(axis=(0, 2), keepdims=True)
    std = data["train"]["ecg"].std(axis=(0, 2), keepdims=True)
    for split in data.values():
        split["ecg"] = ((split["ecg"] - mean) / std).astype(np.float32)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        model, history = train_one(data, seed, args.epochs, args.batch)
        test = data["test"]
        p = probabilities(model, test["ecg"])
        levels = level_metrics.evaluate_levels(p, test["label"], test["record"], test["patient"], seed=0)
        patient = levels["levels"]["patient"]["thresholds"]["0.5"]
        row = {
            "seed": seed,
            "best_val_auroc": max(history),
            "best_epoch": history.index(max(history)) + 1,
            "test_window_auroc": float(metrics.auroc(test["label"], p)),
            "test_patient_auroc": patient["metrics"]["auroc"],
            "test_patient_auroc_ci": patient["ci"]["auroc"],
            "val_auroc_per_epoch": history,
        }
        results.append(row)
        print(
            f"seed {seed}: best validation AUROC {row['best_val_auroc']:.4f} (epoch {row['best_epoch']}); "
            f"test window AUROC {row['test_window_auroc']:.4f}, patient AUROC {row['test_patient_auroc']:.4f} "
            f"[{row['test_patient_auroc_ci'][0]:.4f}, {row['test_patient_auroc_ci'][1]:.4f}]",
            flush=True,
        )
    aucs = [r["test_window_auroc"] for r in results]
    print(
        f"{args.dataset} {args.leads}: test window AUROC {np.mean(aucs):.4f} ± {np.std(aucs, ddof=1) if len(aucs) > 1 else 0:.4f}"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
