"""The whole pipeline on synthetic databases, no download needed.

1. writes synthetic PTB, PTB-XL and SPH databases in their original layouts
   and builds them with the project's real TFDS builders
   (:mod:`leadmix_jax.synthetic.prepare`);
2. trains on synthetic SPH, selecting on its validation split;
3. evaluates cross-dataset on synthetic PTB and PTB-XL (and SPH test) and
   writes the full report.

Run by ``python launch.py --config=configs/demo.py --workdir=<dir>`` (the
config's ``mode = 'demo'`` selects it; ``--mode=demo`` does too); each
stage is skipped when its output is already in ``workdir`` (a restart resumes).
"""

from __future__ import annotations

import ml_collections
from etils import epath

from leadmix_jax import config_check
from leadmix_jax.evaluate import evaluation
from leadmix_jax.synthetic import prepare
from leadmix_jax.train import trainer


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Generates, builds, trains and evaluates; returns the evaluation summary."""
    config_check.check(config, "demo")  # a typo must not cost a data generation and build first
    work = epath.Path(workdir).absolute()
    prepare.prepare_data(config, work)
    print("[demo] training on synthetic SPH", flush=True)
    trainer.train_and_evaluate(config, str(work))
    print("[demo] evaluating on synthetic PTB, PTB-XL and SPH test", flush=True)
    return evaluation.evaluate(config, str(work))
