"""TFDS builder ``sph_mi``: SPH (Shandong Provincial Hospital) 12-lead ECGs, MI vs normal.

All logic shared with ``ptbdb_mi`` and ``ptbxl_mi`` lives in
:mod:`leadmix_jax.build` (scan, folds, parallel preprocessing, build report).
"""

from leadmix_jax import build


class Builder(build.MiEcgBuilder):
  """SPH 12-lead ECG database (figshare collection 5779802): MI vs normal."""

  DATABASE = "sph"
  HOMEPAGE = "https://doi.org/10.6084/m9.figshare.c.5779802"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the SPH database from figshare (collection 5779802,
  https://doi.org/10.6084/m9.figshare.c.5779802): `metadata.csv` and the
  records archive. Unpack it so that one folder directly holds `metadata.csv`
  and `records/A00001.h5` ... `records/A25770.h5`, and point `--manual_dir`
  at that folder.
  """
