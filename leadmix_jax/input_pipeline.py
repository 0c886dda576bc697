"""grain input pipeline over the built TFDS datasets.

Every built example holds a 10-s window of all 12 leads in canonical order
(``ecg`` ``(2500, 12)``); this module selects the configured leads in the
configured order, z-scores each lead with statistics of the training split,
optionally augments, and batches with static shapes.

* ArrayRecord builds (the default) are read with random access
  (``as_data_source``): global shuffle, exact resumable iterator state.
* TFRecord builds are read sequentially (grain's TFRecord reader and TFDS's
  numpy deserializer) with a shuffle window.

Multi-host: the training order is one global shuffle (the same on every
process, seeded); process ``p`` reads only the examples of its block
``[p*b, (p+1)*b)`` of every global batch (``b = global_batch / processes``),
so the global batches, and hence training, do not depend on the number of
processes. The training loop assembles the global array with
``jax.make_array_from_process_local_data``. Evaluation shards by
``examples[process::count]``; TFRecord builds shard by file. Evaluation
visits every example exactly once: the last batch is padded and carries a
``mask`` of zeros for the padding.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np
from etils import epath

from leadmix_jax import leads as leads_lib
from leadmix_jax import norm_stats
from leadmix_jax.errors import UserError
from leadmix_jax.norm_stats import NormStats

# Fields kept from each example for evaluation reports (strings decoded).
ID_FIELDS = ("record_id", "patient_id", "window")


# ----------------------------------------------------------------------------
# Locating built datasets.


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


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


# ----------------------------------------------------------------------------
# Normalisation statistics (computed by norm_stats; this module only reads the examples).


def compute_norm_stats(
    builder, split: str, leads: Sequence[str], max_examples: int, source_name: str = ""
) -> NormStats:
    """:func:`leadmix_jax.norm_stats.compute` over (up to ``max_examples``)
    evenly spaced examples of ``split``: the same examples in either file format."""
    ecgs = (ex["ecg"] for _, ex in read_rows(builder, split, sample_indices(builder, split, max_examples)))
    return norm_stats.compute(ecgs, leads, f"{source_name or builder.name}:{split}")


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
    for i, ex in _tfrecord_indexed(builder, split, 0, 1, keep=want.__contains__):
        yield i, ex
        if i >= indices[-1]:
            return


# ----------------------------------------------------------------------------
# Transforms (module-level classes: grain pickles them into worker processes).


class PrepareExample(grain.transforms.Map):
    """Selects leads and z-scores: ``ecg`` (2500, 12) -> (2500, N) float32."""

    def __init__(self, lead_idx: Sequence[int], stats: NormStats, keep_ids: bool = False):
        self.lead_idx = np.asarray(lead_idx)
        self.zscore = norm_stats.ZScore(stats)
        self.keep_ids = keep_ids

    def map(self, ex):
        out = {
            "ecg": self.zscore(np.asarray(ex["ecg"], np.float32)[:, self.lead_idx]),
            "label": np.float32(ex["label"]),
        }
        if self.keep_ids:
            out.update({k: _decode(ex[k]) for k in ID_FIELDS})
        if "index" in ex:  # evaluation: the example's position in its split
            out["index"] = np.int64(ex["index"])
        return out


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations, in z-scored units; 0 turns one off."""

    scale: float = 0.0  # amplitude scaling per lead, U(1 - s, 1 + s)
    noise: float = 0.0  # std of additive Gaussian noise
    wander: float = 0.0  # amplitude of a 0.05-0.5 Hz baseline sinusoid
    shift: int = 0  # circular time shift, up to +-shift samples
    fs: float = 250.0

    @property
    def active(self) -> bool:
        return bool(self.scale or self.noise or self.wander or self.shift)


