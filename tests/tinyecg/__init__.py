"""A tiny TFDS dataset with the builders' feature set, for training tests.

Examples are preprocessed windows of synthetic records
(:mod:`leadmix_jax.synthetic`); ``TinyEcg(nan_fraction=...)`` puts NaN into
some windows to test the non-finite-loss guard.
"""

import numpy as np
import tensorflow_datasets as tfds

from leadmix_jax import preprocessing, synthetic

SPLIT_SIZES = {"train": 48, "validation": 12, "test": 12}


class TinyEcg(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, nan_fraction: float = 0.0, **kwargs):
        self.nan_fraction = nan_fraction
        super().__init__(**kwargs)

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "ecg": tfds.features.Tensor(shape=(2500, 12), dtype=np.float32),
            "label": tfds.features.ClassLabel(names=["normal", "mi"]),
            "patient_id": tfds.features.Text(),
            "record_id": tfds.features.Text(),
            "window": np.int32,
            "fold": np.int32,
        }))

    def _split_generators(self, dl_manager):
        return {name: self._generate_examples(seed, n)
                for seed, (name, n) in enumerate(SPLIT_SIZES.items())}

    def _generate_examples(self, seed, n):
        rng = np.random.default_rng(seed)
        for i in range(n):
            mi = i % 3 == 0
            window = preprocessing.preprocess_record(synthetic.synth_record(rng, 500, 10, mi), 500).windows[0]
            if rng.uniform() < self.nan_fraction:
                window = window.copy()
                window[100:110] = np.nan
            yield f"{seed}-{i}", {"ecg": window, "label": int(mi), "patient_id": f"p{seed}-{i // 2}",
                                  "record_id": f"r{seed}-{i}", "window": 0, "fold": 1 + seed}


def build(data_dir: str, file_format: str = "array_record", **kwargs) -> str:
    """Builds the dataset into ``data_dir``; returns ``data_dir``."""
    TinyEcg(data_dir=data_dir, file_format=file_format, **kwargs).download_and_prepare()
    return data_dir
