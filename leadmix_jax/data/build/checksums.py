"""A database's published SHA-256 sums, and the check of each file read against them.

PhysioNet publishes ``SHA256SUMS.txt`` at the top of every database (PTB,
PTB-XL): one ``<sha256> <relative path>`` line per file. Where the source
folder holds it (a download by the builder always does; ``wget -r`` and the
zip do too), every file the builder reads is checked before it is used:

* a metadata file (``ptbxl_database.csv``, ``scp_statements.csv``,
  ``RECORDS``, ``CONTROLS``) that differs stops the build with
  :class:`MetadataChecksumError`: a changed index could label or split
  records wrongly, and no record can be trusted without it;
* a record's files (``.hea``, ``.dat``) that differ make the record a
  ``checksum_mismatch`` skip, counted in the build report.

A folder without ``SHA256SUMS.txt`` (SPH, which publishes none; a subset a
user made) is built unchecked, and the build report says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

SUMS_NAME = "SHA256SUMS.txt"


class MetadataChecksumError(ValueError):
    """A metadata file of the source differs from its published checksum (stops the build)."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


def sha256_of(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_sums(text: str) -> dict[str, str]:
    """``{relative path: sha256}`` of a ``sha256sum``-style listing
    (``<hex> <path>``, ``<hex>  <path>`` or ``<hex> *<path>``); other lines are ignored."""
    sums = {}
    for line in text.splitlines():
        digest, _, rel = line.strip().partition(" ")
        rel = rel.strip().lstrip("*").removeprefix("./")
        if len(digest) == 64 and rel and all(c in "0123456789abcdefABCDEF" for c in digest):
            sums[rel] = digest.lower()
    return sums


@dataclasses.dataclass(frozen=True)
class Checksums:
    """The published sums of one source folder (empty when none is published)."""

    root: Path
    sums: dict[str, str]

    @classmethod
    def of_folder(cls, root) -> "Checksums":
        """The sums of ``root/SHA256SUMS.txt``, or none when the file is absent."""
        root = Path(str(root))
        path = root / SUMS_NAME
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        return cls(root, parse_sums(text))

    @property
    def published(self) -> bool:
        return bool(self.sums)

    @property
    def file(self) -> str | None:
        """The sums file's path when sums are published, else None."""
        return str(self.root / SUMS_NAME) if self.sums else None

    def expected(self, path) -> str | None:
        """The published sum of ``path`` (inside ``root``), None if not listed."""
        try:
            rel = Path(str(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None
        return self.sums.get(rel)

    def of_record(self, record_path) -> tuple[tuple[str, str], ...]:
        """``((file, sha256), ...)`` of a WFDB record's ``.hea`` and ``.dat``
        that are listed (``record_path`` without extension)."""
        out = []
        for ext in (".hea", ".dat"):
            want = self.expected(str(record_path) + ext)
            if want:
                out.append((str(record_path) + ext, want))
        return tuple(out)

    def check_metadata(self, path) -> None:
        """Raises :class:`MetadataChecksumError` when the metadata file ``path``
        is listed and its content differs."""
        problem = mismatch(path, self.expected(path))
        if problem:
            raise MetadataChecksumError(
                str(path),
                f"{path}: {problem}: the metadata could label or split records wrongly, so nothing is "
                f"built. Download it again, or remove {self.root / SUMS_NAME} to build without checks.",
            )


def mismatch(path, want: str | None) -> str | None:
    """One line saying how ``path`` differs from its published sum ``want``;
    None when it matches, is not listed or does not exist (the reader says so)."""
    if not want or not Path(str(path)).is_file():
        return None
    got = sha256_of(path)
    if got == want:
        return None
    return f"sha256 {got[:16]}... differs from {SUMS_NAME} ({want[:16]}...)"