class Augment(grain.transforms.RandomMap):
    """Random amplitude scaling, noise, baseline wander and time shift."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def random_map(self, ex, rng: np.random.Generator):
        x, c = ex["ecg"], self.cfg
        t, n = x.shape
        if c.shift:
            x = np.roll(x, int(rng.integers(-c.shift, c.shift + 1)), axis=0)
        if c.scale:
            x = x * rng.uniform(1 - c.scale, 1 + c.scale, size=(1, n)).astype(np.float32)
        if c.wander:
            f = rng.uniform(0.05, 0.5, size=(1, n))
            phase = rng.uniform(0, 2 * np.pi, size=(1, n))
            x = x + (c.wander * np.sin(2 * np.pi * f * np.arange(t)[:, None] / c.fs + phase)).astype(
                np.float32
            )
        if c.noise:
            x = x + rng.normal(0, c.noise, size=x.shape).astype(np.float32)
        return {**ex, "ecg": x.astype(np.float32)}


class _Rows(grain.transforms.Map):
    """Position ``p`` -> example ``indices[p]`` of ``source``, with its ``index``."""

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, indices

    def map(self, position):
        index = int(self.indices[int(position)])
        return {**self.source[index], "index": index}


def _blank(v):
    if isinstance(v, str):
        return ""
    return np.zeros_like(v)


# ----------------------------------------------------------------------------
# Datasets.


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What the pipelines need from an experiment config."""

    leads: tuple[str, ...]
    global_batch: int
    seed: int = 0
    workers: int = 0
    shuffle_window: int = 4096  # TFRecord only
    augment: AugmentConfig = AugmentConfig()


