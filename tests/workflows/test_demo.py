"""The demo, shrunk: synthetic databases -> real TFDS builders -> training on
SPH -> cross-dataset evaluation and report."""

import json

import pytest

from configs import demo as demo_config
from leadmix_jax.workflows import demo
from leadmix_jax.synthetic import prepare


@pytest.mark.slow
def test_shrunken_demo_runs_end_to_end(tmp_path):
    c = demo_config.get_config()
    c.synthetic.sph_records, c.synthetic.ptbxl_records, c.synthetic.ptb_patients = 80, 40, 8
    c.model.base, c.model.depth, c.model.heads = 8, 1, 2
    c.num_epochs, c.log_every_steps, c.bootstrap_samples = 1, 1, 20
    c.batch_size = c.eval_batch_size = 8
    demo.run(c, str(tmp_path))
    # Every database went through its real builder and left a build report.
    for name in prepare.DATABASES:
        report = json.loads(
            next((tmp_path / "tfds" / name / "paper").glob("*/build_report.json")).read_text()
        )
        assert report["records_kept"] > 0, name
    out = next((tmp_path / "eval").iterdir())
    for name in (
        "summary.md",
        "metrics.json",
        "predictions.csv",
        "roc_ptbdb_mi_paper_all.png",
        "roc_ptbxl_mi_paper_all.png",
        "confusion_sph_mi_paper_test.png",
    ):
        assert (out / name).exists(), name
    summary = (out / "summary.md").read_text()
    assert "ptbdb_mi/paper:all" in summary and "ptbxl_mi/paper:all" in summary
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda _: float("nan"))
    assert set(metrics["targets"]) >= {"ptbdb_mi/paper:all", "ptbxl_mi/paper:all", "sph_mi/paper:test"}
    # A second call finds the databases and datasets already there and resumes.
    c.num_epochs = 2
    demo.run(c, str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps))  # one record per step, also after the resume
    assert "val_auroc" in records[-1] and 0.0 <= records[-1]["val_auroc"] <= 1.0
