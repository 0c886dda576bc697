"""Readers of the three databases' original layouts, with one error vocabulary.

* WFDB (PTB, PTB-XL): :func:`read_wfdb_header` and :func:`read_wfdb`. Only the
  12 standard leads are read, wherever they are in the header and whatever
  their case (PTB's ``.xyz`` Frank leads may be listed in the header and
  absent on disk). Before any sample is read, the header is checked against
  the expected sampling rate and the signal files against the sizes the
  header implies, so truncated and mismatched files get a precise reason.
  Physical units are converted to mV (``uV``, ``V``; a header without units
  is taken as mV, the unit of all three databases).
  :func:`read_wfdb_leads` with ``allow_subset=True`` returns the standard
  leads that are present (prediction on records with fewer leads).
* SPH HDF5: :func:`read_sph_h5` reads dataset ``ecg`` of shape ``(12, N)``
  (leads in canonical order), checking ``N`` against ``metadata.csv``;
  :func:`read_h5_ecg` is the same with any number of rows.
* NumPy: :func:`read_npy` loads a numeric ``(time, leads)`` array.

The builders and ``leadmix_jax.deploy.predict`` use these same readers. The
database readers return the signal as float64 ``(time, 12)`` in the canonical
lead order (:data:`leadmix_jax.data.leads.CANONICAL_LEADS`), in mV, and every
reader raises :class:`RecordError` (a ``ValueError``) with a ``reason`` from
:data:`REASONS` and a one-line message naming the file on a bad record.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from leadmix_jax.data.leads import CANONICAL_LEADS, reorder_to_canonical

#: Why a record was skipped. ``excluded_label`` is not an error: the record
#: is neither MI nor normal under the chosen rule; reports count it apart.
REASONS: dict[str, str] = {
    "missing_header_file": "WFDB header (.hea) listed in the metadata but absent",
    "missing_signal_file": "signal file (.dat / .h5) listed in the metadata/header but absent",
    "truncated_signal": "signal file shorter than its header / metadata says",
    "header_mismatch": "header unparseable or disagreeing with the data (size, shape, format)",
    "unreadable_hdf5": "HDF5 file cannot be opened or has no 'ecg' dataset",
    "unreadable_array": ".npy file cannot be loaded as a numeric array",
    "unsafe_path": "metadata names a file outside the database folder (absolute or '..')",
    "missing_leads": "not all 12 standard leads present",
    "wrong_sampling_rate": "sampling rate differs from the database's",
    "too_short": "shorter than one 10 s window",
    "no_clean_window": "every 10 s window has a flat lead or a non-finite sample",
    "implausible_amplitude": "every usable 10 s window has an amplitude no ECG in mV has "
    "(stored in uV, a wrong gain, random bytes, a lead x1e30: see docs/data.md)",
    "checksum_mismatch": "a file differs from the SHA-256 the database publishes (SHA256SUMS.txt)",
    "duplicate_signal": "the same signal as a record kept earlier in the build (same file or same samples)",
    "unparseable_codes": "diagnostic codes / clinical text cannot be parsed",
    "bad_metadata": "metadata row with an unusable field (patient id, fold, file name), "
    "a wrong number of fields or a non-UTF-8 byte",
    "processing_error": "unexpected error while reading or preprocessing (see detail)",
}
EXCLUDED_LABEL = "excluded_label"

#: Factor from a WFDB physical unit (lower case) to mV. No unit ('' or 'NU',
#: WFDB's default) is taken as mV, the unit of PTB, PTB-XL and SPH.
UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "\u03bcv": 1e-3, "\u00b5v": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}

#: Bytes per sample of the WFDB formats whose file size can be checked.
_WFDB_BYTES = {"8": 1.0, "80": 1.0, "16": 2.0, "61": 2.0, "160": 2.0, "212": 1.5, "24": 3.0, "32": 4.0}

__all__ = [
    "REASONS",
    "EXCLUDED_LABEL",
    "RecordError",
    "WfdbHeader",
    "read_wfdb_header",
    "read_wfdb",
    "read_wfdb_leads",
    "read_sph_h5",
    "read_h5_ecg",
    "read_npy",
    "check_sampling_rate",
    "UNIT_TO_MV",
]


class RecordError(ValueError):
    """A record that cannot be used; ``reason`` is a key of :data:`REASONS`.

    ``str(err)`` is one line, ``"<file>: <reason>: <detail>"`` when the file is
    known, so a command line can print it as is.
    """

    def __init__(self, reason: str, detail: str = "", path: str | Path | None = None):
        if reason not in REASONS and reason != EXCLUDED_LABEL:
            raise ValueError(f"Unknown skip reason {reason!r}")
        msg = f"{reason}: {detail}" if detail else reason
        msg = f"{path}: {msg}" if path is not None else msg
        super().__init__(" ".join(msg.split()))  # one line
        self.reason = reason
        self.detail = detail
        self.path = None if path is None else str(path)


@dataclasses.dataclass(frozen=True)
class WfdbHeader:
    """What the builders need from a WFDB header."""

    record: str  # path of the record without extension
    fs: float
    sig_len: int
    sig_name: tuple[str, ...]
    file_name: tuple[str, ...]
    fmt: tuple[str, ...]
    byte_offset: tuple[int, ...]
    samps_per_frame: tuple[int, ...]
    comments: tuple[str, ...]
    units: tuple[str, ...] = ()


def read_wfdb_header(record: str | Path) -> WfdbHeader:
    """Parses ``<record>.hea``.

    Raises:
      RecordError: ``missing_header_file`` or ``header_mismatch`` (unparseable).
    """
    import wfdb

    record = str(record)
    if not Path(record + ".hea").is_file():
        name = Path(record).name
        if not Path(record + ".dat").is_file():  # a metadata row without any file
            raise RecordError("missing_signal_file", f"neither {name}.hea nor {name}.dat found")
        raise RecordError("missing_header_file", f"{name}.hea not found")
    try:
        h = wfdb.rdheader(record)
    except Exception as err:  # noqa: BLE001 - wfdb raises many types
        raise RecordError("header_mismatch", f"unparseable header: {err}") from None
    n = h.n_sig or 0
    if n == 0 or not h.sig_name or not h.file_name:
        raise RecordError("header_mismatch", "header lists no signals")
    if h.fs is None or not math.isfinite(float(h.fs)) or float(h.fs) <= 0:
        raise RecordError("header_mismatch", f"bad sampling rate {h.fs!r}")
    if h.sig_len is None:
        raise RecordError("header_mismatch", "header has no signal length")
    return WfdbHeader(
        record=record,
        fs=float(h.fs),
        sig_len=int(h.sig_len),
        sig_name=tuple(str(s) for s in h.sig_name),
        file_name=tuple(str(f) for f in h.file_name),
        fmt=tuple(str(f) for f in h.fmt),
        byte_offset=tuple(int(b or 0) for b in (h.byte_offset or [0] * n)),
        samps_per_frame=tuple(int(s or 1) for s in (h.samps_per_frame or [1] * n)),
        comments=tuple(str(c) for c in (h.comments or ())),
        units=tuple(str(u or "") for u in (h.units or [""] * n)),
    )


def check_sampling_rate(fs: float, expected_fs: float | None, where: str = "") -> None:
    """Raises ``wrong_sampling_rate`` unless ``fs`` equals ``expected_fs`` (if given)."""
    if expected_fs is not None and abs(float(fs) - float(expected_fs)) > 1e-6 * expected_fs:
        raise RecordError("wrong_sampling_rate", f"{where}{fs:g} Hz, expected {float(expected_fs):g} Hz")


def _check_files(header: WfdbHeader, channels: list[int]) -> None:
    """Checks the signal files holding ``channels`` exist and have the size the
    header implies."""
    channels = list(channels)
    folder = Path(header.record).parent
    for fname in sorted({header.file_name[c] for c in channels}):
        path = folder / fname
        if not path.is_file():
            raise RecordError("missing_signal_file", f"{fname} not found")
        in_file = [i for i, f in enumerate(header.file_name) if f == fname]
        fmts = {header.fmt[i] for i in in_file}
        if len(fmts) != 1:
            raise RecordError("header_mismatch", f"{fname} mixes formats {sorted(fmts)}")
        fmt = fmts.pop()
        if fmt not in _WFDB_BYTES:
            continue  # exotic format: wfdb itself will check
        frame = sum(header.samps_per_frame[i] for i in in_file)
        offset = header.byte_offset[in_file[0]]
        expected = offset + int(math.ceil(header.sig_len * frame * _WFDB_BYTES[fmt]))
        size = path.stat().st_size
        if size < expected:
            raise RecordError("truncated_signal", f"{fname} has {size} bytes, header implies {expected}")
        if size > expected + (1 if fmt == "212" else 0):
            raise RecordError("header_mismatch", f"{fname} has {size} bytes, header implies {expected}")


def _unit_scale(header: WfdbHeader, channel: int) -> float:
    unit = header.units[channel].strip().lower() if header.units else ""
    if unit not in UNIT_TO_MV:
        raise RecordError(
            "header_mismatch",
            f"lead {header.sig_name[channel]} has unit {header.units[channel]!r}, expected mV, uV or V",
        )
    return UNIT_TO_MV[unit]


def read_wfdb_leads(
    record: str | Path,
    expected_fs: float | None = None,
    header: WfdbHeader | None = None,
    *,
    allow_subset: bool = False,
) -> tuple[np.ndarray, float, WfdbHeader, tuple[str, ...]]:
    """Reads the standard leads of a WFDB record in canonical order, in mV.

    Args:
      record: path without extension (``.../patient001/s0010_re``).
      expected_fs: the database's sampling rate (checked when given).
      header: the already parsed header, if any.
      allow_subset: ``False`` (databases): all 12 standard leads are required.
        ``True`` (prediction): the standard leads the header names and whose
        data file exists are read; at least one is required.

    Returns:
      ``(signal float64 (time, L) in mV, fs, header, lead names)``: the ``L``
      canonical lead names of the columns (``L == 12`` unless
      ``allow_subset``); samples WFDB marks as invalid come out as NaN.

    Raises:
      RecordError: see :data:`REASONS`; its message names the record.
    """
    try:
        return _read_wfdb_leads(record, expected_fs, header, allow_subset)
    except RecordError as err:
        if err.path is not None:
            raise
        raise RecordError(err.reason, err.detail, path=str(record)) from None


def _read_wfdb_leads(record, expected_fs, header, allow_subset):
    import wfdb

    header = header or read_wfdb_header(record)
    check_sampling_rate(header.fs, expected_fs)
    folder = Path(header.record).parent
    if allow_subset:
        lowered = [n.strip().lower() for n in header.sig_name]
        names, order = [], []
        for lead in CANONICAL_LEADS:
            if lead.lower() in lowered:
                c = lowered.index(lead.lower())
                if (folder / header.file_name[c]).is_file():
                    names.append(lead)
                    order.append(c)
        if not order:
            raise RecordError(
                "missing_leads", f"no standard lead with a data file among {list(header.sig_name)}"
            )
    else:
        try:
            order = reorder_to_canonical(header.sig_name)
        except ValueError as err:
            raise RecordError("missing_leads", str(err)) from None
        names = list(CANONICAL_LEADS)
    if header.sig_len <= 0:
        raise RecordError("too_short", "header has 0 samples")
    if any(header.samps_per_frame[c] != 1 for c in order):
        raise RecordError("header_mismatch", "multi-sample frames are not supported")
    _check_files(header, order)
    scale = np.asarray([_unit_scale(header, c) for c in order])
    channels = sorted(order)
    try:
        rec = wfdb.rdrecord(header.record, channels=channels, physical=True, return_res=64)
    except Exception as err:  # noqa: BLE001
        raise RecordError("header_mismatch", f"wfdb cannot read the data: {err}") from None
    data = rec.p_signal
    if data is None or data.ndim != 2 or data.shape[1] != len(channels):
        raise RecordError("header_mismatch", "wfdb returned no / wrong-shaped signal")
    if data.shape[0] != header.sig_len:
        raise RecordError("truncated_signal", f"{data.shape[0]} samples read, header says {header.sig_len}")
    pos = {c: i for i, c in enumerate(channels)}
    signal = np.ascontiguousarray(data[:, [pos[c] for c in order]], dtype=np.float64) * scale
    return signal, header.fs, header, tuple(names)


def read_wfdb(
    record: str | Path, expected_fs: float | None = None, header: WfdbHeader | None = None
) -> tuple[np.ndarray, float, WfdbHeader]:
    """The 12 standard leads of a WFDB record: ``(signal float64 (time, 12) in
    mV, canonical order; fs; header)``. See :func:`read_wfdb_leads`."""
    signal, fs, header, _ = read_wfdb_leads(record, expected_fs, header)
    return signal, fs, header


def read_h5_ecg(
    path: str | Path, expected_samples: int | None = None, n_leads: int = len(CANONICAL_LEADS)
) -> np.ndarray:
    """Reads dataset ``ecg`` of shape ``(n_leads, N)`` of an HDF5 file (SPH layout).

    Args:
      path: the ``.h5`` file.
      expected_samples: ``N`` from ``metadata.csv`` (checked when given).
      n_leads: rows expected (12 for SPH; prediction may name fewer leads).

    Returns:
      float64 ``(N, n_leads)``, the rows as columns in file order.

    Raises:
      RecordError: ``missing_signal_file``, ``unreadable_hdf5``,
        ``missing_leads``, ``header_mismatch``, ``truncated_signal``; the
        message names the file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise RecordError("missing_signal_file", f"{path.name} not found", path=path)
    try:
        with h5py.File(path, "r") as fh:
            if "ecg" not in fh:
                raise RecordError(
                    "unreadable_hdf5", f"no dataset 'ecg' (has {list(fh.keys())[:5]})", path=path
                )
            if not isinstance(fh["ecg"], h5py.Dataset):
                raise RecordError("unreadable_hdf5", "'ecg' is an HDF5 group, not a dataset", path=path)
            data = fh["ecg"][()]
    except RecordError:
        raise
    except Exception as err:  # noqa: BLE001 - h5py raises OSError, KeyError, ...
        raise RecordError("unreadable_hdf5", f"{type(err).__name__}: {err}", path=path) from None
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.complexfloating):
        raise RecordError(
            "header_mismatch", f"'ecg' holds complex values ({data.dtype}): expected real samples", path=path
        )
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
        raise RecordError(
            "header_mismatch",
            f"'ecg' has shape {data.shape} dtype {data.dtype}, expected ({n_leads}, N)",
            path=path,
        )
    if data.shape[0] != n_leads:
        if data.shape[0] < n_leads:
            raise RecordError(
                "missing_leads", f"'ecg' has {data.shape[0]} leads, expected {n_leads}", path=path
            )
        raise RecordError(
            "header_mismatch", f"'ecg' has shape {data.shape}, expected ({n_leads}, N)", path=path
        )
    n = data.shape[1]
    if expected_samples is not None:
        if n < expected_samples:
            raise RecordError(
                "truncated_signal", f"{n} samples in the file, metadata says {expected_samples}", path=path
            )
        if n > expected_samples:
            raise RecordError(
                "header_mismatch", f"{n} samples in the file, metadata says {expected_samples}", path=path
            )
    return np.ascontiguousarray(data.T, dtype=np.float64)


