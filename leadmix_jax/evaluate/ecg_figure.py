"""An ECG drawn as a clinician reads one, with an attribution map over it.

Paper-speed conventions: 25 mm/s and 10 mm/mV on a grid of 1 mm (light) and
5 mm (dark) squares, one row per lead, 10 s each, the lead's name at the
left. The attribution is a translucent heat band behind each lead's trace
(``|attribution|`` smoothed over 40 ms, one colour scale for the whole
figure, so rows compare), and the title gives the probability and the
decision.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 30.0  # height of one lead's row: +-1.5 mV


def _smooth(a: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.stack([np.convolve(a[:, k], kernel, mode="same") for k in range(a.shape[1])], axis=1)


def attribution_figure(
    window_mv: np.ndarray,
    attr: np.ndarray,
    leads: Sequence[str],
    fs: float,
    title: str,
    path,
    importance: Sequence[float] | None = None,
) -> str:
    """Draws one window ``(T, N)`` in mV with its attributions ``(T, N)``.

    ``importance``: each lead's share of the attribution, printed under its name.
    """
    window_mv, attr = np.asarray(window_mv, np.float64), np.asarray(attr, np.float64)
    n_t, n = window_mv.shape
    width_mm = n_t / fs * MM_PER_S
    height_mm = n * ROW_MM
    fig = plt.figure(figsize=((width_mm + 30) / 25.4, (height_mm + 22) / 25.4))
    ax = fig.add_axes(
        [20 / (width_mm + 30), 8 / (height_mm + 22), width_mm / (width_mm + 30), height_mm / (height_mm + 22)]
    )
    for x in np.arange(0, width_mm + 0.01, 1.0):
        ax.axvline(x, color="#f4c7c3" if x % 5 else "#e08a82", lw=0.25 if x % 5 else 0.5, zorder=0)
    for y in np.arange(0, height_mm + 0.01, 1.0):
        ax.axhline(y, color="#f4c7c3" if y % 5 else "#e08a82", lw=0.25 if y % 5 else 0.5, zorder=0)
    heat = _smooth(np.abs(attr), max(1, int(0.04 * fs)))
    scale = heat.max() if heat.max() > 0 else 1.0
    t_mm = np.arange(n_t) / fs * MM_PER_S
    for k in range(n):
        centre = height_mm - (k + 0.5) * ROW_MM
        ax.imshow(
            heat[None, :, k] / scale,
            extent=(0, width_mm, centre - ROW_MM / 2, centre + ROW_MM / 2),
            aspect="auto",
            cmap="Reds",
            vmin=0,
            vmax=1,
            alpha=0.55,
            zorder=1,
        )
        trace = np.clip(window_mv[:, k] * MM_PER_MV, -ROW_MM / 2, ROW_MM / 2)
        ax.plot(t_mm, centre + trace, color="black", lw=0.7, zorder=2)
        label = leads[k] if importance is None else f"{leads[k]}\n{100 * importance[k]:.0f} %"
        ax.text(-3, centre, label, ha="right", va="center", fontsize=9)
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_xticks(np.arange(0, width_mm + 0.01, MM_PER_S))
    ax.set_xticklabels([f"{s:g}" for s in np.arange(0, n_t / fs + 1e-9, 1.0)], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("s (25 mm/s, 10 mm/mV; red: |attribution|)", fontsize=8)
    fig.suptitle(title, fontsize=10, y=1 - 3 / (height_mm + 22))
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
    return str(path)


def importance_figure(table: dict[str, Sequence[float]], leads: Sequence[str], title: str, path) -> str:
    """Bars of the mean per-lead importance, one group per class (``{class: (N,)}``)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(leads) + 2), 3.2))
    width = 0.8 / max(1, len(table))
    for i, (name, values) in enumerate(table.items()):
        ax.bar(np.arange(len(leads)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(leads)) + width * (len(table) - 1) / 2)
    ax.set_xticklabels(leads)
    ax.set_ylabel("share of |attribution|")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
    return str(path)
