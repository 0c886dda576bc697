"""TFDS builder ``ptbdb_mi``: PTB Diagnostic ECG Database, MI vs healthy control.

All logic shared with ``ptbxl_mi`` and ``sph_mi`` lives in
:mod:`leadmix_jax.build` (scan, folds, parallel preprocessing, build report).
"""

from leadmix_jax import build


class Builder(build.MiEcgBuilder):
  """PTB Diagnostic ECG Database 1.0.0 (PhysioNet): MI vs healthy control."""

  DATABASE = "ptb"
  HOMEPAGE = "https://physionet.org/content/ptbdb/1.0.0/"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the PTB Diagnostic ECG Database 1.0.0 from
  https://physionet.org/content/ptbdb/1.0.0/ (e.g.
  `wget -r -N -c -np https://physionet.org/files/ptbdb/1.0.0/`) and point
  `--manual_dir` at the folder that directly holds `RECORDS`, `CONTROLS` and
  `patient001/` ... `patient294/`. Only the 12 standard leads in the `.dat`
  files are read; `.xyz` files (Frank leads) may be absent.
  """
