"""Synthetic ECG data for tests, benchmarks and the demo (no real patient data).

* :mod:`~leadmix_jax.synthetic.simulator`: :func:`synth_record` /
  :func:`synthesize`, a vectorised dipole model of 12-lead ECGs with MI.
* :mod:`~leadmix_jax.synthetic.wfdb_writer`: :func:`write_wfdb`.
* :mod:`~leadmix_jax.synthetic.ptb_writer`, :mod:`~leadmix_jax.synthetic.ptbxl_writer`,
  :mod:`~leadmix_jax.synthetic.sph_writer`: :func:`write_ptb`,
  :func:`write_ptbxl`, :func:`write_sph` write deterministic synthetic
  databases in exactly the layouts the real ones are distributed in
  (docs/data.md), so the dataset builders can be tested end to end. Each
  returns a summary with the per-record labels under the paper's label rule
  (``label``) and under the field's alternative rule (``label_alt``).

``python -m leadmix_jax.synthetic ROOT`` writes all three (:func:`write_all`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leadmix_jax.synthetic.simulator import CONDITIONS, TERRITORIES, SynthInfo, synth_record, synthesize
from leadmix_jax.synthetic.ptb_writer import PTB_FRANK, PTB_LEADS, write_ptb
from leadmix_jax.synthetic.ptbxl_writer import PTBXL_COLUMNS, PTBXL_LEADS, SCP_COLUMNS, write_ptbxl
from leadmix_jax.synthetic.sph_writer import SPH_COLUMNS, write_sph, write_sph_record
from leadmix_jax.synthetic.wfdb_writer import write_wfdb

__all__ = [
    "TERRITORIES",
    "CONDITIONS",
    "SynthInfo",
    "synthesize",
    "synth_record",
    "write_wfdb",
    "write_ptb",
    "write_ptbxl",
    "write_sph",
    "write_sph_record",
    "write_all",
    "PTB_LEADS",
    "PTB_FRANK",
    "PTBXL_LEADS",
    "PTBXL_COLUMNS",
    "SCP_COLUMNS",
    "SPH_COLUMNS",
]


def write_all(
    root, seed: int = 0, *, ptb_patients: int = 12, ptbxl_records: int = 60, sph_records: int = 60, **kwargs
) -> dict[str, dict[str, Any]]:
    """Writes ``root/ptb``, ``root/ptbxl`` and ``root/sph``; returns their summaries.
    Extra keyword arguments (e.g. ``noise``) go to every writer."""
    root = Path(root)
    return {
        "ptb": write_ptb(root / "ptb", ptb_patients, seed, **kwargs),
        "ptbxl": write_ptbxl(root / "ptbxl", ptbxl_records, seed, **kwargs),
        "sph": write_sph(root / "sph", sph_records, seed, **kwargs),
    }
