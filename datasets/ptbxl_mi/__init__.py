"""TFDS dataset folder `ptbxl_mi` (see README.md); the builder is `ptbxl_mi_dataset_builder.Builder`."""
