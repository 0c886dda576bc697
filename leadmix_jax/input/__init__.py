"""Stage 2, input: built datasets as batches for training and evaluation.

:mod:`~leadmix_jax.input.built` finds and reads built datasets (either file
format), :mod:`~leadmix_jax.input.pipeline` is the grain pipeline,
:mod:`~leadmix_jax.input.resident` keeps a split in device memory and makes its
batches inside the compiled step, :mod:`~leadmix_jax.input.norm_stats` holds the
per-lead statistics and the one z-scoring, :mod:`~leadmix_jax.input.augment` the
training augmentations in NumPy and JAX.
"""
