"""Import of official PyTorch LeadMix-MST weights into :class:`LeadMixMST`.

The official ``state_dict`` (keys such as ``body.4.mha.in_proj_weight``, as
saved by the paper's PyTorch code) is mapped tensor by tensor onto this
port's parameter tree, transposing PyTorch's channels-first layouts:

* Conv1d ``(out, in/groups, k)`` -> ``(k, in/groups, out)``;
* Linear and 1x1 conv ``(out, in[, 1])`` -> ``(in, out)``;
* ``mha.in_proj_weight`` ``[Wq; Wk; Wv]`` -> three ``(C, heads, d)`` kernels,
  ``mha.out_proj.weight`` -> ``(heads, d, C)``.

The stem's input channels are in the lead order the checkpoint was trained
with (the paper's 12-lead order is chest first: V1..V6, I, II, III, aVL, aVR,
aVF). Pass ``leads`` and ``target_leads`` to permute them into another order
of the same leads. Only ``.pth`` files saved as plain tensors load: they are
read with ``torch.load(weights_only=True)``, which never unpickles arbitrary
objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.model.leadmix import LeadMixMST


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def infer_config(state_dict: Mapping[str, Any]) -> dict:
    """Reads ``num_leads``, ``base``, ``depth`` from an official state_dict's shapes."""
    try:
        out_c, num_leads, _ = np.shape(state_dict["stem.0.weight"])
    except KeyError:
        raise KeyError("state_dict has no 'stem.0.weight': not a LeadMix-MST checkpoint") from None
    depth = len({int(m.group(1)) for k in state_dict if (m := re.match(r"body\.(\d+)\.lead_embed$", k))})
    return {"num_leads": int(num_leads), "base": int(out_c), "depth": depth}


def _block_map(prefix: str, c: int, heads: int) -> dict[str, tuple[str, Any]]:
    """Maps one LeadMixBlock: our path -> (torch key, layout converter)."""
    d = c // heads
    conv = lambda w: w.transpose(2, 1, 0)
    lin = lambda w: w.T
    pw = lambda w: w[:, :, 0].T
    heads_in = lambda w: w.T.reshape(c, heads, d)
    rows = lambda i: lambda w: heads_in(w[i * c : (i + 1) * c])
    bias_rows = lambda i: lambda b: b[i * c : (i + 1) * c].reshape(heads, d)
    ident = lambda w: w
    t = prefix + "."
    return {
        "ms1_dw": (t + "ms1.0.weight", conv),
        "ms1_pw": (t + "ms1.1.weight", pw),
        "ms2_dw": (t + "ms2.0.weight", conv),
        "ms2_pw": (t + "ms2.1.weight", pw),
        "proj": (t + "proj.weight", pw),
        "gn/scale": (t + "gn.weight", ident),
        "gn/bias": (t + "gn.bias", ident),
        "se_fc1/kernel": (t + "se.fc.1.weight", pw),
        "se_fc1/bias": (t + "se.fc.1.bias", ident),
        "se_fc2/kernel": (t + "se.fc.3.weight", pw),
        "se_fc2/bias": (t + "se.fc.3.bias", ident),
        "lead_embed": (t + "lead_embed", ident),
        "qkv/kernel": (t + "qkv.weight", lin),
        "norm_tokens1/scale": (t + "norm_tokens1.weight", ident),
        "norm_tokens1/bias": (t + "norm_tokens1.bias", ident),
        "norm_tokens2/scale": (t + "norm_tokens2.weight", ident),
        "norm_tokens2/bias": (t + "norm_tokens2.bias", ident),
        "mha/query": (t + "mha.in_proj_weight", rows(0)),
        "mha/key": (t + "mha.in_proj_weight", rows(1)),
        "mha/value": (t + "mha.in_proj_weight", rows(2)),
        "mha/query_bias": (t + "mha.in_proj_bias", bias_rows(0)),
        "mha/key_bias": (t + "mha.in_proj_bias", bias_rows(1)),
        "mha/value_bias": (t + "mha.in_proj_bias", bias_rows(2)),
        "mha/out": (t + "mha.out_proj.weight", lambda w: w.T.reshape(heads, d, c)),
        "mha/out_bias": (t + "mha.out_proj.bias", ident),
        "ffn1/kernel": (t + "ffn.0.weight", lin),
        "ffn1/bias": (t + "ffn.0.bias", ident),
        "ffn2/kernel": (t + "ffn.3.weight", lin),
        "ffn2/bias": (t + "ffn.3.bias", ident),
    }


