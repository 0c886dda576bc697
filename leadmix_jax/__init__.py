"""LeadMix-MST in JAX/Flax: from the original ECG databases to deployable models.

One subpackage per stage, each importing only the stages before it:

* :mod:`leadmix_jax.data`: leads, labels, patient splits, record readers, the
  paper's preprocessing chain, and the TFDS build of the three databases;
* :mod:`leadmix_jax.input`: built datasets as training and evaluation batches
  (grain pipelines, the device-resident split, normalisation, augmentation);
* :mod:`leadmix_jax.model`: LeadMix-MST, its layers, the lead-robust variant,
  official-weights import and the jitted inference step;
* :mod:`leadmix_jax.train`: the pure train step, input feeds, the training
  loop, one model's run and populations of models;
* :mod:`leadmix_jax.evaluate`: restored checkpoints scored at window, record and
  patient level, their files, figures and the paper's tables;
* :mod:`leadmix_jax.deploy`: export to TFLite / ONNX / StableHLO, exported
  files run without JAX, single-record prediction;
* :mod:`leadmix_jax.workflows`: whole runs made of the stages (the paper's
  protocol, the no-download demo).

:mod:`leadmix_jax.synthetic` writes synthetic databases in the original layouts
(demo, tests, benchmarks). The modules at the top are used across stages:
checkpoints, config checks, errors, the device mesh, point metrics and host
memory settings. ``docs/architecture.md`` draws the whole map.
"""