class HostBlocks(grain.MapDataset):
    """Process ``host``'s rows of consecutive global batches of ``parent``.

    Element ``i`` is ``parent[(i // b) * B + host * b + i % b]`` with
    ``B = global_batch``, ``b = B / processes``.
    """

    def __init__(self, parent: grain.MapDataset, global_batch: int, local_batch: int, host: int):
        super().__init__(parent)
        self._b, self._lb, self._host = global_batch, local_batch, host

    def __len__(self) -> int:
        return (len(self._parent) // self._b) * self._lb

    def _index(self, i: int) -> int:
        return (i // self._lb) * self._b + self._host * self._lb + i % self._lb

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return self._parent[self._index(index)]

    def __str__(self) -> str:
        return f"HostBlocks(global={self._b}, local={self._lb}, host={self._host})"


def _host() -> tuple[int, int]:
    import jax

    return jax.process_index(), jax.process_count()


def local_batch_size(global_batch: int) -> int:
    _, count = _host()
    if global_batch % count:
        raise ValueError(f"global batch {global_batch} is not divisible by {count} processes")
    return global_batch // count


def _finish(ds, workers: int):
    """To an IterDataset with optional multiprocess prefetch."""
    if isinstance(ds, grain.MapDataset):
        ds = ds.to_iter_dataset()
    if workers > 0:
        ds = ds.mp_prefetch(grain.multiprocessing.MultiprocessingOptions(num_workers=workers))
    return ds


def train_dataset(builder, split: str, cfg: PipelineConfig, stats: NormStats):
    """Endless, shuffled (reshuffled every epoch), batched training data of
    this host: dicts with ``ecg`` ``(local_batch, T, N)`` float32 and ``label``
    ``(local_batch,)`` float32. Iterators support ``get_state/set_state``."""
    index, _ = _host()
    local = local_batch_size(cfg.global_batch)
    ds = _shuffled_examples(builder, split, cfg).map(PrepareExample(leads_lib.lead_indices(cfg.leads), stats))
    if cfg.augment.active:  # before HostBlocks: random draws follow the global position
        ds = ds.random_map(Augment(cfg.augment), seed=cfg.seed + 1)
    if isinstance(ds, grain.MapDataset):  # random access: this host's rows of every global batch
        ds = HostBlocks(ds, cfg.global_batch, local, index)
    return _finish(ds.batch(local, drop_remainder=True), cfg.workers)


def eval_dataset(builder, split: str, cfg: PipelineConfig, stats: NormStats):
    """Every example of ``split`` exactly once, in order, as batches of
    ``local_batch`` with ``mask`` (1 real, 0 padding), ``index`` (position in
    the split, -1 for padding) and the id fields. All hosts yield the same
    number of batches (:func:`num_eval_batches`)."""
    prepare = PrepareExample(leads_lib.lead_indices(cfg.leads), stats, keep_ids=True)
    examples = _host_examples(builder, split)
    if isinstance(examples, grain.MapDataset):
        examples = _finish(examples.map(prepare), cfg.workers)
    else:
        examples = map(prepare.map, examples)
    local = local_batch_size(cfg.global_batch)
    return _PaddedBatches(examples, local, num_eval_batches(builder, split, cfg.global_batch))


# ----------------------------------------------------------------------------
# Sources: the only place where the two file formats differ.


def _shuffled_examples(builder, split: str, cfg: PipelineConfig):
    """Raw training examples, endlessly reshuffled: a MapDataset of the whole
    split for ArrayRecord (one global shuffle; hosts pick their rows later),
    or an IterDataset of this host's TFRecord shards with a shuffle window."""
    if is_array_record(builder):
        return grain.MapDataset.source(builder.as_data_source(split)).seed(cfg.seed).shuffle().repeat(None)
    index, count = _host()
    ds = _tfrecord_dataset(builder, split, index, count, repeat=True)
    return grain.experimental.WindowShuffleIterDataset(ds, window_size=cfg.shuffle_window, seed=cfg.seed)


def _host_examples(builder, split: str):
    """This host's examples of ``split`` in order, each with its ``index`` in
    the split: a MapDataset of rows ``process::processes`` (ArrayRecord) or an
    iterator over this host's TFRecord shards (every ``processes``-th file)."""
    index, count = _host()
    if is_array_record(builder):
        indices = np.arange(split_size(builder, split))[index::count]
        return grain.MapDataset.range(len(indices)).map(_Rows(builder.as_data_source(split), indices))
    return ({**ex, "index": i} for i, ex in _tfrecord_indexed(builder, split, index, count))


def num_eval_batches(builder, split: str, global_batch: int) -> int:
    """Batches every host yields for ``split`` (the largest host shard, rounded up)."""
    _, count = _host()
    if is_array_record(builder):
        per_host = math.ceil(split_size(builder, split) / count)
    else:
        per_host = max(sum(_tfrecord_shard_lengths(builder, split)[h::count]) for h in range(count))
    return max(1, math.ceil(per_host / (global_batch // count)))


# ----------------------------------------------------------------------------
# TFRecord builds.


def _tfrecord_files(builder, split: str) -> list[str]:
    info = builder.info.splits[split]
    return [str(f) for f in info.filepaths]


def _tfrecord_shard_lengths(builder, split: str) -> list[int]:
    return list(builder.info.splits[split].shard_lengths)


class _Deserialize(grain.transforms.Map):
    def __init__(self, features):
        self.features = features

    def map(self, raw: bytes):
        return self.features.deserialize_example_np(raw)


def _tfrecord_dataset(builder, split: str, index: int, count: int, repeat: bool = False):
    """Sequential IterDataset of this host's files (every count-th shard),
    endlessly cycling through them if ``repeat``."""
    files = _tfrecord_files(builder, split)[index::count]
    if not files:
        raise ValueError(
            f"host {index} of {count} has no TFRecord shard of {split!r}; "
            "rebuild with more shards or use ArrayRecord"
        )
    files = grain.MapDataset.source(files)
    per_file = (files.repeat(None) if repeat else files).map(grain.experimental.TFRecordIterDataset)
    ds = grain.experimental.InterleaveIterDataset(per_file, cycle_length=1)
    return ds.map(_Deserialize(builder.info.features))


def _tfrecord_indexed(builder, split: str, index: int, count: int, keep=None) -> Iterator[tuple[int, dict]]:
    """``(index in split, example)`` of this host's shards (every ``count``-th
    file), in order; with ``keep``, only the indices it accepts (the others
    are not deserialised)."""
    files = _tfrecord_files(builder, split)
    offsets = np.concatenate([[0], np.cumsum(_tfrecord_shard_lengths(builder, split))])
    features = builder.info.features
    for shard in range(index, len(files), count):
        for j, raw in enumerate(grain.experimental.TFRecordIterDataset(files[shard])):
            i = int(offsets[shard] + j)
            if keep is None or keep(i):
                yield i, features.deserialize_example_np(raw)


class _PaddedBatches:
    """Batches a finite iterable of prepared examples (each with its ``index``)
    into exactly ``n_batches`` batches of ``size``, adding ``mask`` (1 real,
    0 padding) and padding with blanks whose ``index`` is -1."""

    def __init__(self, examples, size: int, n_batches: int):
        self.examples, self.size, self.n_batches = examples, size, n_batches

    def __iter__(self):
        it = iter(self.examples)
        template = None
        for _ in range(self.n_batches):
            rows = []
            for _ in range(self.size):
                ex = next(it, None)
                if ex is None:
                    if template is None:
                        raise ValueError("this host's shard of the evaluation split is empty")
                    ex = {
                        **{k: _blank(v) for k, v in template.items()},
                        "mask": np.float32(0),
                        "index": np.int64(-1),
                    }
                else:
                    template = ex
                    ex = {**ex, "mask": np.float32(1)}
                rows.append(ex)
            yield {k: np.stack([r[k] for r in rows]) for k in rows[0]}
