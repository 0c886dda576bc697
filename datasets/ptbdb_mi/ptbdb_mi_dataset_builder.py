"""TFDS builder ``ptbdb_mi``: PTB Diagnostic ECG Database, MI vs healthy control.

``tfds build datasets/ptbdb_mi --manual_dir=...`` finds this ``Builder``. The build
itself (metadata scan, preprocessing, splits, report) is the library's
(:class:`leadmix_jax.data.build.databases.PtbdbMi`); this folder holds the
dataset's documentation (README.md, CITATIONS.bib, TAGS.txt), its
``dummy_data/`` and the TFDS builder test.
"""

from leadmix_jax.data.build import databases


class Builder(databases.PtbdbMi):
    """PTB Diagnostic ECG Database 1.0.0 (PhysioNet): MI vs healthy control."""
