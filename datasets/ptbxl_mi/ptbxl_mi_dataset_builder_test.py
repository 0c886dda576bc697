"""TFDS builder test of ``ptbxl_mi`` on ``dummy_data/`` (exact split counts)."""

import sys
from pathlib import Path

import tensorflow_datasets as tfds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # datasets/ (no __init__.py)
from ptbxl_mi import ptbxl_mi_dataset_builder  # noqa: E402


class PtbxlMiTest(tfds.testing.DatasetBuilderTestCase):
    """Both configs; TFRecord so that the harness's as_dataset (tf.data) can read it."""

    DATASET_CLASS = ptbxl_mi_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["paper", "mi_superclass"]
    SPLITS = {"train": 1, "validation": 1, "test": 1}
    SKIP_CHECKSUMS = True

    def _make_builder(self, config=None):
        return self.dataset_class(
            data_dir=self.tmp_dir, config=config, version=self.VERSION, file_format="tfrecord", num_workers=1
        )


if __name__ == "__main__":
    tfds.testing.test_main()
