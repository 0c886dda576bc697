"""Sanity checks of the attributions (:mod:`leadmix_jax.evaluate.attribution`).

Attribution maps can look plausible and mean nothing: some do not change
when the model's weights are randomized (Adebayo et al., 2018). So three
checks ship with them (``--mode=explain --config.explain.checks=true`` runs
them and writes ``explain/checks.json``):

* :func:`completeness`: Integrated Gradients sum to ``f(x) - f(x0)``.
* :func:`randomization`: the model's parameters are replaced by freshly
  initialised ones stage by stage from the head (``fc``, then the last
  downsampling and block, ... the stem: the cascade of Adebayo et al.); after
  each step, the Spearman rank correlation of ``|attribution|`` of the
  trained and the randomized model, per window, averaged. A method whose
  correlation stays high once every stage is random is flagged: its maps
  show the input, not what the model learnt.
* :func:`pointing`: on synthetic MI windows, where the simulator knows the
  territory and the beats, the share of ``|attribution|`` on the
  territory's leads around each beat's QRS, ST segment and T wave, against
  that region's share of the window (chance).
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import numpy as np
from flax import nnx
from scipy import stats as sps_stats

from leadmix_jax.data import leads as leads_lib
from leadmix_jax.data import preprocessing
from leadmix_jax.evaluate.attribution import METHODS, Explainer, baseline

#: Leads that show an infarct of each territory (the simulator's injury vectors).
TERRITORY_LEADS = {
    "inferior": ("II", "III", "aVF"),
    "anterior": ("V1", "V2", "V3", "V4"),
    "lateral": ("I", "aVL", "V5", "V6"),
    "anterolateral": ("I", "aVL", "V3", "V4", "V5", "V6"),
    "inferolateral": ("II", "III", "aVF", "V5", "V6"),
}
#: Around each R peak, the part of the beat that carries MI signs: Q wave, ST, T.
BEAT_SPAN_S = (-0.06, 0.35)
#: A method whose rank correlation stays above this with every stage random is flagged.
RANDOMIZATION_FLAG = 0.5


def completeness(explainer: Explainer, x: np.ndarray) -> dict:
    """How far the IG sums are from ``f(x) - f(x0)`` on windows ``x`` (z-scored)."""
    attr = explainer.attribute("integrated_gradients", x)
    x0 = np.broadcast_to(np.asarray(baseline(x.shape[1:], explainer.settings.seed)), x.shape)
    delta = explainer.logits(x) - explainer.logits(x0)
    err = np.abs(attr.sum(axis=(1, 2)) - delta)
    return {
        "windows": int(len(x)),
        "relative_error_total": float(err.sum() / np.abs(delta).sum()),
        "relative_error_median": float(np.median(err / np.abs(delta))),
        "absolute_error_max": float(err.max()),
        "steps": explainer.settings.ig_steps,
    }


def _stage_prefixes(params) -> list[tuple]:
    """Parameter groups from the head down: ``fc``, ``downs[i]``, ``blocks[i]``, ..., ``stem``
    (under ``core`` for the lead-robust model)."""
    top = tuple(params.keys())
    root = ("core",) if top == ("core",) else ()
    node = params["core"] if root else params
    depth = len(node["blocks"])
    order = [("fc",)]
    for i in reversed(range(depth)):
        order += [("downs", i), ("blocks", i)]
    return [root + p for p in order + [("stem",)]]


def _randomized(params, fresh, prefixes) -> object:
    """``params`` with the groups under ``prefixes`` taken from ``fresh``."""

    def pick(path, a, b):
        keys = tuple(getattr(k, "key", getattr(k, "idx", k)) for k in path)
        return b if any(keys[: len(p)] == p for p in prefixes) else a

    return jax.tree_util.tree_map_with_path(pick, params, fresh)


def _spearman_per_window(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over windows of the rank correlation of ``|a|`` and ``|b|`` (a
    constant map, e.g. an all-zero Grad-CAM, has none and is left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps_stats.ConstantInputWarning)
        rhos = [sps_stats.spearmanr(np.abs(u).ravel(), np.abs(v).ravel())[0] for u, v in zip(a, b)]
    return float(np.nanmean(rhos)) if np.isfinite(rhos).any() else float("nan")


def randomization(explainer: Explainer, x: np.ndarray, fresh_params, methods=METHODS) -> dict:
    """The cascading model-randomization test on windows ``x``.

    ``fresh_params``: parameters of a newly initialised model of the same
    architecture (e.g. ``nnx.state(build_model(..., seed=...), nnx.Param)``).
    Returns, per method, the mean rank correlation after each cascade step
    and whether the method is flagged.
    """
    prefixes = _stage_prefixes(explainer.params)
    trained = {m: explainer.attribute(m, x) for m in methods}
    out = {m: {"steps": [], "rank_correlation": []} for m in methods}
    for k in range(1, len(prefixes) + 1):
        params = _randomized(explainer.params, fresh_params, prefixes[:k])
        other = dataclasses.replace(explainer, params=params)
        for m in methods:
            out[m]["steps"].append("/".join(str(p) for p in prefixes[k - 1]))
            out[m]["rank_correlation"].append(_spearman_per_window(trained[m], other.attribute(m, x)))
    for m in methods:
        out[m]["flagged"] = bool(out[m]["rank_correlation"][-1] > RANDOMIZATION_FLAG)
    return out


def randomized(explainer: Explainer, fresh_params) -> Explainer:
    """The explainer of the fully randomized model (every stage's parameters fresh)."""
    return dataclasses.replace(
        explainer, params=_randomized(explainer.params, fresh_params, _stage_prefixes(explainer.params))
    )


def fresh_parameters(model) -> object:
    """Parameters of a newly initialised model like ``model`` (a RestoredModel), replicated like its own."""
    from leadmix_jax.model import variants

    n = 12 if model.is_lead_robust else len(model.leads)
    fresh = nnx.state(variants.build_model(model.meta["model"], n, seed=1234), nnx.Param)
    return jax.device_put(fresh, jax.tree.map(lambda a: a.sharding, model.params))


@dataclasses.dataclass
class SyntheticMI:
    """Synthetic MI windows with the truth: ``windows (B, 2500, 12)`` in mV,
    canonical leads, and a ``region (B, 2500, 12)`` bool mask of the
    territory's leads around each beat."""

    windows: np.ndarray
    region: np.ndarray
    territories: list[str]


def synthetic_mi(n: int, seed: int = 0, territories=("inferior", "anterior", "lateral")) -> SyntheticMI:
    """``n`` acute-MI windows of the simulator, through the preprocessing chain."""
    from leadmix_jax.synthetic import synthesize

    rng = np.random.default_rng(seed)
    windows, regions, names = [], [], []
    while len(windows) < n:
        territory = territories[len(windows) % len(territories)]
        sig, info = synthesize(rng, 500, 10.0, True, territory, stage="acute", noise=0.5)
        pre = preprocessing.preprocess_record(sig, 500.0)
        if not pre.num_kept:
            continue
        region = np.zeros((preprocessing.WINDOW_SAMPLES, leads_lib.NUM_LEADS), bool)
        t = np.arange(preprocessing.WINDOW_SAMPLES) / preprocessing.TARGET_FS
        near = np.zeros_like(t, bool)
        for r in info.beats:
            near |= (t >= r + BEAT_SPAN_S[0]) & (t <= r + BEAT_SPAN_S[1])
        region[:, list(leads_lib.lead_indices(",".join(TERRITORY_LEADS[territory])))] = near[:, None]
        windows.append(pre.windows[0])
        regions.append(region)
        names.append(territory)
    return SyntheticMI(np.stack(windows), np.stack(regions), names)


def pointing(
    explainer: Explainer, data: SyntheticMI, zscore, input_leads, methods=METHODS, present=None
) -> dict:
    """Per method: the share of ``|attribution|`` inside the truth region and
    the region's share of the window (chance), over the model's input leads.

    ``zscore``: the model's z-scoring of ``(B, T, N)`` windows of ``input_leads``;
    ``present``: the leads a lead-robust model sees (the rest are masked and
    left out of shares and chance)."""
    idx = list(leads_lib.lead_indices(list(input_leads)))
    x = zscore(data.windows[..., idx])
    cols = [list(input_leads).index(lead) for lead in (present or input_leads)]
    region = data.region[..., idx][..., cols]
    chance = float(region.mean())
    out = {"chance": chance, "windows": int(len(x)), "territories": sorted(set(data.territories))}
    for m in methods:
        mass = np.abs(explainer.attribute(m, x))[..., cols]
        share = float(mass[region].sum() / mass.sum())
        out[m] = {"share": share, "ratio_to_chance": share / chance if chance else float("nan")}
    return out
