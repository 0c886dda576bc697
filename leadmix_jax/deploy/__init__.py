"""Stage 6, deploy: trained models off the training machine.

:mod:`~leadmix_jax.deploy.export` (convert, verify, write),
:mod:`~leadmix_jax.deploy.converters` (TFLite, ONNX, StableHLO),
:mod:`~leadmix_jax.deploy.runtimes` (exported files run without JAX) and
:mod:`~leadmix_jax.deploy.predict` (one record, from a checkpoint or an export).
"""
