"""grain input pipeline over the built TFDS datasets.

Every built example holds a 10-s window of all 12 leads in canonical order
(``ecg`` ``(2500, 12)``); this module selects the configured leads in the
configured order, z-scores each lead with statistics of the training split,
optionally augments, and batches with static shapes.

* ArrayRecord builds (the default) are read with random access
  (``as_data_source``): global shuffle, exact resumable iterator state.
* TFRecord builds are read sequentially with a shuffle window.

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
from collections.abc import Sequence

import grain
import numpy as np

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.input import built, norm_stats
from leadmix_jax.input.augment import AugmentConfig, NumpyAugment
from leadmix_jax.input.norm_stats import NormStats

# Fields kept from each example for evaluation reports (strings decoded).
ID_FIELDS = ("record_id", "patient_id", "window")


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
            out.update({k: built.decode(ex[k]) for k in ID_FIELDS})
        if "index" in ex:  # evaluation: the example's position in its split
            out["index"] = np.int64(ex["index"])
        return out


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
        ds = ds.random_map(NumpyAugment(cfg.augment), seed=cfg.seed + 1)
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


def eval_batches(builder, split: str, stats: NormStats, batch_size: int, workers: int = 0):
    """:func:`eval_dataset` of the leads of ``stats`` (in their order), global
    batch ``batch_size``: what :meth:`leadmix_jax.model.inference.Runner.run_batches` takes."""
    cfg = PipelineConfig(leads=tuple(stats.leads), global_batch=batch_size, workers=workers)
    return eval_dataset(builder, split, cfg, stats)


# ----------------------------------------------------------------------------
# Sources (the file formats differ in built.py).


def _shuffled_examples(builder, split: str, cfg: PipelineConfig):
    """Raw training examples, endlessly reshuffled: a MapDataset of the whole
    split for ArrayRecord (one global shuffle; hosts pick their rows later),
    or an IterDataset of this host's TFRecord shards with a shuffle window."""
    if built.is_array_record(builder):
        return grain.MapDataset.source(builder.as_data_source(split)).seed(cfg.seed).shuffle().repeat(None)
    index, count = _host()
    ds = built.tfrecord_dataset(builder, split, index, count, repeat=True)
    return grain.experimental.WindowShuffleIterDataset(ds, window_size=cfg.shuffle_window, seed=cfg.seed)


def _host_examples(builder, split: str):
    """This host's examples of ``split`` in order, each with its ``index`` in
    the split: a MapDataset of rows ``process::processes`` (ArrayRecord) or an
    iterator over this host's TFRecord shards (every ``processes``-th file)."""
    index, count = _host()
    if built.is_array_record(builder):
        indices = np.arange(built.split_size(builder, split))[index::count]
        return grain.MapDataset.range(len(indices)).map(_Rows(builder.as_data_source(split), indices))
    return ({**ex, "index": i} for i, ex in built.tfrecord_indexed(builder, split, index, count))


def num_eval_batches(builder, split: str, global_batch: int) -> int:
    """Batches every host yields for ``split`` (the largest host shard, rounded up)."""
    _, count = _host()
    if built.is_array_record(builder):
        per_host = math.ceil(built.split_size(builder, split) / count)
    else:
        per_host = max(sum(built.tfrecord_shard_lengths(builder, split)[h::count]) for h in range(count))
    return max(1, math.ceil(per_host / (global_batch // count)))


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
