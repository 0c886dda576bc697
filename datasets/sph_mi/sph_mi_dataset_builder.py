"""TFDS builder ``sph_mi``: SPH (Shandong Provincial Hospital) 12-lead ECGs, MI vs normal.

What is particular to this database (its source layout, metadata scan and
label fields) is in ``sph_metadata.py`` next to this file; all logic shared with ``ptbdb_mi`` and ``ptbxl_mi`` lives in
:mod:`leadmix_jax.build` (TFDS base class), :mod:`leadmix_jax.metadata`,
:mod:`leadmix_jax.build_pool` and :mod:`leadmix_jax.build_report`.
"""

from leadmix_jax import build

try:  # imported as sph_mi.sph_mi_dataset_builder (tfds build, build.load_builder_class, tests)
    from sph_mi import sph_metadata
except ImportError:  # imported standalone, with only this folder on sys.path
    import sph_metadata


class Builder(build.MiEcgBuilder):
    """SPH 12-lead ECG database (figshare collection 5779802): MI vs normal."""

    scan = staticmethod(sph_metadata.scan)
    DATABASE = "sph"
    HOMEPAGE = "https://doi.org/10.6084/m9.figshare.c.5779802"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the SPH database from figshare (collection 5779802,
  https://doi.org/10.6084/m9.figshare.c.5779802): `metadata.csv` and the
  records archive. Unpack it so that one folder directly holds `metadata.csv`
  and `records/A00001.h5` ... `records/A25770.h5`, and point `--manual_dir`
  at that folder.
  """
