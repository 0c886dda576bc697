"""Downloads of the open PhysioNet databases (PTB, PTB-XL) through TFDS's download manager.

``tfds build datasets/ptbxl_mi`` without ``--manual_dir`` fetches, file by
file, only what the build reads: ``SHA256SUMS.txt`` and the metadata first,
then the ``.hea``/``.dat`` files of the records the label rule keeps, at the
config's rate (the 100 Hz configs never fetch ``records500/``). Each file goes
through ``tfds.download.DownloadManager`` (its cache under
``<data_dir>/downloads/<dataset>/``, its parallel transfers) and is linked
into a folder in the database's own layout,
``<data_dir>/downloads/physionet/<project>/<version>/``, which the builder
then reads exactly as it reads a ``--manual_dir``; the published checksums are
checked there (:mod:`leadmix_jax.data.build.checksums`).

Resuming: a file is fetched once. A transfer that breaks is retried (a fresh
download manager, ``attempts`` in all); files still failing stop the build
with one line, and the same command again fetches only what is missing. A
file the server does not have (HTTP 404) is left out, and the record that
needs it is skipped as a missing file.

``LEADMIX_PHYSIONET_URL`` replaces ``https://physionet.org/files`` (a
mirror, or a local server in tests).
"""

from __future__ import annotations

import copy
import os
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

PHYSIONET_URL = "https://physionet.org/files"
PHYSIONET_URL_ENV = "LEADMIX_PHYSIONET_URL"


class DownloadError(ValueError):
    """Files could not be downloaded (stops the build; running it again resumes)."""


class PhysioNetSource:
    """One PhysioNet project (``'ptb-xl/1.0.3'``) fetched on demand into ``root``."""

    def __init__(self, dl_manager, project: str, attempts: int = 3):
        self.dl_manager = dl_manager
        self.project = project
        self.attempts = attempts
        base = os.environ.get(PHYSIONET_URL_ENV) or PHYSIONET_URL
        self.base = f"{base.rstrip('/')}/{project}/"
        self.root = Path(str(dl_manager.download_dir)) / "physionet" / project
        self.downloaded = 0  # files fetched by this build (not found in the cache)
        self.not_found: list[str] = []

    def url(self, rel: str) -> str:
        return self.base + urllib.parse.quote(rel)

    def has(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def fetch(self, rels: Iterable[str], required: bool = False, what: str = "files") -> None:
        """Downloads the files ``rels`` (paths in the database) that ``root``
        does not hold yet, and links them into it. ``required``: a file the
        server does not have stops the build too."""
        todo = {rel: self.url(rel) for rel in dict.fromkeys(rels) if not self.has(rel)}
        if not todo:
            return
        print(f"downloading {len(todo)} {what} from {self.base}", flush=True)
        t0 = time.perf_counter()
        paths, failed = download_with_retries(self.dl_manager, todo, self.attempts)
        for rel, path in paths.items():
            self._link(rel, Path(str(path)))
        missing = sorted(rel for rel, why in failed.items() if "HTTP code: 404" in why)
        broken = {rel: why for rel, why in failed.items() if rel not in missing}
        self.downloaded += len(paths)
        self.not_found += missing
        if broken or (required and missing):
            rel, why = next(iter(broken.items())) if broken else (missing[0], "not on the server (HTTP 404)")
            raise DownloadError(
                f"{len(broken) + (len(missing) if required else 0)} of {len(todo)} {what} could not be "
                f"downloaded from {self.base} (e.g. {rel}: {why}). The {len(paths)} downloaded are kept "
                f"in {self.dl_manager.download_dir}: run the same command again to resume."
            )
        print(
            f"downloaded {len(paths)} {what} in {time.perf_counter() - t0:.1f} s"
            + (f"; {len(missing)} not on the server" if missing else ""),
            flush=True,
        )

    def forget(self, rel: str) -> None:
        """Removes a fetched file (its link and the cached copy), so that the
        next :meth:`fetch` downloads it again."""
        link = self.root / rel
        if link.is_symlink():
            cached = Path(os.readlink(link))
            for path in (cached, cached.with_name(cached.name + ".INFO")):
                path.unlink(missing_ok=True)
        link.unlink(missing_ok=True)

    def _link(self, rel: str, cached: Path) -> None:
        link = self.root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(cached.absolute(), tmp)
        os.replace(tmp, link)  # atomic: a reader sees the old link or the new one


def download_with_retries(dl_manager, urls: dict[str, str], attempts: int):
    """``({key: path}, {key: why})``: every url downloaded (or found in the
    cache), retrying those that failed with a fresh manager up to ``attempts``
    times in all. A 404 is not retried."""
    paths, failed, manager = {}, {}, dl_manager
    todo = dict(urls)
    for attempt in range(attempts):
        if attempt:
            # TFDS remembers a failed download per manager: retry with a copy
            # (pickled state: same settings and cache, fresh downloader)
            manager = copy.copy(dl_manager)
            time.sleep(min(2.0**attempt, 10.0) / 4)
        done, failed = download_all(manager, todo)
        paths.update(done)
        todo = {k: todo[k] for k, why in failed.items() if "HTTP code: 404" not in why}
        if not todo:
            break
    return paths, failed


def download_all(dl_manager, urls: dict[str, str]):
    """``({key: path}, {key: why})``: starts every download at once, as
    ``DownloadManager.download`` does (one progress bar, its parallelism),
    but waits for each, so one failure neither hides the others nor leaves
    transfers running."""
    start = getattr(dl_manager, "_download_or_get_cache", None)
    downloader = getattr(dl_manager, "_downloader", None)
    if start is None or downloader is None:  # TFDS changed inside: its public call, failing as a whole
        try:
            return dict(dl_manager.download(urls)), {}
        except Exception as err:  # noqa: BLE001 - reported per file by the caller
            return {}, {k: _one_line(err) for k in urls}
    paths, failed = {}, {}
    with downloader.tqdm():
        promises = {key: start(url) for key, url in urls.items()}
        for key, promise in promises.items():
            try:
                paths[key] = promise.get()
            except Exception as err:  # noqa: BLE001 - one file's failure is reported, not raised
                failed[key] = _one_line(err)
    return paths, failed


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:300]}"
