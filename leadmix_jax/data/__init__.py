"""Stage 1, data: from the original database files to built TFDS datasets.

Leads and lead sets (:mod:`~leadmix_jax.data.leads`), label rules
(:mod:`~leadmix_jax.data.labels`), patient folds (:mod:`~leadmix_jax.data.splits`),
the one reader per file format (:mod:`~leadmix_jax.data.records`), the paper's
preprocessing chain (:mod:`~leadmix_jax.data.preprocessing`) and the build
(:mod:`leadmix_jax.data.build`).
"""
