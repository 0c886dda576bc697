"""The three databases as TFDS builder classes, and their scanners by dataset name.

Each class joins the shared build (:class:`~leadmix_jax.data.build.builder.MiEcgBuilder`)
to one database's metadata scanner (:mod:`~leadmix_jax.data.build.ptbdb`,
:mod:`~leadmix_jax.data.build.ptbxl`, :mod:`~leadmix_jax.data.build.sph`). They are
not registered with TFDS: the dataset folders ``datasets/<name>/`` subclass them
as their ``Builder`` (so ``tfds build datasets/<name>`` finds them), and the
library (the demo, benchmarks, tests) uses them directly through
:func:`builder_class`. Both build the same dataset under ``<data_dir>/<name>/``.
"""

from __future__ import annotations

from leadmix_jax.data.build import ptbdb, ptbxl, sph
from leadmix_jax.data.build.builder import BUILDER_CONFIGS, MiConfig, MiEcgBuilder
from leadmix_jax.data.build.scan import Scan


class PtbdbMi(MiEcgBuilder, skip_registration=True):
    """PTB Diagnostic ECG Database 1.0.0 (PhysioNet): MI vs healthy control."""

    scan = staticmethod(ptbdb.scan)
    DATABASE = "ptb"
    HOMEPAGE = "https://physionet.org/content/ptbdb/1.0.0/"
    INDEX_FILE = "RECORDS"
    PHYSIONET_PROJECT = "ptbdb/1.0.0"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Without --manual_dir the build downloads what it reads from PhysioNet
  (SHA256SUMS.txt, RECORDS, CONTROLS, headers, the .dat files of the MI and
  control records). To build offline instead, download
  the PTB Diagnostic ECG Database 1.0.0 from
  https://physionet.org/content/ptbdb/1.0.0/ (e.g.
  `wget -r -N -c -np https://physionet.org/files/ptbdb/1.0.0/`) and point
  `--manual_dir` at the folder that directly holds `RECORDS`, `CONTROLS` and
  `patient001/` ... `patient294/`. Only the 12 standard leads in the `.dat`
  files are read; `.xyz` files (Frank leads) may be absent.
  """

    def _fetch_index(self, source) -> None:
        source.fetch(["RECORDS"], required=True, what="record list")
        source.fetch(["CONTROLS"], what="control list")
        names = (source.root / "RECORDS").read_text(encoding="utf-8", errors="replace").split()
        source.fetch([f"{n.strip('/')}.hea" for n in names], what="headers")


class PtbxlMi(MiEcgBuilder, skip_registration=True):
    """PTB-XL 1.0.3 (PhysioNet): MI vs normal, 12 leads, 10 s windows at 250 Hz."""

    scan = staticmethod(ptbxl.scan)
    DATABASE = "ptbxl"
    HOMEPAGE = "https://physionet.org/content/ptb-xl/1.0.3/"
    INDEX_FILE = "ptbxl_database.csv"
    PHYSIONET_PROJECT = "ptb-xl/1.0.3"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Without --manual_dir the build downloads what it reads from PhysioNet
  (SHA256SUMS.txt, the two CSV files, the records of the config's rate that
  the label rule keeps). To build offline instead, download
  PTB-XL 1.0.3 from https://physionet.org/content/ptb-xl/1.0.3/
  (e.g. `wget -r -N -c -np https://physionet.org/files/ptb-xl/1.0.3/` or the
  zip) and point `--manual_dir` at the folder that directly holds
  `ptbxl_database.csv`, `scp_statements.csv` and `records500/`
  (e.g. `.../ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3/`).
  The configs `paper` and `mi_superclass` read the 500 Hz records
  (`records500/`; `records100/` may be absent), `paper_100hz` and
  `mi_superclass_100hz` the 100 Hz ones (`records100/`; `records500/` may be
  absent).
  """
    BUILDER_CONFIGS = [
        *BUILDER_CONFIGS,
        MiConfig(
            name="paper_100hz",
            rule="paper",
            rate=100,
            description="The paper's label rule on the 100 Hz records (records100/): the same "
            "chain at 100 Hz, the same 250 Hz windows.",
        ),
        MiConfig(
            name="mi_superclass_100hz",
            rule="mi_superclass",
            rate=100,
            description="The MI-superclass label rule on the 100 Hz records (records100/).",
        ),
    ]

    def _fetch_index(self, source) -> None:
        source.fetch(["ptbxl_database.csv", "scp_statements.csv"], required=True, what="metadata files")


class SphMi(MiEcgBuilder, skip_registration=True):
    """SPH 12-lead ECG database (figshare collection 5779802): MI vs normal."""

    scan = staticmethod(sph.scan)
    DATABASE = "sph"
    HOMEPAGE = "https://doi.org/10.6084/m9.figshare.c.5779802"
    INDEX_FILE = "metadata.csv"
    # Not downloaded by the build: figshare serves the records as one archive
    # behind links that only its web API resolves, and publishes no SHA256SUMS
    # for the database (docs/data.md, "Downloads").
    PHYSIONET_PROJECT = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the SPH database from figshare (collection 5779802,
  https://doi.org/10.6084/m9.figshare.c.5779802): `metadata.csv` and the
  records archive. Unpack it so that one folder directly holds `metadata.csv`
  and `records/A00001.h5` ... `records/A25770.h5`, and point `--manual_dir`
  at that folder.
  """


#: TFDS dataset name -> builder class.
BUILDERS: dict[str, type[MiEcgBuilder]] = {cls.name: cls for cls in (PtbdbMi, PtbxlMi, SphMi)}


def builder_class(name: str) -> type[MiEcgBuilder]:
    """The builder class of dataset ``name`` (``ptbdb_mi``, ``ptbxl_mi`` or ``sph_mi``)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}: use one of {sorted(BUILDERS)}")
    return BUILDERS[name]


def scan_database(name: str, root, rule: str = "paper", **kwargs) -> Scan:
    """The metadata scan of dataset ``name``'s source folder ``root`` (no signal
    is read); ``kwargs``: the scanner's own (PTB-XL: ``rate``)."""
    return builder_class(name).scan(root, rule, **kwargs)
