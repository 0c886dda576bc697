"""Tests of leadmix_jax.config_check: every check raises a UserError that names
the field and what to use, and a good config passes, for each mode."""

import pytest

import builtdata
from leadmix_jax import config_check
from leadmix_jax.errors import UserError


def config(**overrides):
    return builtdata.make_config("/data", **overrides)


@pytest.mark.parametrize("mode", ["train", "demo", "eval", "protocol", "report", "export", "predict"])
def test_the_test_config_passes_every_mode(mode):
    c = config(**({"population.lead_sets": "inferior", "input_mode": "auto"} if mode == "protocol" else {}))
    config_check.check(c, mode, device_count=8)


@pytest.mark.parametrize(
    "mode, overrides, message",
    [
        ("train", {"leads": "II,aVX"}, "--config.leads='II,aVX'"),
        ("train", {"model.variant": "tiny"}, "--config.model.variant='tiny': use official or lead_robust"),
        ("train", {"train_dataset": "SPH MI"}, "--config.train_dataset='SPH MI' is not a dataset name"),
        ("train", {"val_dataset": "bad name!"}, "--config.val_dataset='bad name!'"),
        (
            "train",
            {"num_train_steps": -1, "num_epochs": 0},
            "set --config.num_epochs or --config.num_train_steps",
        ),
        ("train", {"log_every_steps": 0}, "--config.log_every_steps=0: must be positive"),
        ("train", {"batch_size": 12}, "--config.batch_size=12 must be a positive multiple of the 8 devices"),
        ("eval", {"eval_batch_size": 0}, "--config.eval_batch_size=0 must be a positive multiple"),
        ("eval", {"eval_targets": "ptbxl_mi"}, "evaluation target 'ptbxl_mi' must be 'dataset:split'"),
        ("eval", {"eval_targets": ""}, "no evaluation target given"),
        ("eval", {"exclude_patients": "@/no/such/file"}, "/no/such/file does not exist"),
        ("eval", {"eval_checkpoint": "newest"}, "--config.eval_checkpoint='newest': use best, latest"),
        ("eval", {"eval_leads": "inferior;II,aVX"}, "--config.eval_leads="),
        (
            "train",
            {"model.variant": "lead_robust", "leads": "inferior"},
            "a lead-robust model trains on all 12",
        ),
        (
            "train",
            {"model.variant": "lead_robust", "leads": "all12", "lead_robust.random_min_leads": 0},
            "--config.lead_robust: lead_robust.random_min_leads/random_max_leads = 0/12",
        ),
        (
            "protocol",
            {"population.lead_sets": "inferior", "input_mode": "grain"},
            "trains populations from device",
        ),
        ("protocol", {"population.seeds": 0}, "--config.population.seeds must be >= 1"),
        ("report", {"report.level": "beat"}, "--config.report.level='beat': use window, record or patient"),
        ("report", {"report.threshold": "0.3"}, "--config.report.threshold='0.3': use 0.5 or val_youden"),
        ("report", {"report.metrics": "auroc,f2"}, "--config.report.metrics='auroc,f2': use comma-separated"),
        ("export", {"export.format": "tf"}, "--config.export.format='tf'"),
        ("export", {"export.quantize": "int4"}, "--config.export.quantize='int4'"),
        ("export", {"export.format": "stablehlo", "export.quantize": "int8"}, "stablehlo is float only"),
        ("train", {"model.dropout": 2.0}, "--config.model.dropout=2.0: must be in [0, 1)"),
        ("train", {"model.base": 0}, "--config.model.base=0: must be a positive multiple of 8"),
        ("train", {"model.base": 12}, "--config.model.base=12: must be a positive multiple of 8"),
        ("train", {"model.heads": 3, "model.base": 16}, "and of model.heads=3"),
        ("train", {"model.dtype": "float16"}, "--config.model.dtype='float16': use float32 or bfloat16"),
        (
            "train",
            {"optimizer.learning_rate": float("nan")},
            "--config.optimizer.learning_rate=nan: must be a finite",
        ),
        ("train", {"optimizer.learning_rate": -1e-3}, "--config.optimizer.learning_rate=-0.001"),
        ("train", {"optimizer.b2": 1.0}, "--config.optimizer.b2=1.0: must be in [0, 1)"),
        ("train", {"optimizer.schedule": "linear"}, "use constant or cosine"),
        ("train", {"loss.pos_weight": 0.0}, "--config.loss.pos_weight=0.0"),
        ("train", {"augment.scale": 1.5}, "--config.augment.scale=1.5: must be in [0, 1)"),
        ("train", {"augment.wander_low_hz": 0.9}, "need 0 < wander_low_hz <= wander_high_hz"),
        ("train", {"input_mode": "tpu"}, "--config.input_mode='tpu': use auto, device or grain"),
        ("train", {"steps_per_dispatch": 0}, "--config.steps_per_dispatch=0: must be >= 1"),
        ("train", {"eval_targets": "ptbxl_mi"}, "evaluation target 'ptbxl_mi' must be 'dataset:split'"),
        ("export", {"leads": "II,III,FOO"}, "--config.leads='II,III,FOO'"),
        ("predict", {"amplitude_range_mv": "5,1,1"}, "--config.amplitude_range_mv"),
        ("predict", {"predict.threshold": "high"}, "--config.predict.threshold='high'"),
        ("predict", {"predict.threshold": "1.5"}, "--config.predict.threshold='1.5'"),
    ],
)
def test_each_problem_is_one_clear_user_error(mode, overrides, message):
    with pytest.raises(UserError) as err:
        config_check.check(config(**overrides), mode, device_count=8)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_dataset_names_and_paths():
    for good in ("sph_mi", "sph_mi/paper", "sph_mi/paper/1.1.0", "/abs/path/ptbxl_mi/paper"):
        config_check.check_dataset_name(good, "--config.x")
    for bad in ("SPH", "sph mi", "a/b/c/d", "../x"):
        with pytest.raises(UserError, match="--config.x="):
            config_check.check_dataset_name(bad, "--config.x")
