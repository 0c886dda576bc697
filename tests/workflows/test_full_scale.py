"""bench/full_scale.py at CI size: from nothing to the table, one process and
one line per stage (the full-size runs are in bench/results/)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ci_sized_full_scale_run_prints_the_five_stage_lines(tmp_path):
    args = [
        "--fraction=0.002",
        "--steps=2",
        "--lead_sets=inferior",
        "--seeds=1",
        "--bootstrap=20",
        "--workers=1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}

    def full_scale(timeout):
        return subprocess.run(
            [sys.executable, str(ROOT / "bench/full_scale.py"), f"--workdir={tmp_path}", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    out = full_scale(600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    summary = out.stdout[out.stdout.rindex("fraction 0.002") :].splitlines()[1:]
    assert [line.split()[0] for line in summary] == ["write", "build", "train", "eval", "table"]
    for line in summary:
        assert " s " in line and "/s (" in line and "peak RSS" in line and "disk" in line
    stages = json.loads((tmp_path / "full_scale.json").read_text())["stages"]
    count = {s["stage"]: s["count"] for s in stages}
    assert (
        count["write"]
        == 52 + 44 + json.loads((tmp_path / "databases/summary.json").read_text())["ptb"]["n_records"]
    )
    assert count["train"] == 2 * 32  # 2 steps of 32 windows, one member
    assert count["table"] == 1 and all(s["peak_rss_bytes"] > 0 for s in stages)
    assert (tmp_path / "protocol/protocol/table.md").exists()
    # a second call finds every stage done and prints the same lines without work
    again = full_scale(120)
    assert again.returncode == 0 and again.stdout.splitlines()[-5:] == summary
