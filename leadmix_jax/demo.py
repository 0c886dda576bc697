"""The whole pipeline on synthetic databases, no download needed.

1. writes synthetic PTB, PTB-XL and SPH databases in their original layouts
   (:mod:`leadmix_jax.testing`);
2. builds them with the project's real TFDS builders (``datasets/``);
3. trains on synthetic SPH, selecting on its validation split;
4. evaluates cross-dataset on synthetic PTB and PTB-XL (and SPH test) and
   writes the full report.

Run by ``python launch.py --config=configs/demo.py --workdir=<dir>`` (the
config's ``mode = 'demo'`` selects it; ``--mode=demo`` does too); each
stage is skipped when its output is already in ``workdir`` (a restart resumes).
"""

from __future__ import annotations

import json

import jax
import ml_collections
from absl import logging
from etils import epath

from leadmix_jax import build, config_check, evaluate, train
from leadmix_jax import testing as synthetic

# TFDS dataset name -> folder written by synthetic.write_all
DATABASES = {"ptbdb_mi": "ptb", "ptbxl_mi": "ptbxl", "sph_mi": "sph"}


def write_databases(root: epath.Path, cfg: ml_collections.ConfigDict) -> dict:
    marker = root / "summary.json"
    if marker.exists():
        return json.loads(marker.read_text())
    summary = synthetic.write_all(
        root,
        cfg.seed,
        ptb_patients=cfg.ptb_patients,
        ptbxl_records=cfg.ptbxl_records,
        sph_records=cfg.sph_records,
    )
    short = {db: {k: v for k, v in s.items() if k != "records"} for db, s in summary.items()}
    marker.write_text(json.dumps(short, indent=1, default=str))
    return short


def build_datasets(root: epath.Path, data_dir: epath.Path, label_config: str = "paper") -> None:
    import tensorflow_datasets as tfds

    for name, folder in DATABASES.items():
        builder = build.load_builder_class(name)(data_dir=str(data_dir), config=label_config)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(root / folder))
        )


def prepare_data(config: ml_collections.ConfigDict, work: epath.Path) -> None:
    """Writes the synthetic databases of ``config.synthetic`` under ``work``,
    builds them into ``work/tfds`` (both skipped when done) and points
    ``config.data_dir`` there."""
    root, data_dir = work / "synthetic_databases", work / "tfds"
    if jax.process_index() == 0:
        root.mkdir(parents=True, exist_ok=True)
        logging.info("demo: writing synthetic databases to %s", root)
        print(
            f"[demo] synthetic databases: {json.dumps(write_databases(root, config.synthetic))}", flush=True
        )
        print(f"[demo] building TFDS datasets in {data_dir}", flush=True)
        build_datasets(root, data_dir)
    with config.unlocked():
        config.data_dir = str(data_dir)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Generates, builds, trains and evaluates; returns the evaluation summary."""
    config_check.check(config, "demo")  # a typo must not cost a data generation and build first
    work = epath.Path(workdir).absolute()
    prepare_data(config, work)
    print("[demo] training on synthetic SPH", flush=True)
    train.train_and_evaluate(config, str(work))
    print("[demo] evaluating on synthetic PTB, PTB-XL and SPH test", flush=True)
    return evaluate.evaluate(config, str(work))
