"""Writes WFDB records (format 16) with full control over the header text
(line endings, checksum style, files listed but absent), as the real PTB and
PTB-XL files vary in these (testing only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


__all__ = ["write_wfdb"]


def _digitize(sig_mv: np.ndarray, gain: float) -> np.ndarray:
    d = np.rint(np.asarray(sig_mv, dtype=np.float64) * gain)
    return np.clip(d, -32767, 32767).astype("<i2")  # -32768 is WFDB's "invalid"


def _checksum(d: np.ndarray) -> np.ndarray:
    return d.astype(np.int64).sum(axis=0) & 0xFFFF


def write_wfdb(
    directory,
    record: str,
    files: list[tuple[str, np.ndarray, list[str]]],
    fs: float,
    gain_field: str,
    gain: float,
    *,
    comments: list[str] | None = None,
    newline: str = "\n",
    signed_checksum: bool = False,
    zero_fields: bool = False,
    write_files: set[str] | None = None,
    fmt: str = "16",
) -> None:
    """Writes one WFDB record in format 16 (or 80: 8-bit, for tiny files).

    Args:
      directory: folder of the record.
      record: record name (``s0010_re``, ``00001_hr``).
      files: ``(file name, signal (T, c) in mV, signal names)`` per data file;
        a header may list several files (PTB's ``.dat`` + ``.xyz``).
      fs: sampling rate.
      gain_field: the gain as it appears in the header (``'2000'`` or
        ``'1000.0(0)/mV'``); ``gain`` its value for digitising.
      comments: header comment lines, without ``#``; ``''`` is an empty line.
      newline: ``'\\n'`` or ``'\\r\\n'``.
      signed_checksum: print checksums as signed 16-bit numbers (PTB) rather
        than 0..65535 (PTB-XL).
      zero_fields: write 0 for initial value and checksum (old PTB headers).
      write_files: which data files to actually write (default: all); the
        header lists all of them either way.
      fmt: ``'16'`` (16-bit, as PTB and PTB-XL) or ``'80'`` (8-bit offset
        binary; samples clipped to +-127 adu).
    """
    if fmt not in ("16", "80"):
        raise ValueError(f"fmt must be '16' or '80', got {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = files[0][1].shape[0]
    lines = [f"{record} {sum(len(f[2]) for f in files)} {fs:g} {n}"]
    for fname, sig, names in files:
        d = _digitize(sig, gain)
        if fmt == "80":
            d = np.clip(d, -127, 127)
        if write_files is None or fname in write_files:
            if fmt == "80":
                (d + 128).astype(np.uint8).tofile(directory / fname)
            else:
                d.tofile(directory / fname)
        cks = _checksum(d)
        if signed_checksum:
            cks = (cks + 32768) % 65536 - 32768
        for c, name in enumerate(names):
            init, ck = (0, 0) if zero_fields else (int(d[0, c]), int(cks[c]))
            bits = 8 if fmt == "80" else 16
            lines.append(f"{fname} {fmt} {gain_field} {bits} 0 {init} {ck} 0 {name}")
    if comments is not None:
        lines.append("")
        lines += [f"# {c}" if c else "" for c in comments]
    with open(directory / f"{record}.hea", "w", newline="", encoding="ascii") as fh:
        fh.write(newline.join(lines) + newline)
