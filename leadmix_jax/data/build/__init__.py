"""The TFDS build of PTB, PTB-XL and SPH: scan the metadata, preprocess every
record in a process pool, write patient splits and a build report.

:mod:`~leadmix_jax.data.build.builder` (the TFDS base class),
:mod:`~leadmix_jax.data.build.scan` (metadata helpers shared by the scanners),
:mod:`~leadmix_jax.data.build.ptbdb`, :mod:`~leadmix_jax.data.build.ptbxl`,
:mod:`~leadmix_jax.data.build.sph` (each database's scanner),
:mod:`~leadmix_jax.data.build.databases` (the three builder classes),
:mod:`~leadmix_jax.data.build.task` (one record end to end),
:mod:`~leadmix_jax.data.build.pool` (the worker pool) and
:mod:`~leadmix_jax.data.build.report` (``build_report.json``).
"""
