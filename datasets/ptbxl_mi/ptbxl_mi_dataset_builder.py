"""TFDS builder ``ptbxl_mi``: PTB-XL 1.0.3, MI vs normal, one example per clean 10 s window.

``tfds build datasets/ptbxl_mi --manual_dir=...`` finds this ``Builder``. The build
itself (metadata scan, preprocessing, splits, report) is the library's
(:class:`leadmix_jax.data.build.databases.PtbxlMi`); this folder holds the
dataset's documentation (README.md, CITATIONS.bib, TAGS.txt), its
``dummy_data/`` and the TFDS builder test.
"""

from leadmix_jax.data.build import databases


class Builder(databases.PtbxlMi):
    """PTB-XL 1.0.3 (PhysioNet): MI vs normal, 12 leads, 10 s windows at 250 Hz."""
