"""The TFDS base class of the builders ``ptbdb_mi``, ``ptbxl_mi`` and ``sph_mi``.

A build has three stages:

1. **Scan** (main process, metadata only): the database's own scanner,
   ``datasets/<name>/<db>_metadata.py`` (``Builder.scan``), reads its index
   and applies the label rule of the builder config
   (:mod:`leadmix_jax.data.labels`); shared helpers are in
   :mod:`leadmix_jax.data.build.scan`. A folder that is not the database at all
   raises :class:`~leadmix_jax.data.build.scan.NotTheDatabaseError`.
2. **Folds**: PTB-XL's ``strat_fold``; PTB and SPH get patient-grouped folds
   that no other metadata row can move (:func:`leadmix_jax.data.splits.fold_of_patient`).
   Folds 1-8 train, 9 validation, 10 test.
3. **Records in parallel**: each split's generator maps
   :func:`leadmix_jax.data.build.task.process_record` (read + the paper's preprocessing
   chain over all 12 leads) over its records with the process pool of
   :mod:`leadmix_jax.data.build.pool` and yields one example per clean window. A
   record that fails is skipped with a reason from
   :data:`leadmix_jax.data.records.REASONS`; a split left without any record is
   reported and not written; nothing stops the build.

At the end the builder writes ``build_report.json``
(:mod:`leadmix_jax.data.build.report`) into the dataset's version folder and
prints a summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections import defaultdict

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from leadmix_jax.data import labels as labels_lib
from leadmix_jax.data import splits as splits_lib
from leadmix_jax.data.build.pool import WORKERS_ENV, RecordPool, default_workers
from leadmix_jax.data.build.report import REPORT_NAME, BuildReport, json_default
from leadmix_jax.data.leads import CANONICAL_LEADS
from leadmix_jax.data.build.scan import EXPECTED_FS, NotTheDatabaseError, Scan
from leadmix_jax.data.build.checksums import SUMS_NAME, MetadataChecksumError
from leadmix_jax.data.build.download import DownloadError, PhysioNetSource
from leadmix_jax.data.amplitude import DEFAULT_AMPLITUDE_RANGE, AmplitudeRange
from leadmix_jax.data.preprocessing import WINDOW_SAMPLES
from leadmix_jax.data.build.task import RecordResult, RecordTask

VERSION = "1.1.0"

__all__ = [
    "VERSION",
    "WORKERS_ENV",
    "REPORT_NAME",
    "EXPECTED_FS",
    "NotTheDatabaseError",
    "Scan",
    "MiEcgBuilder",
    "features",
    "default_workers",
    "read_report",
]


# ---------------------------------------------------------------------------
# the builder base class


class NothingUsableError(ValueError):
    """The source folder is the database, but no record of it can be built."""


@contextlib.contextmanager
def build_lock(version_dir: epath.Path, name: str):
    """An exclusive lock on building ``version_dir`` (a file beside it); a second
    holder waits, saying so."""
    import fcntl

    lock = version_dir.parent / f".{version_dir.name}.build.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{name}: another build of {version_dir} is running; waiting for it to finish", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def features() -> tfds.features.FeaturesDict:
    """The feature set shared by the three builders (and tests/builtdata): ``ecg``
    float32 ``(2500, 12)`` in canonical lead order, ``label`` 0/1, ids, window
    index, fold, raw codes, age (float32, NaN if unknown) and sex."""
    return tfds.features.FeaturesDict(
        {
            "ecg": tfds.features.Tensor(
                shape=(WINDOW_SAMPLES, len(CANONICAL_LEADS)),
                dtype=np.float32,
                encoding=tfds.features.Encoding.BYTES,
                doc="10 s at 250 Hz, mV, leads " + " ".join(CANONICAL_LEADS),
            ),
            "label": tfds.features.ClassLabel(names=list(labels_lib.LABEL_NAMES)),
            "patient_id": tfds.features.Text(),
            "record_id": tfds.features.Text(),
            "window": tfds.features.Scalar(np.int32, doc="index of the window in its record"),
            "fold": tfds.features.Scalar(np.int32, doc="1-8 train, 9 validation, 10 test"),
            "codes": tfds.features.Text(doc="the record's raw diagnostic codes / clinical text"),
            "age": tfds.features.Scalar(np.float32, doc="years, NaN when unknown"),
            "sex": tfds.features.Text(doc="'male', 'female' or '' when unknown"),
        }
    )


@dataclasses.dataclass(eq=False)
class MiConfig(tfds.core.BuilderConfig):
    """A builder config: the label rule (``paper`` or ``mi_superclass``,
    :mod:`leadmix_jax.data.labels`) and, for PTB-XL, which records to read
    (``rate`` 500: ``records500/``, 100: ``records100/``; ``None``: the
    database's only rate)."""

    rule: str = "paper"
    rate: int | None = None


BUILDER_CONFIGS = [
    MiConfig(name="paper", description="Label rule of the LeadMix-MST paper (default)."),
    MiConfig(
        name="mi_superclass",
        rule="mi_superclass",
        description="Field-standard MI-superclass label rule (PTB: reason for admission; "
        "PTB-XL: diagnostic_class MI / NORM only; SPH: as the paper).",
    ),
]


class MiEcgBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the three builders; subclasses set ``DATABASE`` and the docs."""

    DATABASE: str = ""
    HOMEPAGE: str = ""
    #: ``scan(root, rule) -> Scan``: the database's metadata scanner
    #: (``leadmix_jax/data/build/<db>.py``), set by each builder.
    scan = None
    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {
        "1.0.0": "Initial release: one example per clean 10 s window.",
        "1.1.0": "PTB and SPH folds are a hash of the patient id (stable when metadata rows "
        "are added, removed or bad; splits changed). WFDB signals in uV/V are "
        "converted to mV. Metadata paths leaving the source folder, bad CSV rows "
        "and empty splits are skipped and reported instead of stopping the build.",
    }
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_CONFIG_NAME = "paper"
    #: The file that marks a folder as this database (``ptbxl_database.csv``, ...).
    INDEX_FILE: str = ""
    #: The PhysioNet project a build without ``--manual_dir`` downloads
    #: (``'ptb-xl/1.0.3'``); None: the database is only read from ``--manual_dir``.
    PHYSIONET_PROJECT: str | None = None

    def __init__(
        self,
        *,
        num_workers: int | None = None,
        file_format=None,
        amplitude_range_mv: AmplitudeRange | None = DEFAULT_AMPLITUDE_RANGE,
        **kwargs,
    ):
        self._num_workers = default_workers() if num_workers is None else max(1, int(num_workers))
        self._amplitudes = amplitude_range_mv
        self._report: BuildReport | None = None
        self._runner: RecordPool | None = None
        self._kept_signals: dict[
            str, tuple[str, str, str]
        ] = {}  # raw-samples sha1 -> (record id, split, path)
        super().__init__(file_format=file_format, **kwargs)
        if file_format is None and not (epath.Path(self.data_dir) / "dataset_info.json").exists():
            # ArrayRecord (random access, for grain) unless asked otherwise.
            self.info.set_file_format("array_record", override=True)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=features(), supervised_keys=("ecg", "label"), homepage=self.HOMEPAGE
        )

    # -- stages ---------------------------------------------------------------

    def _scan(self, root) -> Scan:
        config = self.builder_config
        rate = {"rate": config.rate} if getattr(config, "rate", None) else {}
        return type(self).scan(root, getattr(config, "rule", config.name), **rate)

    def _fetch_index(self, source: PhysioNetSource) -> None:
        """Downloads the metadata files the scan reads (each database's own)."""
        raise NotImplementedError

    def _source(self, dl_manager) -> tuple[epath.Path, PhysioNetSource | None]:
        """The source folder: ``--manual_dir`` when given (or TFDS's default
        manual folder when it holds this database), else a download
        (:mod:`leadmix_jax.data.build.download`) of the checksums and metadata."""
        try:
            manual = epath.Path(dl_manager.manual_dir)
        except AssertionError:  # no --manual_dir, or an empty one
            manual = None
        default = epath.Path(dl_manager.download_dir) / "manual"
        if manual is not None and (manual != default or (manual / self.INDEX_FILE).exists()):
            return manual, None
        if not self.PHYSIONET_PROJECT:
            raise NotTheDatabaseError(
                f"{self.name} is not downloaded by the build: give --manual_dir. "
                + " ".join(self.MANUAL_DOWNLOAD_INSTRUCTIONS.split())
            )
        source = PhysioNetSource(dl_manager, self.PHYSIONET_PROJECT)
        source.fetch([SUMS_NAME], what="checksum list")
        if not source.has(SUMS_NAME):
            print(f"{self.name}: no {SUMS_NAME} at {source.base}: files are not checked", flush=True)
        self._fetch_index(source)
        return epath.Path(source.root), source

    def _scan_source(self, dl_manager) -> Scan:
        """The scan of the source; a download also fetches the records it keeps
        (a metadata file whose checksum differs is downloaded once more first)."""
        root, source = self._source(dl_manager)
        try:
            scan = self._scan(root)
        except MetadataChecksumError as err:
            if source is None:
                raise
            source.forget(os.path.relpath(err.path, root))
            self._fetch_index(source)
            scan = self._scan(root)
        if source is not None:
            rels = (os.path.relpath(t.path, root) for t in scan.tasks)
            source.fetch([f"{rel}{ext}" for rel in rels for ext in (".hea", ".dat")], what="record files")
            self._downloaded = {
                "from": source.base,
                "files_downloaded": source.downloaded,
                "not_on_server": len(source.not_found),
            }
        return scan

    def _split_generators(self, dl_manager):
        self._downloaded = None
        scan = self._scan_source(dl_manager)
        fmt = self.info.file_format
        self._report = BuildReport(
            self.name,
            self.builder_config.name,
            str(self.version),
            scan,
            self._num_workers,
            getattr(fmt, "value", str(fmt)),
        )
        self._report.amplitude_range_mv = self._amplitudes.spec() if self._amplitudes else None
        self._report.downloaded = self._downloaded
        self._kept_signals = {}
        by_split: dict[str, list[RecordTask]] = defaultdict(list)
        for t in scan.tasks:
            t = dataclasses.replace(t, amplitude_range=self._amplitudes)
            by_split[splits_lib.split_of_fold(t.fold)].append(t)
        splits_lib.check_patient_disjoint({s: [t.patient_id for t in ts] for s, ts in by_split.items()})
        logging.info(
            "%s: %d records to process: %s",
            self.name,
            len(scan.tasks),
            {s: len(ts) for s, ts in by_split.items()},
        )
        if not by_split:
            raise NothingUsableError(
                f"{self.name}: no MI or normal record in {scan.source} "
                f"({scan.n_source} listed).\n{self._report.summary()}"
            )
        for s in splits_lib.SPLITS:
            if not by_split.get(s):
                self._report.empty_splits.append(s)
        return {s: self._generate_examples(by_split[s], s) for s in splits_lib.SPLITS if by_split.get(s)}

    def _generate_splits(self, dl_manager, download_config):
        """TFDS's split generation, except that a split whose every record was
        skipped is left out (and reported) instead of failing the whole build.

        TFDS's writer raises ``AssertionError('No examples were yielded.')``
        for an empty split, so the splits are submitted one by one here (the
        non-Beam path of ``GeneratorBasedBuilder._generate_splits``).
        """
        from tensorflow_datasets.core import split_builder as split_builder_lib

        split_builder = split_builder_lib.SplitBuilder(
            split_dict=self.info.splits,
            features=self.info.features,
            dataset_size=self.info.dataset_size,
            max_examples_per_split=download_config.max_examples_per_split,
            beam_options=download_config.beam_options,
            beam_runner=download_config.beam_runner,
            shard_config=download_config.get_shard_config(),
            example_writer=self._example_writer(),
            ignore_duplicates=download_config.ignore_duplicates,
        )
        infos = []
        for name, generator in self._split_generators(dl_manager).items():
            try:
                infos.append(
                    split_builder.submit_split_generation(
                        split_name=name,
                        generator=generator,
                        filename_template=self._get_filename_template(split_name=name),
                        disable_shuffling=self.info.disable_shuffling,
                        nondeterministic_order=download_config.nondeterministic_order,
                    ).result()
                )
            except AssertionError as err:
                if "No examples were yielded" not in str(err) or self._report is None:
                    raise
                self._report.empty_splits.append(name)
                logging.warning("%s: split %s is empty: every record was skipped", self.name, name)
        if not infos:
            raise NothingUsableError(
                f"{self.name}: every record was skipped, nothing to write.\n{self._report.summary()}"
            )
        return infos

    def _generate_examples(self, tasks: list[RecordTask], split: str):
        if self._runner is None:
            self._runner = RecordPool(self._num_workers)
        label_of = {name: i for i, name in enumerate(labels_lib.LABEL_NAMES)}
        done = 0
        for result in self._runner.map(tasks):
            result = self._unless_duplicate(result, split)
            self._report.add_result(result, split)
            done += 1
            if done % 1000 == 0:
                logging.info("%s %s: %d/%d records", self.name, split, done, len(tasks))
            if not result.ok:
                logging.info(
                    "%s: skipped %s: %s %s", self.name, result.task.record_id, result.reason, result.detail
                )
                continue
            t = result.task
            for window, idx in zip(result.windows, result.window_index):
                yield (
                    f"{t.record_id}#{int(idx)}",
                    {
                        "ecg": window,
                        "label": label_of[t.label],
                        "patient_id": t.patient_id,
                        "record_id": t.record_id,
                        "window": int(idx),
                        "fold": int(t.fold),
                        "codes": t.codes,
                        "age": np.float32(t.age),
                        "sex": t.sex,
                    },
                )

    def _log_download_bytes(self) -> None:
        # TFDS prints "Downloading and preparing dataset Unknown size ...": nothing is downloaded here
        print(f"{self.name}/{self.builder_config.name}: building {self.data_dir}", flush=True)

    def _log_download_done(self) -> None:
        print(f"{self.name}/{self.builder_config.name}: built {self.data_dir}", flush=True)

    def _unless_duplicate(self, result: RecordResult, split: str) -> RecordResult:
        """``result``, or a ``duplicate_signal`` skip when a record kept earlier in
        this build had the same raw samples (the same file under two metadata
        rows, or a copy). The first record in build order (train, validation,
        test; metadata order within a split) is kept: one copy of the data,
        never the same signal in two splits."""
        if not result.ok or not result.signal_sha1:
            return result
        t = result.task
        kept = self._kept_signals.setdefault(result.signal_sha1, (t.record_id, split, t.path))
        if kept == (t.record_id, split, t.path):
            return result
        same = (
            "the same file as"
            if os.path.realpath(kept[2]) == os.path.realpath(t.path)
            else "the same samples as"
        )
        return dataclasses.replace(
            result,
            windows=None,
            window_index=None,
            reason="duplicate_signal",
            detail=f"{same} record {kept[0]} ({kept[1]}), which is kept",
        )

    def download_and_prepare(self, *args, **kwargs):
        """As TFDS's, under a lock: a second build of this dataset config into the
        same ``data_dir`` waits for the first (then finds it built) instead of
        deleting its work. Then ``incomplete.*`` folders that killed builds left
        next to the version folder are removed (TFDS removes its temporary
        folder only when the build process survives). Under the ``tfds build``
        command a database with nothing usable is one message, not a traceback."""
        try:
            with build_lock(epath.Path(self.data_dir), self.name):
                parent = epath.Path(self.data_dir).parent
                if (epath.Path(self.data_dir) / "dataset_info.json").exists():
                    # built meanwhile by the build this one waited for: read what it wrote
                    self.info.read_from_directory(self.data_dir)
                elif parent.exists():
                    for stale in parent.glob("incomplete.*"):
                        if stale.is_dir():
                            logging.info("%s: removing %s left by an interrupted build", self.name, stale)
                            print(f"{self.name}: removing {stale} (left by an interrupted build)", flush=True)
                            stale.rmtree()
                return super().download_and_prepare(*args, **kwargs)
        except (NotTheDatabaseError, NothingUsableError, MetadataChecksumError, DownloadError) as err:
            if os.path.basename(sys.argv[0]) != "tfds":
                raise
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    def _download_and_prepare(self, dl_manager, download_config):
        self._report = None
        try:
            super()._download_and_prepare(dl_manager, download_config)
        finally:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
        if self._report is not None:
            self._report.finish()
            report = self._report.to_json()
            path = epath.Path(self.data_dir) / REPORT_NAME
            path.write_text(json.dumps(report, indent=1, default=json_default) + "\n")
            print(self._report.summary(), file=sys.stdout, flush=True)


def read_report(data_dir, name: str, config: str = "paper", version: str = VERSION) -> dict:
    """Reads ``<data_dir>/<name>/<config>/<version>/build_report.json``."""
    path = epath.Path(data_dir) / name / config / version / REPORT_NAME
    return json.loads(path.read_text())
