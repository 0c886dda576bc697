"""Stage 3, model: LeadMix-MST and how it runs.

:mod:`~leadmix_jax.model.leadmix` (the Flax NNX model), its ops
(:mod:`~leadmix_jax.model.conv`, :mod:`~leadmix_jax.model.norm`,
:mod:`~leadmix_jax.model.dropout` with :mod:`~leadmix_jax.model.threefry`), the
lead-robust variant (:mod:`~leadmix_jax.model.lead_robust`), building either from
settings (:mod:`~leadmix_jax.model.variants`), the loss
(:mod:`~leadmix_jax.model.loss`), official PyTorch weights
(:mod:`~leadmix_jax.model.torch_import`) and the jitted inference step on the
device mesh (:mod:`~leadmix_jax.model.inference`).
"""
