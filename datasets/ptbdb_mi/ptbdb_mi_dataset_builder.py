"""TFDS builder ``ptbdb_mi``: PTB Diagnostic ECG Database, MI vs healthy control.

What is particular to this database (its source layout, metadata scan and
label fields) is in ``ptbdb_metadata.py`` next to this file; all logic shared with ``ptbxl_mi`` and ``sph_mi`` lives in
:mod:`leadmix_jax.build` (TFDS base class), :mod:`leadmix_jax.metadata`,
:mod:`leadmix_jax.build_pool` and :mod:`leadmix_jax.build_report`.
"""

from leadmix_jax import build

try:  # imported as ptbdb_mi.ptbdb_mi_dataset_builder (tfds build, build.load_builder_class, tests)
    from ptbdb_mi import ptbdb_metadata
except ImportError:  # imported standalone, with only this folder on sys.path
    import ptbdb_metadata


class Builder(build.MiEcgBuilder):
    """PTB Diagnostic ECG Database 1.0.0 (PhysioNet): MI vs healthy control."""

    scan = staticmethod(ptbdb_metadata.scan)
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
