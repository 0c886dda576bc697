"""Tests of the build's safeguards: duplicate signals, concurrent builds, a
database with nothing usable under the `tfds build` command."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from test_records import _build, _ptbxl_record, _ptbxl_row, _write_ptbxl_csv

REPO = Path(__file__).resolve().parents[2]
DUMMY_SPH = REPO / "datasets" / "sph_mi" / "dummy_data"


def _ptbxl(tmp_path, rows, records):
    src = tmp_path / "src"
    for i in records:
        _ptbxl_record(src, i, mi=i == 1)
    _write_ptbxl_csv(src, rows)
    return src


def test_the_same_file_under_two_records_is_built_once(tmp_path):
    rows = [
        _ptbxl_row(1, 11.0, {"IMI": 100.0}, 1),
        _ptbxl_row(2, 12.0, {"NORM": 100.0}, 9),
        _ptbxl_row(3, 13.0, {"NORM": 100.0}, 10),
    ]
    twin = _ptbxl_row(4, 14.0, {"IMI": 100.0}, 10)  # a test-split row pointing at record 1's file
    twin["filename_hr"] = rows[0]["filename_hr"]
    src = _ptbxl(tmp_path, rows + [twin], (1, 2, 3))
    builder, report = _build("ptbxl_mi", src, tmp_path / "out")
    assert report["records_kept"] == 3
    (skip,) = report["skipped"]["duplicate_signal"]["examples"]
    assert skip == {"record_id": "4", "detail": "the same file as record 1 (train), which is kept"}
    assert report["skipped"]["duplicate_signal"]["by_split"] == {"test": 1}
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
        "train": 1,
        "validation": 1,
        "test": 1,
    }


def test_a_copied_signal_keeps_the_first_in_build_order(tmp_path):
    """A copy of the test record placed in train: the train copy comes first in
    build order (train, validation, test) and is kept; the test one is not,
    so the same signal is never in two splits."""
    rows = [
        _ptbxl_row(1, 11.0, {"IMI": 100.0}, 1),
        _ptbxl_row(2, 12.0, {"NORM": 100.0}, 9),
        _ptbxl_row(3, 13.0, {"NORM": 100.0}, 10),
    ]
    src = _ptbxl(tmp_path, rows + [_ptbxl_row(4, 14.0, {"NORM": 100.0}, 2)], (1, 2, 3))
    for ext in ("hea", "dat"):
        text = (src / f"records500/00000/00003_hr.{ext}").read_bytes()
        if ext == "hea":
            text = text.replace(b"00003_hr", b"00004_hr")
        (src / f"records500/00000/00004_hr.{ext}").write_bytes(text)
    _, report = _build("ptbxl_mi", src, tmp_path / "out")
    (skip,) = report["skipped"]["duplicate_signal"]["examples"]
    assert skip == {"record_id": "3", "detail": "the same samples as record 4 (train), which is kept"}
    assert report["records"]["test"]["total"] == 0 and report["records"]["train"]["total"] == 2


_BUILD = """
import sys, tensorflow_datasets as tfds
from leadmix_jax.data.build import databases
b = databases.builder_class('sph_mi')(data_dir=sys.argv[2], num_workers=1)
b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=sys.argv[1]))
print('built', b.info.splits['train'].num_examples)
"""


@pytest.mark.slow
def test_two_builds_into_one_data_dir_do_not_destroy_each_other(tmp_path):
    """While a build holds the lock (here: this test), two more builds of the
    same dataset wait, then one builds and the other finds it built."""
    import threading
    import time

    from leadmix_jax.data.build.builder import build_lock

    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    version = tmp_path / "tfds" / "sph_mi" / "paper" / "1.1.0"
    outs: list[list[str]] = [[], []]
    with build_lock(version, "test"):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _BUILD, str(DUMMY_SPH), str(tmp_path / "tfds")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        readers = [
            threading.Thread(target=lambda p=p, o=o: o.extend(p.stdout), daemon=True)
            for p, o in zip(procs, outs)
        ]
        for r in readers:
            r.start()
        deadline = time.time() + 300
        while time.time() < deadline and not all(
            any("waiting for it to finish" in ln for ln in o) for o in outs
        ):
            time.sleep(0.2)
    for p, r in zip(procs, readers):
        p.wait(timeout=600)
        r.join(timeout=60)
    texts = ["".join(o) for o in outs]
    assert [p.returncode for p in procs] == [0, 0], texts
    assert all(
        "another build of" in t and "waiting for it to finish" in t and "built 1" in t for t in texts
    ), texts
    assert json.loads((version / "build_report.json").read_text())["records_kept"] == 3
    assert not list(version.parent.glob("incomplete.*"))


@pytest.mark.slow
def test_tfds_build_of_an_unusable_database_is_one_message(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(DUMMY_SPH, src)
    meta = pd.read_csv(src / "metadata.csv")
    meta.iloc[:0].to_csv(src / "metadata.csv", index=False)  # header only
    tfds_cli = Path(sys.executable).parent / "tfds"
    if not tfds_cli.exists():
        pytest.skip("the tfds command comes with the tfds extra")
    out = subprocess.run(
        [
            str(tfds_cli),
            "build",
            str(REPO / "datasets" / "sph_mi"),
            f"--manual_dir={src}",
            f"--data_dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "error: sph_mi: no MI or normal record" in out.stderr
