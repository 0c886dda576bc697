"""TFDS dataset folder `sph_mi` (see README.md); the builder is `sph_mi_dataset_builder.Builder`."""
