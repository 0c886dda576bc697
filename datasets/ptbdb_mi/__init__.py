"""TFDS dataset folder `ptbdb_mi` (see README.md); the builder is `ptbdb_mi_dataset_builder.Builder`."""
