"""TFDS builder ``sph_mi``: SPH (Shandong Provincial Hospital) 12-lead ECGs, MI vs normal.

``tfds build datasets/sph_mi --manual_dir=...`` finds this ``Builder``. The build
itself (metadata scan, preprocessing, splits, report) is the library's
(:class:`leadmix_jax.data.build.databases.SphMi`); this folder holds the
dataset's documentation (README.md, CITATIONS.bib, TAGS.txt), its
``dummy_data/`` and the TFDS builder test.
"""

from leadmix_jax.data.build import databases


class Builder(databases.SphMi):
    """SPH 12-lead ECG database (figshare collection 5779802): MI vs normal."""
