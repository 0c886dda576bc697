"""launch.py as a user meets it: --help, config errors in one line before any
work, eval/predict defaulting to the workdir's saved config, quiet output."""

import json
import pathlib
import shutil
import time

import pytest

import builtdata
from runs import launch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_help_exits_zero_and_names_overrides_and_demo():
    out = launch("--help")
    assert out.returncode == 0, out.stderr
    assert "--config.<field>=<value>" in out.stdout and "configs/demo.py" in out.stdout
    assert "--mode" in out.stdout and "--workdir" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--config=configs/demo.py", "--config.leads=II,III,aVX"],
            "--config.leads='II,III,aVX': Unknown lead 'aVX'",
        ),
        (["--config.batch_size=12"], "--config.batch_size=12 must be a positive multiple of the 8 devices"),
        (["--config.train_dataset=SPH MI"], "--config.train_dataset='SPH MI' is not a dataset name"),
        (
            ["--mode=eval", "--config.eval_targets=ptbxl_mi"],
            "evaluation target 'ptbxl_mi' must be 'dataset:split'",
        ),
    ],
)
@pytest.mark.slow
def test_config_errors_are_one_line_before_any_work(tmp_path, args, message):
    workdir = tmp_path / "run"
    t0 = time.perf_counter()
    out = launch(f"--workdir={workdir}", *args, devices=8)
    assert time.perf_counter() - t0 < 60
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: {out.stderr.strip()[len('error: ') :]}"]
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not workdir.exists()  # nothing generated, built or written


@pytest.mark.slow
def test_eval_and_predict_use_the_workdirs_config(tmp_path_factory, tmp_path):
    # a copy: this evaluation must not overwrite the shared workdir's (test_report reads it)
    workdir = str(tmp_path / "trained")
    shutil.copytree(builtdata.trained_workdir(tmp_path_factory), workdir)
    saved = json.loads((pathlib.Path(workdir) / "config.json").read_text())
    assert saved["data_dir"] != ""
    # no --config: the workdir's data_dir, datasets and leads are used
    out = launch(
        "--mode=eval",
        f"--workdir={workdir}",
        f"--config.eval_targets={builtdata.NAME}:test",
        "--config.bootstrap_samples=5",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Evaluation of" in out.stdout
    noise = ("Unable to initialize backend", "Given directory is read only", "Traceback")
    assert not [n for n in noise if n in out.stdout + out.stderr], out.stderr[-2000:]
    # a dataset that is not there: the error names the path actually searched
    out = launch("--mode=eval", f"--workdir={workdir}", "--config.eval_targets=ptbxl_mi/paper:test")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert str(pathlib.Path(saved["data_dir"]) / "ptbxl_mi/paper") in out.stderr
    # predict without a record, and a damaged/unknown checkpoint: one line each
    out = launch("--mode=predict", f"--workdir={workdir}")
    assert out.returncode == 2 and "needs --record" in out.stderr and "Traceback" not in out.stderr
    out = launch("--mode=eval", f"--workdir={workdir}", "--config.eval_checkpoint=99")
    assert out.returncode == 2 and "no checkpoint at step 99" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.batchsize=1", "--workdir=w"], "the config has no field 'batchsize'"),
        (["--config.model.bse=3", "--workdir=w"], 'Did you mean "base"'),
        (["--config=configs/nope.py", "--workdir=w"], "--config=configs/nope.py: No such file or directory"),
        (["--config.batch_size=abc", "--workdir=w"], "flag --config.batch_size=abc"),
        (["--mode=foo", "--workdir=w"], "flag --mode=foo: value should be one of"),
        (["--nonsense=1"], "Unknown command line flag 'nonsense'"),
        (["--mode=eval"], "--workdir is required"),
    ],
)
def test_flag_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    out = launch(*args)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr[-2000:]
    assert not (tmp_path / "w").exists() and not (ROOT / "w").exists()


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    out = launch("--config=configs/test.py", f"--workdir={tmp_path / 'file'}", "--config.data_dir=/nowhere")
    assert out.returncode == 2 and "is a file, not a folder" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_a_run_that_fails_its_data_check_leaves_no_workdir(tmp_path):
    out = launch(
        "--config=configs/test.py", f"--workdir={tmp_path / 'run'}", f"--config.data_dir={tmp_path / 'none'}"
    )
    assert out.returncode == 2 and "No built dataset" in out.stderr
    assert not (tmp_path / "run").exists()
