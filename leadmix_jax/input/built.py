"""Built TFDS datasets: where they are, their splits and reading their rows.

A dataset built by ``tfds build`` (or the demo) is read without importing its
builder (:func:`load_builder`). ArrayRecord builds (the default) are read by
random access; TFRecord builds sequentially (grain's TFRecord reader and
TFDS's numpy deserializer). This module is the only place where the two file
formats differ for reading rows; :mod:`leadmix_jax.input.pipeline` builds its
sources on these helpers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np
from etils import epath

from leadmix_jax.errors import UserError


def builder_dir(data_dir: str, name: str) -> epath.Path:
    """Folder of a built dataset: ``data_dir/<name>[/<config>]/<version>``.

    Args:
      data_dir: the ``--data_dir`` given to ``tfds build`` (``~`` expanded).
      name: ``'sph_mi'``, ``'sph_mi/paper'`` or ``'sph_mi/paper/1.0.0'``;
        without a version the newest built one is taken. An absolute path
        (``/data/other_tfds/ptbxl_mi/paper``) names a dataset built under
        another ``data_dir`` and is used as is, ``data_dir`` ignored.
    """
    expanded = os.path.expanduser(name)
    if os.path.isabs(expanded):
        path = epath.Path(expanded)
    else:
        path = epath.Path(os.path.abspath(os.path.expanduser(data_dir or "."))) / name
    if (path / "dataset_info.json").exists():
        return path
    if not path.exists():
        raise UserError(
            f"No built dataset {name!r}: {path} does not exist. Build it with `tfds build` "
            "or set "
            "--config.data_dir to the folder it was built in."
        )
    # <name>/<version> or <name>/<config>/<version>
    found = [*path.glob("*/dataset_info.json"), *path.glob("*/*/dataset_info.json")]
    found.sort(key=lambda p: _version_key(p.parent.name))
    if not found:
        raise UserError(f"{path} holds no built dataset (no dataset_info.json below it).")
    configs = {p.parent.parent for p in found if p.parent.parent != path}
    if len(configs) > 1:
        raise UserError(
            f"{name!r} has several built configs {sorted(c.name for c in configs)}: "
            f"name one, e.g. '{name}/{sorted(c.name for c in configs)[0]}'."
        )
    return found[-1].parent


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def load_builder(data_dir: str, name: str):
    """A read-only TFDS builder of a built dataset (no builder code imported)."""
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(str(builder_dir(data_dir, name)))


def split_size(builder, split: str) -> int:
    """Examples in ``split``; ValueError if it is empty or was not written (a
    build leaves out a split whose every record was skipped: see its build_report.json)."""
    splits = builder.info.splits
    n = splits[split].num_examples if split in list(splits.keys()) else 0
    if n == 0:
        raise ValueError(
            f"split {split!r} of {builder.info.full_name} is empty: the build kept no "
            f"record for it (see build_report.json in {builder.data_dir}); "
            f"it has {sorted(splits.keys())}"
        )
    return n


def is_array_record(builder) -> bool:
    return "array_record" in str(builder.info.file_format).lower()


def decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def sample_indices(builder, split: str, max_examples: int | None) -> np.ndarray:
    """Ascending indices of ``split``: all of it, or ``max_examples`` evenly spaced."""
    total = split_size(builder, split)
    n = total if max_examples is None else min(total, max_examples)
    return np.unique(np.linspace(0, total - 1, n).astype(np.int64)) if n else np.zeros((0,), np.int64)


def read_rows(builder, split: str, indices) -> Iterator[tuple[int, dict]]:
    """``(index, example)`` of ``split`` for ascending ``indices``, in either
    file format (ArrayRecord by random access, TFRecord by one sequential pass
    that stops after the last wanted index)."""
    indices = [int(i) for i in indices]
    if not indices:
        return
    if is_array_record(builder):
        source = builder.as_data_source(split)
        for i in indices:
            yield i, source[i]
        return
    want = set(indices)
    for i, ex in tfrecord_indexed(builder, split, 0, 1, keep=want.__contains__):
        yield i, ex
        if i >= indices[-1]:
            return


# ----------------------------------------------------------------------------
# TFRecord builds.


def tfrecord_files(builder, split: str) -> list[str]:
    info = builder.info.splits[split]
    return [str(f) for f in info.filepaths]


def tfrecord_shard_lengths(builder, split: str) -> list[int]:
    return list(builder.info.splits[split].shard_lengths)


class _Deserialize(grain.transforms.Map):
    def __init__(self, features):
        self.features = features

    def map(self, raw: bytes):
        return self.features.deserialize_example_np(raw)


def tfrecord_dataset(builder, split: str, index: int, count: int, repeat: bool = False):
    """Sequential IterDataset of this host's files (every count-th shard),
    endlessly cycling through them if ``repeat``."""
    files = tfrecord_files(builder, split)[index::count]
    if not files:
        raise ValueError(
            f"host {index} of {count} has no TFRecord shard of {split!r}; "
            "rebuild with more shards or use ArrayRecord"
        )
    files = grain.MapDataset.source(files)
    per_file = (files.repeat(None) if repeat else files).map(grain.experimental.TFRecordIterDataset)
    ds = grain.experimental.InterleaveIterDataset(per_file, cycle_length=1)
    return ds.map(_Deserialize(builder.info.features))


def tfrecord_indexed(builder, split: str, index: int, count: int, keep=None) -> Iterator[tuple[int, dict]]:
    """``(index in split, example)`` of this host's shards (every ``count``-th
    file), in order; with ``keep``, only the indices it accepts (the others
    are not deserialised)."""
    files = tfrecord_files(builder, split)
    offsets = np.concatenate([[0], np.cumsum(tfrecord_shard_lengths(builder, split))])
    features = builder.info.features
    for shard in range(index, len(files), count):
        for j, raw in enumerate(grain.experimental.TFRecordIterDataset(files[shard])):
            i = int(offsets[shard] + j)
            if keep is None or keep(i):
                yield i, features.deserialize_example_np(raw)