def _param_map(base: int, depth: int, heads: int) -> dict[str, tuple[str, Any]]:
    conv = lambda w: w.transpose(2, 1, 0)
    ident = lambda w: w
    m = {
        "stem/kernel": ("stem.0.weight", conv),
        "stem/norm/scale": ("stem.1.weight", ident),
        "stem/norm/bias": ("stem.1.bias", ident),
        "fc/kernel": ("fc.weight", lambda w: w.T),
        "fc/bias": ("fc.bias", ident),
    }
    c = base
    for i in range(depth):
        for path, src in _block_map(f"body.{4 * i}", c, heads).items():
            m[f"blocks/{i}/{path}"] = src
        m[f"downs/{i}/kernel"] = (f"body.{4 * i + 1}.weight", conv)
        m[f"downs/{i}/norm/scale"] = (f"body.{4 * i + 2}.weight", ident)
        m[f"downs/{i}/norm/bias"] = (f"body.{4 * i + 2}.bias", ident)
        c *= 2
    return m


def _lead_permutation(leads: Sequence[str] | str, target_leads: Sequence[str] | str) -> list[int]:
    src = leads_lib.parse_leads(leads)
    dst = leads_lib.parse_leads(target_leads)
    if sorted(src) != sorted(dst):
        raise ValueError(f"target_leads {dst} must be a reordering of the checkpoint's leads {src}")
    return [src.index(name) for name in dst]


def params_from_torch(
    state_dict: Mapping[str, Any],
    *,
    heads: int = 4,
    leads: Sequence[str] | str | None = None,
    target_leads: Sequence[str] | str | None = None,
) -> dict:
    """Converts an official LeadMix-MST ``state_dict`` into this port's weights.

    Args:
      state_dict: official key -> array (NumPy or torch tensor), PyTorch layouts.
      heads: attention heads of the checkpoint (4 in the paper; not inferable
        from shapes).
      leads: the lead order the checkpoint was trained with (names or a lead
        set name), needed only with ``target_leads``; checked against the
        stem's input width when given.
      target_leads: a reordering of ``leads``; the stem's input channels are
        permuted so the returned weights take input in this order.

    Returns:
      Nested dict of float32 NumPy arrays with the structure of
      ``nnx.state(LeadMixMST(...), nnx.Param)``; load with :func:`load_into`.

    Raises:
      KeyError: naming missing and unexpected keys.
      ValueError: naming every tensor whose shape does not match.
    """
    cfg = infer_config(state_dict)
    mapping = _param_map(cfg["base"], cfg["depth"], heads)
    expected = {src for src, _ in mapping.values()}
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise KeyError(
            f"state_dict does not match LeadMix-MST(num_leads={cfg['num_leads']}, "
            f"base={cfg['base']}, depth={cfg['depth']}): missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    if leads is not None and len(leads_lib.parse_leads(leads)) != cfg["num_leads"]:
        raise ValueError(f"leads {leads!r} do not match the checkpoint's {cfg['num_leads']} input leads")
    arrays = {k: _to_numpy(v) for k, v in state_dict.items()}
    reference = _reference_shapes(cfg, heads)
    flat, bad = {}, []
    for path, (src, convert) in mapping.items():
        value = convert(arrays[src])
        if value.shape != reference[path]:
            bad.append(f"{src} -> {path}: got {value.shape}, expected {reference[path]}")
        flat[path] = np.ascontiguousarray(value)
    if bad:
        raise ValueError("shape mismatch: " + "; ".join(bad))
    if target_leads is not None:
        if leads is None:
            raise ValueError("target_leads needs leads (the checkpoint's own lead order)")
        flat["stem/kernel"] = flat["stem/kernel"][:, _lead_permutation(leads, target_leads), :]
    return _unflatten(flat)


def _reference_shapes(cfg: dict, heads: int) -> dict[str, tuple]:
    model = nnx.eval_shape(
        lambda: LeadMixMST(
            cfg["num_leads"], base=cfg["base"], depth=cfg["depth"], heads=heads, rngs=nnx.Rngs(0)
        )
    )
    return {_path_str(p): tuple(v.shape) for p, v in _flat_params(model)}


def _flat_params(model: nnx.Module):
    state = nnx.state(model, nnx.Param)
    return jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))[0]


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(int(p) if p.isdigit() else p, {})
        node[int(leaf) if leaf.isdigit() else leaf] = value
    return tree


