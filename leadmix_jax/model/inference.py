"""The one inference path: the model's jitted eval step on the ``data`` mesh.

Training validation, evaluation, prediction and export verification all run
the model through :class:`Runner`: :meth:`Runner.run_batches` takes the
evaluation batches of a split (:func:`leadmix_jax.input.pipeline.eval_batches`:
every example exactly once, padding masked out) and :meth:`Runner.probabilities`
already z-scored windows.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from leadmix_jax import mesh as mesh_lib
from leadmix_jax.model.loss import bce_with_logits


def eval_step(params, batch: dict, *, graphdef) -> dict:
    """``ecg`` (B, T, N), ``label`` (B,) -> probabilities and per-example loss, (B,) each; no dropout.

    A lead-robust model's batch also carries ``lead_mask`` (B, 12)."""
    model = nnx.merge(graphdef, params)
    logits = model(batch["ecg"], batch["lead_mask"]) if "lead_mask" in batch else model(batch["ecg"])
    return {"prob": jax.nn.sigmoid(logits), "loss": bce_with_logits(logits, batch["label"])}


class Runner(mesh_lib.OnMesh):
    """The model's graph on a mesh with its jitted eval step.

    Args:
      graphdef: ``nnx.split(model, nnx.Param)[0]`` of the model.
      mesh: devices to split batches over (default: all devices, axis ``data``).
      lead_mask: ``(12,)`` presence mask given to a lead-robust model with
        every batch (None for the official model). Runners that differ only
        in the mask share one compiled step (the mask is an input).
    """

    def __init__(self, graphdef, mesh: Mesh | None = None, lead_mask: np.ndarray | None = None):
        self.graphdef = graphdef
        self.mesh = mesh if mesh is not None else mesh_lib.make_mesh()
        self.lead_mask = None if lead_mask is None else np.asarray(lead_mask, np.float32)

    def with_mask(self, lead_mask: np.ndarray) -> "Runner":
        """The same compiled step, another lead mask."""
        other = Runner(self.graphdef, self.mesh, lead_mask)
        if "step" in self.__dict__:
            other.__dict__["step"] = self.__dict__["step"]
        return other

    def _add_mask(self, batch: dict, rows: int) -> dict:
        if self.lead_mask is not None:
            batch["lead_mask"] = np.broadcast_to(self.lead_mask, (rows, self.lead_mask.shape[0])).copy()
        return batch

    @functools.cached_property
    def step(self):
        """Jitted :func:`eval_step` (compiled once per batch shape), shared by
        every runner of the same graph and mesh: evaluating many checkpoints
        of one architecture (a protocol's members) compiles it once."""
        return _jitted_eval_step(self.graphdef, self.mesh)

    def run_batches(self, params, batches: Iterable[dict], batch_size: int) -> dict[str, np.ndarray]:
        """Every example of a split's evaluation batches exactly once.

        Args:
          params: the model's parameters, replicated on the mesh.
          batches: this process's batches of ``batch_size / processes`` rows:
            ``ecg`` (b, T, N) z-scored, ``label`` (b,), ``mask`` (1 real, 0
            padding) and any id fields (``index``, ``record_id``, ...).
          batch_size: the global batch.

        Returns numpy arrays over the split's examples (padding removed), in
        the same order on every process: ``prob``, ``loss`` and every field of
        the batches but ``ecg``. With several processes only numeric fields
        are gathered (string ids stay per process; callers look them up by
        ``index``).
        """
        from jax.experimental import multihost_utils

        keys = ("ecg", "label", "lead_mask") if self.lead_mask is not None else ("ecg", "label")
        chunks: dict[str, list] = {}
        for local in batches:
            local = self._add_mask(dict(local), len(local["label"]))
            out = self.step(params, mesh_lib.global_batch(local, self.data_sharding, keys))
            rows = {k: np.asarray(v) for k, v in local.items() if k not in ("ecg", "lead_mask")}
            rows.update(local_rows(out, batch_size))
            for k, v in rows.items():
                chunks.setdefault(k, []).append(v)
        local_all = {k: np.concatenate(v) for k, v in chunks.items()}
        if jax.process_count() > 1:
            numeric = {k: v for k, v in local_all.items() if v.dtype.kind in "fiub"}
            gathered = multihost_utils.process_allgather(numeric)
            local_all = {k: np.asarray(v).reshape(-1) for k, v in gathered.items()}
        keep = local_all["mask"] > 0
        return {k: v[keep] for k, v in local_all.items() if k != "mask"}

    def probabilities(self, params, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Probabilities ``(B,)`` of z-scored windows ``x`` ``(B, T, N)``, in
        batches of ``batch_size`` (the last one padded: one compiled shape)."""
        out = []
        for chunk, n in padded_batches(x, batch_size, self.mesh.size):
            size = chunk.shape[0]
            batch = self._add_mask({"ecg": chunk, "label": np.zeros((size,), np.float32)}, size)
            prob = self.step(params, {k: jax.device_put(v, self.data_sharding) for k, v in batch.items()})
            out.append(np.asarray(prob["prob"])[:n])
        return np.concatenate(out) if out else np.zeros((0,), np.float32)


def padded_batches(x: np.ndarray, batch_size: int, multiple: int):
    """Yields ``(chunk, n)`` over the rows of ``x`` ``(B, ...)``: float32 batches
    of one size (``batch_size`` rounded down to a multiple of ``multiple``, the
    device count, and at least one multiple), the last zero-padded, with ``n``
    its real rows. One size means one compiled shape for every batch."""
    size = max(batch_size - batch_size % multiple, multiple)
    for i in range(0, x.shape[0], size):
        chunk = np.asarray(x[i : i + size], np.float32)
        n = chunk.shape[0]
        if n < size:
            chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), np.float32)])
        yield chunk, n


@functools.lru_cache(maxsize=16)
def _jitted_eval_step(graphdef, mesh: Mesh):
    fn = jax.tree_util.Partial(eval_step, graphdef=graphdef)
    return jax.jit(
        lambda p, b: fn(p, b),
        in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P(mesh_lib.AXIS))),
        out_shardings=NamedSharding(mesh, P()),
    )


def local_rows(out: dict, batch_size: int) -> dict:
    """This process's rows of a replicated global output."""
    local = batch_size // jax.process_count()
    start = jax.process_index() * local
    return {k: np.asarray(v)[start : start + local] for k, v in out.items()}
