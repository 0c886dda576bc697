"""Stage 4, train: one model or a population of models, data-parallel over every device.

:mod:`~leadmix_jax.train.step` (the pure train step and optimiser),
:mod:`~leadmix_jax.train.feeds` (input modes, several steps per dispatch),
:mod:`~leadmix_jax.train.loop` (the loop shared by one model and populations),
:mod:`~leadmix_jax.train.lifecycle` (checkpoints around the loop, shared too),
:mod:`~leadmix_jax.train.validation`, :mod:`~leadmix_jax.train.trainer` (one
model's run), :mod:`~leadmix_jax.train.population` (P models per compiled step)
and :mod:`~leadmix_jax.train.metric_writers`.
"""
