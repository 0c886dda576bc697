"""Stage 5, evaluate: a trained checkpoint scored on any datasets and splits.

:mod:`~leadmix_jax.evaluate.restore` (a checkpoint ready for inference),
:mod:`~leadmix_jax.evaluate.evaluation` (the entry point),
:mod:`~leadmix_jax.evaluate.level_metrics` (window / record / patient metrics
with patient-bootstrap CIs), :mod:`~leadmix_jax.evaluate.outputs` (its files),
:mod:`~leadmix_jax.evaluate.plots` and :mod:`~leadmix_jax.evaluate.tables` (the
paper's table over workdirs and seeds).
"""