def read_sph_h5(path: str | Path, expected_samples: int | None = None) -> np.ndarray:
    """Reads an SPH ``records/<ECG_ID>.h5`` (dataset ``ecg``, ``(12, N)``).

    Returns:
      float64 ``(N, 12)`` in canonical order (SPH stores I, II, III, aVR, aVL,
      aVF, V1..V6). Raises :class:`RecordError` as :func:`read_h5_ecg`.
    """
    return read_h5_ecg(path, expected_samples, len(CANONICAL_LEADS))


def read_npy(path: str | Path, n_leads: int | None = None) -> np.ndarray:
    """Reads a ``.npy`` ``(time, n_leads)`` numeric array as float64.

    Raises:
      RecordError: ``missing_signal_file``, ``unreadable_array`` (not a .npy,
        or not numeric), ``header_mismatch`` (shape); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError("missing_signal_file", f"{path.name} not found", path=path)
    try:
        with open(path, "rb") as fh:  # a file object: TFDS tests patch os.* paths
            data = np.load(fh, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError, OSError, ...
        raise RecordError("unreadable_array", f"{type(err).__name__}: {err}", path=path) from None
    if (
        not isinstance(data, np.ndarray)
        or np.issubdtype(data.dtype, np.complexfloating)
        or not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_)
    ):
        raise RecordError(
            "unreadable_array", f"dtype {getattr(data, 'dtype', type(data))} is not numeric", path=path
        )
    if data.ndim != 2 or (n_leads is not None and data.shape[1] != n_leads):
        raise RecordError(
            "header_mismatch",
            f"array of shape {data.shape} must be (time, {n_leads if n_leads is not None else 'leads'})",
            path=path,
        )
    return np.asarray(data, np.float64)
