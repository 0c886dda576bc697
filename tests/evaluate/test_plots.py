"""Tests of leadmix_jax.evaluate.plots: what each figure draws (curves, legends,
cell values, shaded windows) and that it is written as a PNG."""

import matplotlib.image
import numpy as np
import pytest
from sklearn import metrics as skm

from leadmix_jax.evaluate import plots


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions close, kept open for inspection."""
    kept = []
    monkeypatch.setattr(plots.plt, "close", kept.append)
    yield kept
    monkeypatch.undo()
    for fig in kept:
        plots.plt.close(fig)


def _png(path):
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def _labels_probs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 == 0).astype(int)
    return labels, np.clip(0.3 * labels + rng.uniform(0, 0.7, n), 0, 1)


def test_roc_figure_draws_each_curve_with_its_auroc(tmp_path, figures):
    labels, probs = _labels_probs()
    path = plots.roc_figure(
        {"window": (labels, probs), "patient": (np.ones(4, int), np.full(4, 0.9))},
        "ROC",
        tmp_path / "roc.png",
    )
    assert _png(path).shape[2] in (3, 4)
    (ax,) = figures[0].axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        f"window: AUROC {skm.roc_auc_score(labels, probs):.3f}",
        "patient: AUROC n/a (one class)",
    ]
    fpr, tpr, _ = skm.roc_curve(labels, probs)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), fpr)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), tpr)
    assert ax.get_title() == "ROC"


def test_pr_figure_draws_the_prevalence_line(tmp_path, figures):
    labels, probs = _labels_probs(1)
    plots.pr_figure({"record": (labels, probs)}, "PR", tmp_path / "pr.png")
    ax = figures[0].axes[0]
    ap = skm.average_precision_score(labels, probs)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"record: AUPRC {ap:.3f}"]
    prevalence = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert len(prevalence) == 1 and prevalence[0].get_ydata()[0] == pytest.approx(labels.mean())


def test_confusion_figure_writes_every_cell(tmp_path, figures):
    matrices = {
        "window, 0.5": [[5, 1], [2, 7]],
        "record, 0.5": [[3, 0], [1, 4]],
        "patient, 0.5": [[2, 0], [0, 3]],
        "x": [[0, 0], [0, 0]],
    }
    plots.confusion_figure(matrices, "C", tmp_path / "c.png", ncols=3)
    axes = figures[0].axes
    assert len(axes) == 6 and sum(ax.axison for ax in axes) == 4  # 2x3 grid, two blank
    for ax, (name, cm) in zip(axes, matrices.items()):
        assert ax.get_title() == name
        assert sorted(int(t.get_text()) for t in ax.texts) == sorted(v for row in cm for v in row)
    assert (tmp_path / "c.png").stat().st_size > 0


def test_record_figure_shades_clean_and_dropped_windows(tmp_path, figures):
    signal = np.random.default_rng(0).normal(size=(500 * 25, 2))
    windows = [(0.0, 10.0, 0.8), (10.0, 20.0, None)]
    path = plots.record_figure(signal, 500, ["II", "V2"], windows, "rec", tmp_path / "r.png")
    _png(path)
    lead_axes = [ax for ax in figures[0].axes if ax.get_ylabel().endswith("(mV)")]
    assert [ax.get_ylabel() for ax in lead_axes] == ["II\n(mV)", "V2\n(mV)"]
    assert [t.get_text() for t in lead_axes[0].texts] == ["0.80"]  # the probability, once, on top
    assert not lead_axes[1].texts
    assert len(lead_axes[0].patches) == 2  # one span per window
    hatched = [p for p in lead_axes[0].patches if p.get_hatch()]
    assert len(hatched) == 1  # the dropped window
