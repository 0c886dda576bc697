"""The synthetic databases of a config, written and built into a workdir.

The demo and the protocol's demo variant (configs with a ``synthetic`` block)
start here: PTB, PTB-XL and SPH are written in their original layouts under
``<work>/synthetic_databases/`` and built with the real TFDS builders
(:mod:`leadmix_jax.data.build.databases`) into ``<work>/tfds``. Each part is
skipped when its output is already there, so a restarted run goes on.
"""

from __future__ import annotations

import json

import jax
import ml_collections
from etils import epath

from leadmix_jax.data.build import databases
from leadmix_jax.synthetic import write_all

# TFDS dataset name -> folder written by write_all
DATABASES = {"ptbdb_mi": "ptb", "ptbxl_mi": "ptbxl", "sph_mi": "sph"}


def write_databases(root: epath.Path, cfg: ml_collections.ConfigDict) -> dict:
    """Writes the three databases of ``cfg`` (``config.synthetic``) under ``root``
    once (``root/summary.json`` marks them done); returns their summaries."""
    marker = root / "summary.json"
    if marker.exists():
        return json.loads(marker.read_text())
    summary = write_all(
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
    """Builds the three databases under ``root`` into ``data_dir`` (a built one is kept)."""
    import tensorflow_datasets as tfds

    for name, folder in DATABASES.items():
        builder = databases.builder_class(name)(data_dir=str(data_dir), config=label_config)
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
        print(f"[demo] writing synthetic PTB, PTB-XL and SPH databases to {root}", flush=True)
        print(
            f"[demo] synthetic databases: {json.dumps(write_databases(root, config.synthetic))}", flush=True
        )
        print(f"[demo] building TFDS datasets in {data_dir}", flush=True)
        build_datasets(root, data_dir)
    with config.unlocked():
        config.data_dir = str(data_dir)
