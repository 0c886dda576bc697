"""Whole runs made of the stages: the paper's protocol
(:mod:`~leadmix_jax.workflows.protocol`) and the no-download demo
(:mod:`~leadmix_jax.workflows.demo`)."""
