"""TFDS builder ``ptbxl_mi``: PTB-XL 1.0.3, MI vs normal, one example per clean 10 s window.

What is particular to this database (its source layout, metadata scan and
label fields) is in ``ptbxl_metadata.py`` next to this file; all logic shared with ``ptbdb_mi`` and ``sph_mi`` lives in
:mod:`leadmix_jax.build` (TFDS base class), :mod:`leadmix_jax.metadata`,
:mod:`leadmix_jax.build_pool` and :mod:`leadmix_jax.build_report`.
"""

from leadmix_jax import build

try:  # imported as ptbxl_mi.ptbxl_mi_dataset_builder (tfds build, build.load_builder_class, tests)
    from ptbxl_mi import ptbxl_metadata
except ImportError:  # imported standalone, with only this folder on sys.path
    import ptbxl_metadata


class Builder(build.MiEcgBuilder):
    """PTB-XL 1.0.3 (PhysioNet): MI vs normal, 12 leads, 10 s windows at 250 Hz."""

    scan = staticmethod(ptbxl_metadata.scan)
    DATABASE = "ptbxl"
    HOMEPAGE = "https://physionet.org/content/ptb-xl/1.0.3/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download PTB-XL 1.0.3 from https://physionet.org/content/ptb-xl/1.0.3/
  (e.g. `wget -r -N -c -np https://physionet.org/files/ptb-xl/1.0.3/` or the
  zip) and point `--manual_dir` at the folder that directly holds
  `ptbxl_database.csv`, `scp_statements.csv` and `records500/`
  (e.g. `.../ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3/`).
  Only the 500 Hz records (`records500/`) are read; `records100/` may be absent.
  """
