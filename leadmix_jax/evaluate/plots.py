"""Matplotlib figures of the evaluation reports and of single-record predictions.

Every function draws one figure, writes it as PNG to ``path`` and closes it
(the Agg backend is used, so no display is needed). Curves come from
scikit-learn (``roc_curve``, ``precision_recall_curve``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

__all__ = ["roc_figure", "pr_figure", "confusion_figure", "record_figure", "reliability_figure"]


def _save(fig, path) -> str:
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
    return str(path)


def _both_classes(labels: np.ndarray) -> bool:
    return labels.size > 0 and labels.min() != labels.max()


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str, path) -> str:
    """ROC curves, one per entry ``name -> (labels (n,), probs (n,))`` (e.g. one per
    level); entries with a single class are listed as undefined."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, probs) in curves.items():
        labels = np.asarray(labels)
        if not _both_classes(labels):
            ax.plot([], [], " ", label=f"{name}: AUROC n/a (one class)")
            continue
        fpr, tpr, _ = skm.roc_curve(labels, probs)
        ax.plot(fpr, tpr, label=f"{name}: AUROC {skm.roc_auc_score(labels, probs):.3f}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(
        xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (FPR)", ylabel="sensitivity (TPR)", title=title
    )
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str, path) -> str:
    """Precision-recall curves (MI = positive class), one per entry."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, probs) in curves.items():
        labels = np.asarray(labels)
        if not _both_classes(labels):
            ax.plot([], [], " ", label=f"{name}: AUPRC n/a (one class)")
            continue
        precision, recall, _ = skm.precision_recall_curve(labels, probs)
        ap = skm.average_precision_score(labels, probs)
        (line,) = ax.step(recall, precision, where="post", label=f"{name}: AUPRC {ap:.3f}")
        ax.axhline(labels.mean(), ls=":", lw=0.8, color=line.get_color())
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)", ylabel="precision", title=title)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def confusion_figure(
    matrices: Mapping[str, Sequence[Sequence[int]]], title: str, path, ncols: int = 3
) -> str:
    """Grid of 2x2 confusion matrices ``name -> [[tn, fp], [fn, tp]]`` (rows =
    true normal/MI, columns = predicted normal/MI)."""
    n = max(1, len(matrices))
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, cm) in zip(axes.flat, matrices.items()):
        cm = np.asarray(cm, dtype=np.int64)
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(int(cm.max()), 1))
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks([0, 1], ["normal", "MI"])
        ax.set_yticks([0, 1], ["normal", "MI"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def record_figure(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    windows: Sequence[tuple[float, float, float | None]],
    title: str,
    path,
    max_points: int = 20000,
) -> str:
    """The leads of one record, each 10-s window shaded by its MI probability.

    Args:
      signal: ``(T, len(leads))`` raw signal (mV) at ``fs``.
      windows: ``(start_s, end_s, probability)``; probability ``None`` marks a
        window dropped by the clean rule (hatched grey).
    """
    signal = np.asarray(signal, dtype=np.float64)
    step = max(1, signal.shape[0] // max_points)
    t = np.arange(0, signal.shape[0], step) / fs
    sig = signal[::step]
    cmap = plt.get_cmap("RdYlGn_r")
    n = len(leads)
    fig, axes = plt.subplots(
        n, 1, figsize=(min(4 + t[-1] * 0.35 if t.size else 8, 24), 1.4 * n + 1), sharex=True, squeeze=False
    )
    for k, (ax, name) in enumerate(zip(axes[:, 0], leads)):
        for start, end, prob in windows:
            ax.axvline(start, color="grey", lw=0.4)
            if prob is None:
                ax.axvspan(start, end, color="lightgrey", alpha=0.5, hatch="//", lw=0)
            else:
                ax.axvspan(start, end, color=cmap(float(prob)), alpha=0.35, lw=0)
                if k == 0:
                    ax.text(
                        (start + end) / 2,
                        1.02,
                        f"{prob:.2f}",
                        transform=ax.get_xaxis_transform(),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
        ax.plot(t, sig[:, k], color="black", lw=0.6)
        ax.set_ylabel(f"{name}\n(mV)", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[:, 0].tolist(), label="window MI probability", fraction=0.02, pad=0.01)
    fig.suptitle(title, fontsize=10)
    fig.savefig(str(path), dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def reliability_figure(cal: Mapping, title: str, path) -> str:
    """Reliability diagram: observed MI rate against mean predicted probability
    per bin, raw and calibrated (``cal``: :func:`leadmix_jax.evaluate.evaluation.calibration_of`)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    for name, style in (("raw", "o-"), ("calibrated", "s-")):
        rows = [b for b in cal[name]["bins"] if b["n"]]
        ax.plot(
            [b["mean_prob"] for b in rows],
            [b["mi_rate"] for b in rows],
            style,
            ms=4,
            label=f"{name} (ECE {cal[name]['ece']:.3f})",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted P(MI)", ylabel="observed MI rate", title=title)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
