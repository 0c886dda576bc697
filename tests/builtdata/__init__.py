"""A tiny built TFDS dataset with the real builders' feature set, and a tiny
checkpoint trained on it, for evaluation / prediction / report tests.

``BuiltMi`` (dataset name ``built_mi``) holds preprocessed 10-s windows of
synthetic records (:mod:`leadmix_jax.synthetic`): several records per patient,
two windows per record, both classes in every split, and in ``test`` one
patient with an MI and a normal record (as happens in PTB-XL). Features are
the builders' own (:func:`leadmix_jax.data.build.builder.features`): ``ecg`` (2500, 12)
float32 canonical order, ``label`` ClassLabel normal/mi, ``patient_id``,
``record_id`` (Text), ``window``, ``fold`` (int32), ``codes``, ``age``
(float32), ``sex``.

Builds and trainings are cached per pytest session (module-level cache), so
test modules share them: use :func:`data_dir` and :func:`trained_workdir`
with a ``tmp_path_factory``.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from leadmix_jax.data.build import builder as build_lib
from leadmix_jax.data import preprocessing
from leadmix_jax import synthetic as synthetic

NAME = "built_mi"
# split -> (patients, records per patient); 20-s records give 2 windows each.
SPLITS = {"train": (8, 2), "validation": (4, 2), "test": (4, 2)}
RECORD_SECONDS = 20.0
FS = 500.0

_CACHE: dict[str, str] = {}


class BuiltMi(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, nan_fraction: float = 0.0, **kwargs):
        # Fraction of windows given NaN samples (tests of the non-finite guard).
        self.nan_fraction = nan_fraction
        super().__init__(**kwargs)

    def _info(self):
        # The real builders' feature set, from the one place it is defined.
        return self.dataset_info_from_configs(features=build_lib.features())

    def _split_generators(self, dl_manager):
        del dl_manager
        return {name: self._generate_examples(name, k) for k, name in enumerate(SPLITS)}

    def _generate_examples(self, split, seed):
        n_patients, n_records = SPLITS[split]
        rng = np.random.default_rng(seed)
        for p in range(n_patients):
            for r in range(n_records):
                mi = p % 2 == 0
                if split == "test" and p == 1 and r == 1:
                    mi = True  # a patient with both an MI and a normal record
                signal = synthetic.synth_record(rng, FS, RECORD_SECONDS, mi)
                pre = preprocessing.preprocess_record(signal, FS)
                record_id = f"{split[:2]}{p:02d}_{r}"
                for w, window in zip(pre.window_index, pre.windows):
                    if rng.uniform() < self.nan_fraction:
                        window = window.copy()
                        window[100:110] = np.nan
                    yield (
                        f"{record_id}-{w}",
                        {
                            "ecg": window,
                            "label": int(mi),
                            "patient_id": f"{split[:2]}p{p:02d}",
                            "record_id": record_id,
                            "window": int(w),
                            "fold": 1 + seed,
                            "codes": "160" if mi else "1",
                            "age": np.float32(60.0),
                            "sex": "male" if p % 3 else "female",
                        },
                    )


def build(data_dir: str, file_format: str = "array_record", nan_fraction: float = 0.0) -> str:
    """Builds ``built_mi`` into ``data_dir``; returns ``data_dir``."""
    BuiltMi(data_dir=data_dir, file_format=file_format, nan_fraction=nan_fraction).download_and_prepare()
    return data_dir


def xla_flags(devices: int) -> str:
    """``XLA_FLAGS`` for a subprocess with ``devices`` simulated CPU devices and
    the session's compile flags (conftest.py), so that it compiles the same
    programs as the test process (and finds them in the compilation cache)."""
    return f"{os.environ.get('LEADMIX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()


def num_windows(split: str) -> int:
    n_patients, n_records = SPLITS[split]
    return n_patients * n_records * int(RECORD_SECONDS // preprocessing.WINDOW_SECONDS)


def data_dir(tmp_path_factory, file_format: str = "array_record") -> str:
    """The dataset in ``file_format``, built once per session."""
    key = f"data:{file_format}"
    if key not in _CACHE:
        _CACHE[key] = build(str(tmp_path_factory.mktemp(f"built_mi_{file_format}")), file_format)
    return _CACHE[key]


def make_config(data, **overrides):
    """configs/test.py on ``built_mi``, 2 training steps (validation and a
    checkpoint at step 2), then ``overrides`` (dotted keys)."""
    from configs import test as test_config

    c = test_config.get_config()
    c.data_dir = data
    c.train_dataset = NAME
    c.num_train_steps = 2
    c.eval_every_steps = 2
    c.checkpoint_every_steps = 2
    c.log_every_steps = 2
    c.bootstrap_samples = 20
    c.eval_targets = f"{NAME}:test,{NAME}:all"
    return apply_overrides(c, overrides)


def apply_overrides(c, overrides: dict):
    """Sets dotted keys of config ``c`` (``{"model.base": 8}``); returns ``c``."""
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return c


def trained_workdir(tmp_path_factory, leads: str = "II,III,aVF") -> str:
    """A workdir with a tiny checkpoint trained on ``leads``, once per session."""
    key = f"workdir:{leads}"
    if key not in _CACHE:
        from leadmix_jax.train import trainer

        data = data_dir(tmp_path_factory)
        workdir = str(tmp_path_factory.mktemp("trained"))
        trainer.train_and_evaluate(make_config(data, leads=leads), workdir)
        _CACHE[key] = workdir
    return _CACHE[key]


def evaluated_workdir(tmp_path_factory, leads: str = "II,III,aVF") -> tuple[str, dict]:
    """``(workdir, evaluate() result)``: the trained workdir evaluated with the
    default checkpoint on ``built_mi:test`` and ``built_mi:all``, once per session."""
    key = f"eval:{leads}"
    if key not in _CACHE:
        from leadmix_jax.evaluate import evaluation

        workdir = trained_workdir(tmp_path_factory, leads)
        _CACHE[key] = (
            workdir,
            evaluation.evaluate(make_config(data_dir(tmp_path_factory), leads=leads), workdir),
        )
    return _CACHE[key]