def load_into(model: LeadMixMST, params: dict) -> LeadMixMST:
    """Replaces ``model``'s parameters in place by ``params`` (from
    :func:`params_from_torch`) and returns it."""
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, params))
    nnx.update(model, state)
    return model


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads an official checkpoint: ``.pth``/``.pt`` (needs torch) or ``.npz``.

    ``.npz`` keys may carry a ``state_dict/`` prefix (as the parity fixtures
    do); other entries of the file are ignored. A ``.pth`` holding a dict with
    a ``'state_dict'`` or ``'model'`` entry is unwrapped.
    """
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path) as data:
            names = list(data.files)
            prefixed = [n for n in names if n.startswith("state_dict/")]
            if prefixed:
                return {n[len("state_dict/") :]: data[n] for n in prefixed}
            return {n: data[n] for n in names}
    if path.endswith((".pth", ".pt")):
        try:
            import torch
        except ImportError:
            raise ImportError(
                "Loading .pth checkpoints needs PyTorch: pip install 'leadmix-jax[torch]'"
            ) from None
        import pickle

        _check_torch_file(path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # weights_only refuses pickled code (a whole nn.Module, custom classes): never run it
            raise ValueError(
                f"{path} is not a plain PyTorch weights file: it holds pickled Python objects, which "
                "this project refuses to load (it loads weights-only: unpickling can run arbitrary code). Re-save the "
                "weights alone with torch.save(model.state_dict(), path)"
            ) from None
        except Exception as e:  # noqa: BLE001 - torch's own message for a damaged archive is long and internal
            raise ValueError(
                f"{path} is a damaged PyTorch file ({type(e).__name__}): download or save it again"
            ) from None
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
        if not isinstance(obj, Mapping):
            raise ValueError(f"{path} does not hold a state_dict (got {type(obj).__name__})")
        return {k: v.detach().cpu().numpy() for k, v in obj.items()}
    raise ValueError(f"Unsupported checkpoint file {path!r}: expected .pth, .pt or .npz")


def _check_torch_file(path: str) -> None:
    """``ValueError`` in one line unless ``path`` looks like a file ``torch.save``
    writes: a whole zip archive (the format since PyTorch 1.6) or a pickle
    stream (the legacy format)."""
    import os
    import zipfile

    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{path} is empty: not a PyTorch weights file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{path} is a truncated or damaged PyTorch file ({size} bytes): download or save it again"
            )
        return
    if not head.startswith(b"\x80"):
        raise ValueError(
            f"{path} is not a PyTorch weights file (neither the zip archive nor the pickle torch.save writes)"
        )


def model_from_torch(
    state_dict: Mapping[str, Any],
    *,
    heads: int = 4,
    dropout: float = 0.1,
    leads=None,
    target_leads=None,
    **model_kwargs,
) -> LeadMixMST:
    """Builds a :class:`LeadMixMST` sized from ``state_dict`` and loads it."""
    cfg = infer_config(state_dict)
    params = params_from_torch(state_dict, heads=heads, leads=leads, target_leads=target_leads)
    model = LeadMixMST(
        cfg["num_leads"],
        base=cfg["base"],
        depth=cfg["depth"],
        heads=heads,
        dropout=dropout,
        rngs=nnx.Rngs(0),
        **model_kwargs,
    )
    return load_into(model, params)
