"""One source record, end to end: the unit of work of a dataset build.

A :class:`RecordTask` (made by a database's metadata scanner) says where a
record is and what its label, patient and fold are; :func:`process_record`
reads it and runs the preprocessing chain in a build worker process (no TFDS
here), returning windows or a skip reason (:data:`leadmix_jax.data.records.REASONS`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os

import numpy as np

from leadmix_jax.data.amplitude import DEFAULT_AMPLITUDE_RANGE, AmplitudeRange
from leadmix_jax.data.build import checksums
from leadmix_jax.data.records import RecordError, WfdbHeader, read_sph_h5, read_wfdb


@dataclasses.dataclass(frozen=True)
class RecordTask:
    """Everything a worker needs to turn one source record into examples."""

    record_id: str
    patient_id: str
    label: str  # 'mi' / 'normal'
    fold: int  # 1..10
    codes: str  # raw diagnostic codes / clinical text
    age: float  # NaN when unknown
    sex: str  # 'male' / 'female' / ''
    kind: str  # 'wfdb' or 'sph_h5'
    path: str  # WFDB record path without extension, or the .h5 file
    expected_fs: float  # the database's sampling rate
    expected_samples: int | None = None  # SPH: N from metadata.csv
    header: WfdbHeader | None = None  # WFDB header already parsed while scanning
    amplitude_range: AmplitudeRange | None = DEFAULT_AMPLITUDE_RANGE  # the clean rule's amplitudes
    checksums: tuple[tuple[str, str], ...] = ()  # (file, published sha256) of the files read


@dataclasses.dataclass
class RecordResult:
    """Outcome of :func:`process_record`: windows, or a skip reason."""

    task: RecordTask
    windows: np.ndarray | None = None  # (n_kept, 2500, 12) float32
    window_index: np.ndarray | None = None  # (n_kept,) int32
    num_windows: int = 0
    num_flat: int = 0
    num_nonfinite: int = 0
    num_implausible: int = 0
    signal_sha1: str = ""  # of the raw samples read (mV, float64): duplicate detection
    files_checked: int = 0  # files verified against the published checksums
    reason: str | None = None
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is None


def load_signal(task: RecordTask) -> tuple[np.ndarray, float]:
    """The raw ``(time, 12)`` canonical-order signal of a task and its rate."""
    if task.kind == "wfdb":
        signal, fs, _ = read_wfdb(task.path, task.expected_fs, task.header)
        return signal, fs
    if task.kind == "sph_h5":
        return read_sph_h5(task.path, task.expected_samples), float(task.expected_fs)
    raise ValueError(f"Unknown record kind {task.kind!r}")


def process_record(task: RecordTask) -> RecordResult:
    """Reads one record and runs the preprocessing chain over its 12 leads.

    Never raises: any failure becomes ``RecordResult.reason`` (a key of
    :data:`REASONS`) with a human-readable ``detail``.
    """
    import time

    from leadmix_jax.data import preprocessing

    t0 = time.perf_counter()
    try:
        _verify_files(task)
        signal, fs = load_signal(task)
        digest = hashlib.sha1(np.ascontiguousarray(signal, np.float64).tobytes()).hexdigest()
        need = int(math.ceil(preprocessing.WINDOW_SECONDS * fs))
        if int(signal.shape[0] * preprocessing.TARGET_FS / fs) < preprocessing.WINDOW_SAMPLES:
            raise RecordError(
                "too_short",
                f"{signal.shape[0]} samples at {fs:g} Hz ({signal.shape[0] / fs:.2f} s), need {need}",
            )
        res = preprocessing.preprocess_record(signal, fs, task.amplitude_range)
        out = RecordResult(
            task,
            windows=res.windows,
            window_index=res.window_index,
            num_windows=res.num_windows,
            num_flat=res.num_flat,
            num_nonfinite=res.num_nonfinite,
            num_implausible=res.num_implausible,
            signal_sha1=digest,
        )
        if res.num_kept == 0:
            out.windows = out.window_index = None
            out.reason, out.detail = _why_no_window(res, task.amplitude_range)
    except RecordError as err:
        out = RecordResult(task, reason=err.reason, detail=err.detail)
    except Exception as err:  # noqa: BLE001 - one bad record must not stop a build
        out = RecordResult(task, reason="processing_error", detail=f"{type(err).__name__}: {err}")
    out.files_checked = len(task.checksums)  # compared before reading (a mismatch stops there)
    out.seconds = time.perf_counter() - t0
    return out


def _verify_files(task: RecordTask) -> None:
    """Raises ``checksum_mismatch`` when a file of the record differs from the
    database's published sum (:mod:`leadmix_jax.data.build.checksums`)."""
    for path, want in task.checksums:
        problem = checksums.mismatch(path, want)
        if problem:
            raise RecordError("checksum_mismatch", f"{os.path.basename(path)}: {problem}")


def _why_no_window(res, amplitudes: AmplitudeRange | None) -> tuple[str, str]:
    """``(reason, detail)`` of a record none of whose windows is kept: an
    implausible amplitude when that dropped most of its windows."""
    counts = f"{res.num_windows} window(s): {res.num_flat} flat, {res.num_nonfinite} non-finite"
    if res.num_implausible and res.num_implausible >= res.num_flat + res.num_nonfinite:
        return "implausible_amplitude", (
            f"largest |x| {res.max_peak_mv:.3g} mV after filtering ({counts}, {res.num_implausible} "
            f"implausible; plausible: peak {amplitudes.min_peak_mv:g}-{amplitudes.max_peak_mv:g} mV, "
            f"median |x| <= {amplitudes.max_median_mv:g} mV)"
        )
    if res.num_implausible:
        counts += f", {res.num_implausible} implausible amplitude"
    return "no_clean_window", counts
