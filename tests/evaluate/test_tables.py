"""The paper's table from several evaluated workdirs."""

import csv
import json
import pathlib
import shutil

import pytest

import builtdata
from runs import launch
from leadmix_jax.evaluate import tables


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """The evaluated tiny workdir, and a second one with another lead set.

    Training a second model would double the test time, so the second
    workdir's evaluation is the first one's with its lead set renamed and its
    patient AUROC changed: it tests the gathering, not the model."""
    first, result = builtdata.evaluated_workdir(tmp_path_factory)
    second = tmp_path_factory.mktemp("second_leadset")
    shutil.copytree(pathlib.Path(first) / "eval", second / "eval")
    path = second / "eval" / str(result["step"]) / "metrics.json"
    rep = json.loads(path.read_text())
    rep["leads"] = ["I", "II", "V3"]
    rep["results"]["built_mi:test"]["levels"]["patient"]["thresholds"]["0.5"]["metrics"]["auroc"] = 0.875
    path.write_text(json.dumps(rep))
    return [first, str(second)], result


@pytest.mark.slow
def test_table_markdown_and_csv(workdirs, tmp_path):
    (first, second), result = workdirs
    out = tables.make_report([first, second], str(tmp_path / "rep"))
    md = pathlib.Path(out["md"]).read_text()
    assert md.startswith("Patient-level results")
    assert "probability > 0.5" in md
    lines = [l for l in md.splitlines() if l.startswith("|")]
    assert lines[0].startswith("| lead set | built_mi:test auroc | built_mi:test accuracy")
    assert "built_mi:all specificity" in lines[0] and "built_mi:all macro_f1" in lines[0]
    assert len(lines) == 4  # header, rule, two lead sets
    assert lines[2].startswith("| inferior |") and lines[3].startswith("| I-II-V3 | 0.875 [")
    with open(out["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["lead_set"] for r in rows] == ["inferior", "I-II-V3"]
    assert float(rows[1]["built_mi:test auroc"]) == 0.875
    expected = result["results"]["built_mi:all"]["levels"]["patient"]["thresholds"]["0.5"]
    assert float(rows[0]["built_mi:all accuracy"]) == pytest.approx(expected["metrics"]["accuracy"])
    assert float(rows[0]["built_mi:all accuracy ci_low"]) == pytest.approx(expected["ci"]["accuracy"][0])


@pytest.mark.slow
def test_window_level_validation_threshold(workdirs, tmp_path):
    (first, second), result = workdirs
    out = tables.make_report(
        [first], str(tmp_path / "rep"), level="window", threshold="val_youden", metrics=("sensitivity",)
    )
    assert out["markdown"].startswith("Window-level results")
    assert f"inferior {result['thresholds']['val_youden']:.3f}" in out["markdown"]
    with pytest.raises(FileNotFoundError, match="run `launch.py --mode=eval"):
        tables.make_report([str(tmp_path)], str(tmp_path / "rep2"))


@pytest.mark.slow
def test_command_line(workdirs, tmp_path):
    (first, second), _ = workdirs
    out = launch("--mode=report", f"--workdirs={first},{second}", f"--workdir={tmp_path / 'cli'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "cli" / "report.md").exists() and (tmp_path / "cli" / "report.csv").exists()
