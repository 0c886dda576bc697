"""Synthetic 12-lead ECGs and whole synthetic databases in the original layouts.

Two parts:

* :func:`synth_record` / :func:`synthesize`: a fast, vectorised generator of
  realistic 12-lead ECGs (mV, canonical lead order ``I, II, III, aVR, aVL,
  aVF, V1 .. V6``). The heart is modelled as a moving dipole: every wave (P,
  septal q/r, R, S, T, ST segment, pathological Q) is a Gaussian in time on a
  per-beat clock times a 3-D vector; leads are projections of that dipole.
  Leads I, II and V1..V6 are projected (and get their own noise), the other
  limb leads are derived from I and II (``III = II - I``, ``aVR = -(I+II)/2``,
  ``aVL = I - II/2``, ``aVF = II - I/2``), so Einthoven's identities hold
  exactly. Myocardial infarction is an injury vector pointing at the infarcted
  territory: ST elevation along it, a pathological Q wave and R loss away from
  it, T inversion; reciprocal leads see the mirror image. Severities, stages,
  heart axis, rate, amplitudes, noise and normal variants are drawn per record
  so that the task is learnable but not trivial.

* :func:`write_ptb`, :func:`write_ptbxl`, :func:`write_sph` (and
  :func:`write_all`): deterministic synthetic databases in exactly the layouts
  the real ones are distributed in (``../spec/data.md`` section 1), so the
  dataset builders can be tested end to end without the real data. Each
  returns a summary with the per-record labels under the paper's label rule
  (``label``) and under the field's alternative rule (``label_alt``), see
  ``../spec/data.md`` section 4.

Everything is NumPy; no per-sample Python loops.
"""

from __future__ import annotations

import csv
import datetime as _dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leadmix_jax.leads import CANONICAL_LEADS

__all__ = [
    "TERRITORIES", "CONDITIONS", "SynthInfo", "synthesize", "synth_record",
    "write_wfdb", "write_ptb", "write_ptbxl", "write_sph", "write_all",
    "PTBXL_COLUMNS", "SCP_COLUMNS", "SPH_COLUMNS",
]

# ---------------------------------------------------------------------------
# Dipole geometry. Body axes: x = patient's left, y = inferior (feet),
# z = anterior. Frontal-plane lead angles follow the hexaxial system.
# ---------------------------------------------------------------------------


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


_DIR_I = np.array([1.0, 0.0, 0.0])
_DIR_II = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])
# Precordial leads in the horizontal plane, angle from +x towards +z.
_V_ANGLES = np.deg2rad([115.0, 95.0, 75.0, 55.0, 30.0, 0.0])
_DIR_V = np.stack([np.cos(_V_ANGLES), np.zeros(6), np.sin(_V_ANGLES)], axis=1)
# Chest electrodes sit closer to the heart: larger amplitudes (V2-V4 largest).
_V_GAIN = np.array([1.25, 1.7, 1.8, 1.6, 1.3, 1.05])

#: Injury-vector directions (anatomical, before the per-record axis rotation).
TERRITORIES: dict[str, tuple[float, float, float]] = {
    "inferior": (0.05, 1.0, 0.0),            # II, III, aVF (aVL, I reciprocal)
    "anterior": (-0.25, 0.0, 1.0),           # V1-V4
    "lateral": (1.0, -0.35, 0.25),           # I, aVL, V5, V6
    "anterolateral": (0.55, -0.2, 0.85),     # V3-V6, I, aVL
    "inferolateral": (0.6, 0.8, 0.05),       # II, III, aVF, V5, V6
    "posterior": (0.1, 0.15, -1.0),          # mirror image in V1-V3
}
_MAIN_TERRITORIES = ("inferior", "anterior", "lateral")
#: Non-MI conditions the generator can add (``condition=``).
CONDITIONS = ("lvh", "ndt", "bbb", "avb", "af")
_STAGES = ("acute", "recent", "old")

# Wave table: (name, default offset from the R peak in s, width in s).
# T waves are placed per beat (QT follows the RR interval).
_W_P, _W_P2, _W_SEPT, _W_Q, _W_R, _W_S, _W_R2, _W_T1, _W_T2 = range(9)
_N_GAUSS = 9


@dataclass
class SynthInfo:
    """What the generator drew for one record (for tests and manifests)."""

    fs: float
    n_samples: int
    beats: np.ndarray            # R-peak times in s (only those inside the record)
    hr: float                    # mean heart rate, bpm
    mi: bool
    territory: str | None = None
    stage: str | None = None     # acute / recent / old (MI only)
    st_mv: float = 0.0           # ST elevation along the injury vector, mV
    q_mv: float = 0.0            # pathological-Q vector magnitude, mV
    t_inv_mv: float = 0.0        # T-vector shift away from the territory, mV
    condition: str | None = None
    variant: str | None = None   # normal variant, e.g. 't_flat', 'early_repol'
    vcg: np.ndarray | None = field(default=None, repr=False)  # (T, 3) dipole, mV


def _as_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _rotation(rng: np.random.Generator, frontal_sd_deg: float, horiz_sd_deg: float,
              frontal_mean_deg: float = 0.0) -> np.ndarray:
    """Random rotation of the heart: about z (frontal axis) and about y."""
    a = np.deg2rad(rng.normal(frontal_mean_deg, frontal_sd_deg))
    b = np.deg2rad(rng.normal(0.0, horiz_sd_deg))
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0, 0, 1.0]])
    ry = np.array([[np.cos(b), 0.0, -np.sin(b)], [0, 1.0, 0], [np.sin(b), 0.0, np.cos(b)]])
    return ry @ rz


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def synthesize(rng, fs: float, seconds: float, mi: bool, territory: str | None = None, *,
               condition: str | None = None, stage: str | None = None,
               hr: float | None = None, noise: float = 1.0,
               severity: float | None = None) -> tuple[np.ndarray, SynthInfo]:
    """One synthetic 12-lead ECG and what was drawn for it.

    Args:
      rng: a ``numpy.random.Generator`` or a seed.
      fs: sampling rate in Hz.
      seconds: duration in s (``round(seconds * fs)`` samples).
      mi: add a myocardial infarction.
      territory: one of :data:`TERRITORIES`; ``None`` draws inferior, anterior
        or lateral at random (MI only).
      condition: optional non-MI abnormality from :data:`CONDITIONS`
        (``lvh``: hypertrophy with strain, ``ndt``: non-specific ST-T changes,
        ``bbb``: wide QRS with terminal R', ``avb``: long PR, ``af``: atrial
        fibrillation: irregular RR, no P, fibrillatory waves).
      stage: MI stage ``acute`` / ``recent`` / ``old``; ``None`` draws one.
      hr: mean heart rate in bpm; ``None`` draws 55-100 bpm.
      noise: scale of all noise (baseline wander, powerline, white); 0 = clean.
      severity: MI severity multiplier in (0, 1]; ``None`` draws one (about a
        quarter of the MI records are mild).

    Returns:
      ``(signal, info)``: float32 array ``(T, 12)`` in mV, canonical lead
      order, and a :class:`SynthInfo`.
    """
    rng = _as_rng(rng)
    n = int(round(seconds * fs))
    if n <= 0:
        raise ValueError(f"seconds * fs must be positive, got {seconds} * {fs}")
    if condition is not None and condition not in CONDITIONS:
        raise ValueError(f"Unknown condition {condition!r}; valid: {', '.join(CONDITIONS)}")
    if mi:
        territory = territory or str(rng.choice(_MAIN_TERRITORIES, p=[0.4, 0.4, 0.2]))
        if territory not in TERRITORIES:
            raise ValueError(f"Unknown territory {territory!r}; valid: {', '.join(TERRITORIES)}")
    else:
        territory = None

    # ---- rhythm: RR intervals with respiratory sinus arrhythmia + jitter ----
    hr = float(rng.uniform(55.0, 100.0)) if hr is None else float(hr)
    rr0 = 60.0 / hr
    f_resp = rng.uniform(0.15, 0.35)
    rsa = rng.uniform(0.01, 0.06)
    jitter = rng.uniform(0.005, 0.025)
    nb = int(np.ceil((seconds + 2.0) / (rr0 * 0.55))) + 4
    k = np.arange(nb)
    if condition == "af":
        rr = rr0 * rng.uniform(0.55, 1.45, nb)
    else:
        rr = rr0 * (1.0 + rsa * np.sin(2 * np.pi * f_resp * k * rr0 + rng.uniform(0, 2 * np.pi))
                    + 0.02 * np.sin(2 * np.pi * 0.07 * k * rr0 + rng.uniform(0, 2 * np.pi)))
        rr *= 1.0 + jitter * rng.standard_normal(nb)
    rr = np.clip(rr, 0.33, 2.0)
    beats = -rng.uniform(0.2, 1.0) * rr[0] + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    rr_prev = np.concatenate([[rr0], rr[:-1]])        # RR preceding each beat (QT)
    sq = np.sqrt(rr_prev)

    # ---- per-record morphology ----
    rot = _rotation(rng, 18.0, 12.0, frontal_mean_deg=rng.normal(0.0, 6.0))
    gain = rng.uniform(0.7, 1.3)                       # body habitus
    pr = rng.uniform(0.14, 0.19) if condition != "avb" else rng.uniform(0.22, 0.32)
    qt_k = rng.uniform(0.25, 0.29)                     # T peak at qt_k * sqrt(RR)
    qrs_w = rng.uniform(0.9, 1.15)
    amp = {
        "p": rng.uniform(0.08, 0.18) * (0.0 if condition == "af" else 1.0),
        "sept": rng.uniform(0.12, 0.35),
        "r": rng.uniform(1.1, 1.9),
        "s": rng.uniform(0.35, 0.8),
        "t": rng.uniform(0.25, 0.45),
    }
    vec = {
        "p": _unit([0.55, 0.8, 0.1] + rng.normal(0, 0.08, 3)),
        "p2": _unit([0.3, 0.3, -0.85]),
        "sept": _unit([-0.35, 0.15, 0.9] + rng.normal(0, 0.1, 3)),
        "r": _unit([0.7, 0.55, -0.35] + rng.normal(0, 0.08, 3)),
        "s": _unit([-0.35, -0.45, -0.8] + rng.normal(0, 0.1, 3)),
        "t": _unit([0.6, 0.55, 0.45] + rng.normal(0, 0.08, 3)),
    }
    V = np.zeros((_N_GAUSS + 1, 3))    # wave vectors (mV); last row: ST plateau
    V[_W_P] = amp["p"] * vec["p"]
    V[_W_P2] = 0.35 * amp["p"] * vec["p2"]
    V[_W_SEPT] = amp["sept"] * vec["sept"]
    V[_W_R] = amp["r"] * vec["r"]
    V[_W_S] = amp["s"] * vec["s"]
    t_vec = amp["t"] * vec["t"]
    st_vec = np.zeros(3)
    widths = np.ones(_N_GAUSS)
    variant = None
    if not mi and condition is None:
        u = rng.random()
        if u < 0.12:
            variant = "t_flat"                  # nonspecific T flattening
            t_vec = t_vec * rng.uniform(0.25, 0.6)
        elif u < 0.22:
            variant = "early_repol"             # benign ST elevation V2-V5
            st_vec = rng.uniform(0.04, 0.12) * _unit([0.35, 0.2, 0.9])
        elif u < 0.30:
            variant = "juvenile_t"              # inverted T in V1-V2
            t_vec = t_vec - 0.25 * amp["t"] * _unit([-0.3, 0.0, 1.0])
        elif u < 0.36:
            variant = "low_voltage"
            gain *= 0.5
        elif u < 0.42:
            variant = "deep_q_iii"              # positional q in III/aVF
            V[_W_SEPT] = V[_W_SEPT] + rng.uniform(0.1, 0.25) * _unit([0.3, -1.0, 0.2])

    if condition == "lvh":
        V[_W_R] *= rng.uniform(1.5, 2.0)
        V[_W_S] *= rng.uniform(1.5, 2.0)
        lat = _unit(TERRITORIES["lateral"])
        t_vec = t_vec - rng.uniform(0.2, 0.45) * lat
        st_vec = st_vec - rng.uniform(0.02, 0.08) * lat
    elif condition == "ndt":
        t_vec = t_vec * rng.uniform(0.2, 0.7) + rng.uniform(0.1, 0.25) * _unit(rng.normal(size=3))
        st_vec = st_vec + rng.uniform(0.0, 0.06) * _unit(rng.normal(size=3))
    elif condition == "bbb":
        widths[[_W_R, _W_S]] = rng.uniform(1.5, 2.0)
        V[_W_R2] = rng.uniform(0.3, 0.7) * _unit([-0.5, 0.0, 0.85])
        t_vec = t_vec - 0.2 * _unit([-0.3, 0.0, 1.0])

    stage_ = st = q = t_inv = 0.0
    if mi:
        d = _unit(np.asarray(TERRITORIES[territory]) + rng.normal(0, 0.12, 3))
        stage_ = stage or str(rng.choice(_STAGES, p=[0.3, 0.35, 0.35]))
        if stage_ == "acute":
            st, q, t_inv, rloss = (rng.uniform(0.08, 0.35), rng.uniform(0.0, 0.3),
                                   rng.uniform(-0.25, 0.0), rng.uniform(0.0, 0.3))
        elif stage_ == "recent":
            st, q, t_inv, rloss = (rng.uniform(0.03, 0.15), rng.uniform(0.1, 0.5),
                                   rng.uniform(0.25, 0.6), rng.uniform(0.2, 0.6))
        elif stage_ == "old":
            st, q, t_inv, rloss = (rng.uniform(0.0, 0.06), rng.uniform(0.15, 0.5),
                                   rng.uniform(0.0, 0.3), rng.uniform(0.2, 0.7))
        else:
            raise ValueError(f"Unknown stage {stage_!r}; valid: {', '.join(_STAGES)}")
        sev = (rng.uniform(0.3, 0.7) if rng.random() < 0.25 else 1.0) if severity is None \
            else float(severity)
        st, q, t_inv, rloss = st * sev, q * sev, t_inv * sev, rloss * sev
        st_vec = st_vec + st * d
        V[_W_Q] = -q * d
        proj = V[_W_R] @ d
        if proj > 0:
            V[_W_R] = V[_W_R] - rloss * proj * d
        t_vec = t_vec - t_inv * d
    V[_W_T1] = 0.6 * t_vec
    V[_W_T2] = 0.55 * t_vec
    V[_N_GAUSS] = st_vec
    V = V @ rot.T * gain

    # Per-beat timing. Waves P .. R' sit at fixed offsets from the R peak; the
    # T wave (two Gaussians: slow rise, faster fall) and the end of the ST
    # plateau follow the preceding RR interval (QT ~ sqrt(RR)).
    f32 = np.float32
    mu_c = np.array([-pr, -pr + 0.035, -0.028, -0.02, 0.0, 0.027 * qrs_w, 0.065], f32)
    sg_c = np.array([0.022, 0.02, 0.009, 0.013, 0.011 * qrs_w, 0.011 * qrs_w, 0.013])
    isg_c = (1.0 / (sg_c * widths[:_W_T1])).astype(f32)
    t_peak = (qt_k * sq).astype(f32)
    sq = sq.astype(f32)
    # Beat-to-beat amplitude: respiration modulates the QRS; small random scatter.
    qrs_mod = (1.0 + 0.05 * np.sin(2 * np.pi * f_resp * beats)).astype(f32)
    scatter = (1.0 + 0.02 * rng.standard_normal(nb)).astype(f32)

    # ---- evaluate every wave of the previous and next beat at every sample ----
    t = np.arange(n) / fs
    idx = np.clip(np.searchsorted(beats, t, side="right") - 1, 0, nb - 2)
    G = np.zeros((n, _N_GAUSS + 1), f32)
    qrs = slice(_W_SEPT, _W_R2 + 1)
    for j in (idx, idx + 1):
        dt = (t - beats[j]).astype(f32)
        z = (dt[:, None] - mu_c) * isg_c
        g = np.exp(-0.5 * z * z)
        g[:, qrs] *= qrs_mod[j][:, None]
        tp, sqj = t_peak[j], sq[j]
        zt = np.stack([(dt - tp + 0.03) / (0.048 * sqj), (dt - tp - 0.01) / (0.03 * sqj)], 1)
        sc = scatter[j][:, None]
        G[:, :_W_T1] += g * sc
        G[:, _W_T1:_N_GAUSS] += np.exp(-0.5 * zt * zt) * sc
        G[:, _N_GAUSS] += _sigmoid((dt - 0.045) / 0.006) * _sigmoid((tp + 0.02 - dt) / 0.03)
    vcg = (G @ V.astype(f32)).astype(np.float64)               # (T, 3) mV
    if condition == "af":
        f_af = rng.uniform(4.0, 7.0)
        vcg += (rng.uniform(0.02, 0.07) * np.sin(2 * np.pi * f_af * t + 0.8 * np.sin(
            2 * np.pi * 0.3 * t))[:, None] * _unit([0.2, 0.4, 0.9]))

    # Independent channels: I, II, V1..V6 (electrode noise is per channel).
    dirs = np.concatenate([_DIR_I[None], _DIR_II[None], _DIR_V], axis=0)   # (8, 3)
    chan_gain = np.concatenate([[1.0, 1.0], _V_GAIN * rng.uniform(0.85, 1.15, 6)])
    base = (vcg @ dirs.T) * chan_gain                                       # (T, 8)
    if noise > 0:
        wander_level = rng.uniform(0.02, 0.25) * noise
        # Shared low-frequency sinusoids (3 in 0.1-0.4 Hz + respiration), mixed
        # into each channel with its own weights: channels wander differently.
        f_w = np.append(rng.uniform(0.1, 0.4, 3), f_resp)
        arg = 2 * np.pi * f_w * t[:, None] + rng.uniform(0, 2 * np.pi, 4)
        arg = arg.astype(f32)
        basis = np.concatenate([np.sin(arg), np.cos(arg)], axis=1)          # (T, 8)
        mix = rng.normal(0.0, 1.0, (8, 8)) * np.array([1, 1, 1, 0.6] * 2)[:, None]
        wander = basis @ (mix * (wander_level / 2.5))
        mains = 50.0 if rng.random() < 0.6 else 60.0
        pl_amp = rng.uniform(0.0, 0.02) * noise * rng.uniform(0.3, 1.0, 8)
        pl = pl_amp * np.sin(2 * np.pi * mains * t + rng.uniform(0, 2 * np.pi))[:, None]
        white = rng.uniform(0.004, 0.025) * noise * rng.standard_normal((n, 8), dtype=f32)
        base = base + wander + pl + white
    lead_i, lead_ii = base[:, 0], base[:, 1]
    out = np.empty((n, len(CANONICAL_LEADS)), dtype=np.float32)   # I II III aVR aVL aVF V1-V6
    out[:, 0] = lead_i
    out[:, 1] = lead_ii
    out[:, 2] = lead_ii - lead_i
    out[:, 3] = -(lead_i + lead_ii) / 2
    out[:, 4] = lead_i - lead_ii / 2
    out[:, 5] = lead_ii - lead_i / 2
    out[:, 6:] = base[:, 2:]
    inside = beats[(beats >= 0) & (beats < n / fs)]
    info = SynthInfo(fs=float(fs), n_samples=n, beats=inside, hr=hr, mi=bool(mi),
                     territory=territory, stage=stage_ if mi else None,
                     st_mv=float(st), q_mv=float(q), t_inv_mv=float(t_inv),
                     condition=condition, variant=variant, vcg=vcg.astype(np.float32))
    return out, info


def synth_record(rng, fs: float, seconds: float, mi: bool, territory: str | None = None,
                 **kwargs) -> np.ndarray:
    """A synthetic 12-lead ECG, float32 ``(time, 12)`` in mV, canonical lead order
    (:data:`leadmix_jax.leads.CANONICAL_LEADS`). Keyword options as in
    :func:`synthesize`."""
    return synthesize(rng, fs, seconds, mi, territory, **kwargs)[0]


# ---------------------------------------------------------------------------
# WFDB writing (format 16), with full control over the header text.
# ---------------------------------------------------------------------------


def _digitize(sig_mv: np.ndarray, gain: float) -> np.ndarray:
    d = np.rint(np.asarray(sig_mv, dtype=np.float64) * gain)
    return np.clip(d, -32767, 32767).astype("<i2")     # -32768 is WFDB's "invalid"


def _checksum(d: np.ndarray) -> np.ndarray:
    return d.astype(np.int64).sum(axis=0) & 0xFFFF


def write_wfdb(directory, record: str, files: list[tuple[str, np.ndarray, list[str]]],
               fs: float, gain_field: str, gain: float, *, comments: list[str] | None = None,
               newline: str = "\n", signed_checksum: bool = False, zero_fields: bool = False,
               write_files: set[str] | None = None) -> None:
    """Writes one WFDB record in format 16.

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
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = files[0][1].shape[0]
    lines = [f"{record} {sum(len(f[2]) for f in files)} {fs:g} {n}"]
    for fname, sig, names in files:
        d = _digitize(sig, gain)
        if write_files is None or fname in write_files:
            d.tofile(directory / fname)
        cks = _checksum(d)
        if signed_checksum:
            cks = (cks + 32768) % 65536 - 32768
        for c, name in enumerate(names):
            init, ck = (0, 0) if zero_fields else (int(d[0, c]), int(cks[c]))
            lines.append(f"{fname} 16 {gain_field} 16 0 {init} {ck} 0 {name}")
    if comments is not None:
        lines.append("")
        lines += [f"# {c}" if c else "" for c in comments]
    with open(directory / f"{record}.hea", "w", newline="", encoding="ascii") as fh:
        fh.write(newline.join(lines) + newline)


def _rec_rng(seed: int, db: int, i: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), db, int(i) + 1])   # i = -1: the db-level stream


def _choice(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _label_counts(records: list[dict], key: str) -> dict[str, int]:
    c = Counter(r[key] for r in records)
    return {k: c.get(k, 0) for k in ("mi", "normal", "other")}


# ---------------------------------------------------------------------------
# PTB Diagnostic ECG Database (PhysioNet ptbdb 1.0.0)
# ---------------------------------------------------------------------------

PTB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
PTB_FRANK = ("vx", "vy", "vz")
_PTB_LOCALISATION = {
    "inferior": ("inferior",),
    "anterior": ("anterior", "antero-septal"),
    "lateral": ("lateral",),
    "anterolateral": ("antero-lateral",),
    "inferolateral": ("infero-lateral", "infero-postero-lateral"),
    "posterior": ("posterior",),
}
_PTB_OTHER = (
    ("Cardiomyopathy", "ndt"), ("Cardiomyopathy", "lvh"), ("Bundle branch block", "bbb"),
    ("Dysrhythmia", "af"), ("Myocardial hypertrophy", "lvh"),
    ("Valvular heart disease", "lvh"), ("Myocarditis", "ndt"),
    ("Heart failure (NYHA 3)", "ndt"),
)
_PTB_ADDITIONAL = ("Arterial hypertension", "Diabetes mellitus", "Hyperlipoproteinemia",
                   "Adipositas", "Renal insufficiency", "Gout", "no")
_PTB_DRUGS = ("ASA", "Nitrate", "Beta blocker", "Ca-antagonist", "Diuretics", "ACE inhibitor",
              "Heparin", "Digitalis", "Marcumar")


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _ptb_day(d: _dt.date) -> str:
    """``29-Sep-90`` (locale-independent)."""
    return f"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year % 100:02d}"


def _ptb_date(rng, start=(1990, 1, 1), days=3 * 365) -> _dt.date:
    return _dt.date(*start) + _dt.timedelta(days=int(rng.integers(days)))


def _ptb_comments(rng, kind: str, reason: str, territory: str | None, age: int, sex: str,
                  ecg_date: _dt.date, extra_mi_mention: bool) -> list[str]:
    """Header comments in PTB's layout (sections separated by empty lines)."""
    na = "n/a"
    is_mi = kind == "mi"
    loc = _choice(rng, _PTB_LOCALISATION[territory]) if is_mi else "no"
    if kind == "control":
        loc = former = additional = smoker = vessels = na
    else:
        former = "no" if rng.random() < 0.8 or not is_mi else _choice(rng, ("inferior", "anterior"))
        additional = ", ".join(sorted({_choice(rng, _PTB_ADDITIONAL) for _ in range(
            int(rng.integers(1, 3)))}))
        if extra_mi_mention:
            additional = "Old myocardial infarction, " + additional
        smoker = _choice(rng, ("yes", "no", "unknown"))
        vessels = str(int(rng.integers(0, 4))) if kind != "control" else na
    infarct_date = (ecg_date - _dt.timedelta(days=int(rng.integers(0, 20))))
    cath = ecg_date + _dt.timedelta(days=int(rng.integers(1, 15)))
    mi_date = _ptb_day(infarct_date) if is_mi else na
    drugs = " ".join(_choice(rng, _PTB_DRUGS) for _ in range(int(rng.integers(1, 4))))
    bp = f"{int(rng.integers(10, 17)) * 10}/{int(rng.integers(6, 10)) * 10} mmHg"
    lines = [
        f"age: {age}", f"sex: {sex}", f"ECG date: {ecg_date.strftime('%d/%m/%Y')}", "",
        "Diagnose:",
        f"Reason for admission: {reason}",
        f"Acute infarction (localization): {loc}",
        f"Former infarction (localization): {former}",
        f"Additional diagnoses: {additional}",
        f"Smoker: {smoker}",
        f"Number of coronary vessels involved: {vessels}",
        f"Infarction date (acute): {mi_date}",
        f"Previous infarction (1) date: {na}",
        f"Previous infarction (2) date: {na}", "",
        "Hemodynamics:",
        f"Catheterization date: {_ptb_day(cath) if kind != 'control' else na}",
        f"Ventriculography: {('Hypokinesia ' + territory + ' wall') if is_mi else na}",
        f"Chest X-ray: {_choice(rng, ('Heart size normal', 'Heart size upper limit of norm', na))}",
        f"Peripheral blood Pressure (syst/diast):  {bp}",
        f"Pulmonary artery pressure (at rest) (syst/diast): {na}",
        f"Left ventricular enddiastolic pressure: {na}",
        f"Echocardiography: {na}", "",
        "Therapy:",
        f"Infarction date: {mi_date}",
        f"Admission date: {_ptb_day(ecg_date)}",
        f"Medication pre admission: {drugs if kind != 'control' else na}",
        f"In hospital medication: {drugs if kind != 'control' else na}",
    ]
    return lines


def write_ptb(root, n_patients: int, seed: int, *, seconds: tuple[float, float] = (30.0, 60.0),
              fs: int = 1000, p_mi: float = 0.55, p_control: float = 0.2,
              p_multi: float = 0.25, p_xyz: float = 0.5, noise: float = 1.0) -> dict[str, Any]:
    """Writes a synthetic PTB Diagnostic ECG Database in its original layout.

    ``root/RECORDS`` (``patientNNN/sXXXXyyy`` per line), ``root/CONTROLS``
    (the healthy-control records), ``root/patientNNN/sXXXX_re.{hea,dat}`` or
    ``sXXXXlre.{hea,dat}`` (12 leads, 1000 Hz, format 16, gain 2000/mV, lower
    case lead names) plus ``.xyz`` (Frank leads vx vy vz) for a fraction
    ``p_xyz`` of the records; every header lists the 15 signals, as in the
    real data where the ``.xyz`` file is often missing. ``_re`` headers use
    CRLF line ends and real checksums, ``lre`` headers LF and zeros, like the
    real files. Patients are MI, healthy controls or other diagnoses (e.g.
    ``Cardiomyopathy``, excluded by the label rules); some have several
    records. Some non-MI admissions (always the first "other" patient when
    there are two or more) mention an old myocardial infarction in their
    comments: MI under the paper's text rule, excluded under the ``Reason for
    admission`` rule.

    Returns:
      ``{'db': 'ptb', 'n_records', 'n_patients', 'labels': {mi, normal,
      other}, 'labels_alt': ..., 'records': [{'record', 'patient', 'label',
      'label_alt', 'territory', 'xyz', 'n_samples', 'reason'}...]}``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    prng = _rec_rng(seed, 1, -1)
    n_mi = max(1, int(round(n_patients * p_mi))) if n_patients >= 3 else 1
    n_ctrl = max(1, int(round(n_patients * p_control))) if n_patients >= 3 else 0
    kinds = ["mi"] * n_mi + ["control"] * n_ctrl
    kinds += ["other"] * max(0, n_patients - len(kinds))
    kinds = kinds[:n_patients]
    prng.shuffle(kinds)
    # With >= 2 "other" patients, the first one is always the edge case of an
    # admission that mentions an old myocardial infarction.
    first_other = kinds.index("other") if kinds.count("other") >= 2 else -1
    records: list[dict] = []
    rec_no = int(prng.integers(1, 20))
    pat_no = 0
    for p, kind in enumerate(kinds):
        pat_no += 1 + int(prng.random() < 0.1)
        patient = f"patient{pat_no:03d}"
        r = _rec_rng(seed, 1, p)
        n_rec = 1 + (int(r.integers(1, 4)) if r.random() < p_multi else 0)
        age = int(r.integers(17, 88))
        sex = "male" if r.random() < 0.7 else "female"
        territory = str(r.choice(list(_PTB_LOCALISATION), p=[0.35, 0.3, 0.08, 0.1, 0.12, 0.05])) \
            if kind == "mi" else None
        reason, condition = "", None
        mention = False
        if kind == "mi":
            reason = "Myocardial infarction"
        elif kind == "control":
            reason = "Healthy control"
        else:
            reason, condition = _PTB_OTHER[int(r.integers(len(_PTB_OTHER)))]
            if r.random() < 0.1 or p == first_other:
                reason, condition, mention = "Unstable angina", None, True
        ecg_date = _ptb_date(r)
        for j in range(n_rec):
            rec_no += 1 + int(r.random() < 0.05)
            suffix = "_re" if r.random() < 0.5 else "lre"
            record = f"s{rec_no:04d}{suffix}"
            secs = float(r.uniform(*seconds))
            mi_signal = kind == "mi" or mention
            sig, info = synthesize(r, fs, secs, mi_signal, territory if kind == "mi" else
                                   ("inferior" if mention else None), condition=condition,
                                   stage="old" if mention else None, noise=noise)
            frank = info.vcg * np.array([1.0, 1.0, -1.0], dtype=np.float32)   # vz: posterior +
            frank = frank + (0.01 * noise) * r.standard_normal(frank.shape).astype(np.float32)
            has_xyz = bool(r.random() < p_xyz)
            comments = _ptb_comments(r, kind, reason, territory, age, sex,
                                     ecg_date + _dt.timedelta(days=3 * j), mention)
            write_wfdb(root / patient, record,
                       [(f"{record}.dat", sig, list(PTB_LEADS)),
                        (f"{record}.xyz", frank, list(PTB_FRANK))],
                       fs, "2000", 2000.0, comments=comments,
                       newline="\r\n" if suffix == "_re" else "\n",
                       signed_checksum=True, zero_fields=suffix == "lre",
                       write_files={f"{record}.dat"} | ({f"{record}.xyz"} if has_xyz else set()))
            label = "mi" if (kind == "mi" or mention) else ("normal" if kind == "control" else "other")
            label_alt = {"mi": "mi", "control": "normal"}.get(kind, "other")
            records.append({"record": f"{patient}/{record}", "patient": patient, "label": label,
                            "label_alt": label_alt, "territory": info.territory,
                            "reason": reason, "xyz": has_xyz, "n_samples": info.n_samples})
    with open(root / "RECORDS", "w", newline="") as fh:
        fh.write("".join(f"{x['record']}\n" for x in records))
    with open(root / "CONTROLS", "w", newline="") as fh:
        fh.write("".join(f"{x['record']}\n" for x in records if x["reason"] == "Healthy control"))
    return {"db": "ptb", "n_records": len(records),
            "n_patients": len({x["patient"] for x in records}),
            "labels": _label_counts(records, "label"),
            "labels_alt": _label_counts(records, "label_alt"), "records": records}


# ---------------------------------------------------------------------------
# PTB-XL 1.0.3
# ---------------------------------------------------------------------------

#: Column set and order of ``ptbxl_database.csv`` (PTB-XL 1.0.3).
PTBXL_COLUMNS = (
    "ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device",
    "recording_date", "report", "scp_codes", "heart_axis", "infarction_stadium1",
    "infarction_stadium2", "validated_by", "second_opinion", "initial_autogenerated_report",
    "validated_by_human", "baseline_drift", "static_noise", "burst_noise",
    "electrodes_problems", "extra_beats", "pacemaker", "strat_fold", "filename_lr",
    "filename_hr",
)
#: Column set and order of ``scp_statements.csv`` (first column: the code).
SCP_COLUMNS = (
    "", "description", "diagnostic", "form", "rhythm", "diagnostic_class",
    "diagnostic_subclass", "Statement Category", "SCP-ECG Statement Description", "AHA code",
    "aECG REFID", "CDISC Code", "DICOM Code",
)
PTBXL_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

# code: (description, kind D/F/R, diagnostic_class, diagnostic_subclass, category, AHA code)
_SCP = {
    "NORM": ("normal ECG", "D", "NORM", "NORM", "Normal/abnormal", "1"),
    "IMI": ("myocardial infarction, inferior", "D", "MI", "IMI", "Myocardial Infarction", "161"),
    "ASMI": ("myocardial infarction, anteroseptal", "D", "MI", "AMI", "Myocardial Infarction", "165"),
    "ILMI": ("myocardial infarction, inferolateral", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "AMI": ("myocardial infarction, anterior", "D", "MI", "AMI", "Myocardial Infarction", "160"),
    "ALMI": ("myocardial infarction, anterolateral", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "LMI": ("myocardial infarction, lateral", "D", "MI", "LMI", "Myocardial Infarction", "163"),
    "PMI": ("myocardial infarction, posterior", "D", "MI", "PMI", "Myocardial Infarction", "162"),
    "IPLMI": ("myocardial infarction, inferoposterolateral", "D", "MI", "IMI",
              "Myocardial Infarction", ""),
    "IPMI": ("myocardial infarction, inferoposterior", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "INJAS": ("subendocardial injury, anteroseptal", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "INJAL": ("subendocardial injury, anterolateral", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "INJIN": ("subendocardial injury, inferior", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "INJIL": ("subendocardial injury, inferolateral", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "INJLA": ("subendocardial injury, lateral", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "NDT": ("T abnormalities, non-diagnostic", "DF", "STTC", "STTC", "ST-T descriptive", ""),
    "NST_": ("ST changes, non-specific", "DF", "STTC", "NST_", "ST-T basic roots", "145"),
    "ISC_": ("ischemic ST-T changes, non-specific", "D", "STTC", "ISC_", "ST-T basic roots", "226"),
    "LVH": ("hypertrophy, left ventricular", "D", "HYP", "LVH", "Ventricular Hypertrophy", "142"),
    "IRBBB": ("right bundle branch block, incomplete", "D", "CD", "IRBBB",
              "Conduction disturbances", "105"),
    "CLBBB": ("left bundle branch block, complete", "D", "CD", "CLBBB",
              "Conduction disturbances", "104"),
    "1AVB": ("AV block, first degree", "D", "CD", "_AVB", "Conduction disturbances", ""),
    "ABQRS": ("QRS complex, abnormal", "F", "", "", "QRS form", ""),
    "QWAVE": ("Q waves present", "F", "", "", "QRS form", ""),
    "INVT": ("T waves, inverted", "F", "", "", "T form", "367"),
    "LVOLT": ("QRS voltage, low", "F", "", "", "QRS form", ""),
    "SR": ("rhythm, sinus", "R", "", "", "Rhythm", "20"),
    "SBRAD": ("rhythm, sinus bradycardia", "R", "", "", "Rhythm", "22"),
    "STACH": ("rhythm, sinus tachycardia", "R", "", "", "Rhythm", "21"),
    "AFIB": ("rhythm, atrial fibrillation", "R", "", "", "Rhythm", "50"),
}
_PAPER_MI = ("IMI", "ASMI", "ILMI", "AMI", "ALMI")
_MI_TERRITORY = {"IMI": "inferior", "ILMI": "inferolateral", "IPLMI": "inferolateral",
                 "IPMI": "inferior", "INJIN": "inferior", "INJIL": "inferolateral",
                 "ASMI": "anterior", "AMI": "anterior", "INJAS": "anterior",
                 "ALMI": "anterolateral", "INJAL": "anterolateral", "INJLA": "lateral",
                 "LMI": "lateral", "PMI": "posterior"}
_OTHER_CONDITION = {"LVH": "lvh", "NDT": "ndt", "NST_": "ndt", "ISC_": "ndt", "CLBBB": "bbb",
                    "IRBBB": "bbb", "1AVB": "avb"}
# (weight, diagnostic codes with likelihoods, extra form / rhythm codes)
_PTBXL_MIX = (
    (40, {"NORM": 100.0}, ()), (6, {"NORM": 80.0}, ()), (3, {"NORM": 100.0}, ("LVOLT",)),
    (2, {"NORM": 100.0, "IRBBB": 100.0}, ()),                 # paper: normal; alt: excluded
    (7, {"IMI": 100.0}, ()), (3, {"IMI": 35.0}, ("ABQRS",)), (6, {"ASMI": 100.0}, ()),
    (2, {"AMI": 100.0}, ()), (2, {"ALMI": 100.0}, ()), (2, {"ILMI": 100.0}, ("QWAVE",)),
    (2, {"IMI": 100.0, "ASMI": 15.0}, ()), (1, {"ASMI": 50.0, "INJAS": 100.0}, ("INVT",)),
    (1, {"IMI": 0.0, "NDT": 100.0}, ()),                      # MI at likelihood 0 counts
    (2, {"LMI": 100.0}, ()), (1, {"PMI": 100.0}, ()), (1, {"IPLMI": 100.0}, ()),
    (1, {"INJIN": 50.0}, ()),                                 # MI only in the superclass rule
    (5, {"LVH": 100.0}, ()), (5, {"NDT": 100.0}, ()), (3, {"NST_": 100.0}, ()),
    (2, {"ISC_": 50.0, "LVH": 100.0}, ()), (2, {"CLBBB": 100.0}, ()),
    (2, {"IRBBB": 100.0}, ()), (2, {"1AVB": 100.0}, ()), (2, {"NDT": 100.0}, ("AFIB",)),
)
# Label-rule edge cases, each placed once in any database of >= 40 records.
_PTBXL_EDGE = tuple(i for i, m in enumerate(_PTBXL_MIX) if m[1] in (
    {"NORM": 100.0, "IRBBB": 100.0}, {"IMI": 0.0, "NDT": 100.0}, {"LMI": 100.0},
    {"PMI": 100.0}, {"INJIN": 50.0}, {"IMI": 35.0}, {"ALMI": 100.0}, {"ILMI": 100.0}))
_DEVICES = ("CS-12   E", "CS-12", "AT-6 C", "AT-6 C 5.5", "AT-60    3", "CS100    3")
_REPORT = {"NORM": "normales ekg", "IMI": "inferiorer infarkt", "ASMI": "anteroseptaler infarkt",
           "AMI": "anteriorer infarkt", "ALMI": "anterolateraler infarkt",
           "ILMI": "inferolateraler infarkt", "LMI": "lateraler infarkt",
           "PMI": "posteriorer infarkt", "LVH": "linksventrikuläre hypertrophie",
           "NDT": "t-veränderungen unspezifisch", "NST_": "st-veränderungen unspezifisch",
           "ISC_": "ischämische st-t-veränderungen", "CLBBB": "kompletter linksschenkelblock",
           "IRBBB": "inkompletter rechtsschenkelblock", "1AVB": "av-block i. grades",
           "INJAS": "anteroseptale innenschichtschädigung", "INJIN": "inferiore schädigung",
           "IPLMI": "inferoposterolateraler infarkt"}
_RHYTHM_TEXT = {"SR": "sinusrhythmus", "SBRAD": "sinusbradykardie", "STACH": "sinustachykardie",
                "AFIB": "vorhofflimmern"}


def _paper_label_ptbxl(codes: dict) -> str:
    if any(c in codes for c in _PAPER_MI):
        return "mi"
    return "normal" if "NORM" in codes else "other"


def _alt_label_ptbxl(codes: dict) -> str:
    classes = {_SCP[c][2] for c in codes if _SCP[c][2]}
    if "MI" in classes:
        return "mi"
    return "normal" if classes == {"NORM"} else "other"


def _fmt_float(x: float) -> str:
    return f"{float(x):.1f}"


def _write_scp_statements(path: Path, codes: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(SCP_COLUMNS)
        for c in codes:
            desc, kind, cls, sub, cat, aha = _SCP[c]
            w.writerow([c, desc, "1.0" if "D" in kind else "", "1.0" if "F" in kind else "",
                        "1.0" if "R" in kind else "", cls, sub, cat, desc,
                        f"{aha}.0" if aha else "", "", "", ""])


def write_ptbxl(root, n_records: int, seed: int, *, seconds: float = 10.0,
                p_multi: float = 0.15, noise: float = 1.0) -> dict[str, Any]:
    """Writes a synthetic PTB-XL 1.0.3 in its original layout.

    ``ptbxl_database.csv`` (the 28 columns of 1.0.3 in order, patient_id as a
    float string, ``scp_codes`` as a dict literal, ``strat_fold`` 1-10 grouped
    by patient and stratified by label), ``scp_statements.csv`` (same columns
    as the real one, rows for the codes used here only, correct
    ``diagnostic_class``), WFDB ``records500/NNNNN/EEEEE_hr`` (500 Hz) and
    ``records100/NNNNN/EEEEE_lr`` (the same signal at 100 Hz), 10 s, 12 leads,
    format 16, 1000 adu/mV, upper-case lead names. Some records are "other"
    (LVH, NDT, ... only) and some MI codes are MI only under the superclass rule
    (LMI, PMI, IPLMI, INJIN). A database of >= 40 records holds each label-rule
    edge case at least once (NORM + IRBBB, an MI code at likelihood 0, LMI,
    PMI, INJIN, ...).

    Returns:
      summary dict like :func:`write_ptb` (``records`` with ``ecg_id``,
      ``patient_id``, ``scp_codes``, ``label``, ``label_alt``, ``strat_fold``).
    """
    from scipy.signal import resample_poly

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    prng = _rec_rng(seed, 2, -1)
    weights = np.array([m[0] for m in _PTBXL_MIX], dtype=float)
    # Patients: some with several records.
    pat_of_record: list[int] = []
    while len(pat_of_record) < n_records:
        k = 1 + (int(prng.integers(1, 3)) if prng.random() < p_multi else 0)
        pat_of_record += [len(set(pat_of_record))] * k
    pat_of_record = pat_of_record[:n_records]
    n_pat = pat_of_record[-1] + 1 if n_records else 0
    pat_ids = prng.choice(np.arange(100, 22000), size=n_pat, replace=False)
    pat_age = prng.integers(18, 90, n_pat)
    pat_sex = prng.integers(0, 2, n_pat)
    pat_weight = prng.normal(75, 13, n_pat)
    day0 = _dt.datetime(1984, 11, 1, 0, 0, 0)
    days = np.sort(prng.integers(0, 17 * 365, n_records))
    times = days * 86400.0 + prng.uniform(7.5 * 3600, 18 * 3600, n_records)

    forced: dict[int, int] = {}
    if n_records >= 5 * len(_PTBXL_EDGE):
        forced = dict(zip(prng.choice(n_records, len(_PTBXL_EDGE), replace=False).tolist(),
                          _PTBXL_EDGE))

    rows: list[dict] = []
    records: list[dict] = []
    for i in range(n_records):
        ecg_id = i + 1
        r = _rec_rng(seed, 2, i)
        pid = pat_of_record[i]
        mix = int(r.choice(len(_PTBXL_MIX), p=weights / weights.sum()))
        diag, forms = _PTBXL_MIX[forced.get(i, mix)][1:]
        mi_codes = [c for c in diag if _SCP[c][2] == "MI"]
        territory = _MI_TERRITORY[mi_codes[0]] if mi_codes else None
        condition = next((_OTHER_CONDITION[c] for c in diag if c in _OTHER_CONDITION), None)
        if "NORM" in diag and condition == "bbb":
            condition = None
        u = r.random()
        if "AFIB" in forms:
            rhythm, hr, condition = "AFIB", float(r.uniform(70, 110)), "af"
        elif u < 0.12:
            rhythm, hr = "SBRAD", float(r.uniform(45, 58))
        elif u > 0.94:
            rhythm, hr = "STACH", float(r.uniform(101, 125))
        else:
            rhythm, hr = "SR", float(r.uniform(58, 100))
        severity = 0.35 if mi_codes and all(diag[c] == 0.0 for c in mi_codes) else None
        sig, info = synthesize(r, 500, seconds, bool(mi_codes), territory, condition=condition,
                               hr=hr, noise=noise, severity=severity)
        sig100 = resample_poly(sig.astype(np.float64), 1, 5, axis=0)
        scp = dict(diag)
        for c in forms:
            if c != "AFIB":
                scp[c] = 0.0
        scp[rhythm] = 0.0
        folder = f"{(ecg_id // 1000) * 1000:05d}"
        f_lr = f"records100/{folder}/{ecg_id:05d}_lr"
        f_hr = f"records500/{folder}/{ecg_id:05d}_hr"
        for rel, s, fs in ((f_hr, sig, 500), (f_lr, sig100, 100)):
            name = rel.rsplit("/", 1)[1]
            write_wfdb(root / rel.rsplit("/", 1)[0], name, [(f"{name}.dat", s, list(PTBXL_LEADS))],
                       fs, "1000.0(0)/mV", 1000.0)
        label, label_alt = _paper_label_ptbxl(scp), _alt_label_ptbxl(scp)
        text = " ".join([_RHYTHM_TEXT[rhythm]] + [_REPORT.get(c, c.lower()) for c in diag])
        stad = {"acute": "Stadium I", "recent": "Stadium II", "old": "Stadium III"}
        noise_txt = lambda p, opts: _choice(r, opts) if r.random() < p else ""  # noqa: E731
        date = day0 + _dt.timedelta(seconds=float(times[i]))
        rows.append({
            "ecg_id": str(ecg_id), "patient_id": _fmt_float(pat_ids[pid]),
            "age": _fmt_float(pat_age[pid]),
            "sex": str(int(pat_sex[pid])),
            "height": _fmt_float(r.normal(170, 9)) if r.random() < 0.3 else "",
            "weight": _fmt_float(round(pat_weight[pid])) if r.random() < 0.5 else "",
            "nurse": _fmt_float(r.integers(0, 12)) if r.random() < 0.8 else "",
            "site": _fmt_float(r.integers(0, 4)),
            "device": _choice(r, _DEVICES),
            "recording_date": date.strftime("%Y-%m-%d %H:%M:%S"),
            "report": text,
            "scp_codes": repr(scp),
            "heart_axis": _choice(r, ("MID", "LAD", "ALAD", "RAD")) if r.random() < 0.3 else "",
            "infarction_stadium1": (stad[info.stage] if r.random() < 0.6 else "unknown")
            if mi_codes else "",
            "infarction_stadium2": "",
            "validated_by": _fmt_float(r.integers(0, 12)) if r.random() < 0.3 else "",
            "second_opinion": "True" if r.random() < 0.02 else "False",
            "initial_autogenerated_report": "False",
            "validated_by_human": "True",
            "baseline_drift": noise_txt(0.1, (" , V1", " , V6", " , II,III,AVF", " , alles")),
            "static_noise": noise_txt(0.15, (" , I-AVR,  ", " , alles,  ", " , I-V2,  ")),
            "burst_noise": noise_txt(0.03, ("V2", "I-V1", "III,AVL")),
            "electrodes_problems": noise_txt(0.01, ("V4", "V6")),
            "extra_beats": noise_txt(0.05, ("1ES", "VES", "SVES")),
            "pacemaker": "",
            "strat_fold": "",
            "filename_lr": f_lr, "filename_hr": f_hr,
        })
        records.append({"ecg_id": ecg_id, "patient_id": float(pat_ids[pid]), "scp_codes": scp,
                        "label": label, "label_alt": label_alt, "territory": info.territory,
                        "filename_lr": f_lr, "filename_hr": f_hr})
    # strat_fold: patient-grouped, stratified by the patient's worst label.
    rank = {"mi": 0, "other": 1, "normal": 2}
    pat_label: dict[int, int] = {}
    for rec, pid in zip(records, pat_of_record):
        pat_label[pid] = min(pat_label.get(pid, 9), rank[rec["label"]])
    fold_of: dict[int, int] = {}
    for lab in sorted(set(pat_label.values())):
        pats = np.array(sorted(p for p, v in pat_label.items() if v == lab))
        prng.shuffle(pats)
        off = int(prng.integers(10))
        for j, p in enumerate(pats):
            fold_of[int(p)] = (j + off) % 10 + 1
    for row, rec, pid in zip(rows, records, pat_of_record):
        row["strat_fold"] = str(fold_of[pid])
        rec["strat_fold"] = fold_of[pid]
    with open(root / "ptbxl_database.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(PTBXL_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    _write_scp_statements(root / "scp_statements.csv", list(_SCP))
    return {"db": "ptbxl", "n_records": len(records), "n_patients": n_pat,
            "labels": _label_counts(records, "label"),
            "labels_alt": _label_counts(records, "label_alt"), "records": records}


# ---------------------------------------------------------------------------
# SPH (Shandong Provincial Hospital)
# ---------------------------------------------------------------------------

SPH_COLUMNS = ("ECG_ID", "AHA_Code", "Patient_ID", "Age", "Sex", "N", "Date")
_SPH_MI_PRIMARY = {"160": "anterior", "161": "inferior", "165": "anterior", "166": "anterolateral"}
_SPH_OTHER = (  # (AHA code, condition, hr range)
    ("22", None, (45, 58)), ("23", None, None), ("22;23", None, (45, 58)), ("21", None, (101, 120)),
    ("147", "ndt", None), ("146", "ndt", None), ("145+362", "ndt", None), ("105", "bbb", None),
    ("106", "bbb", None), ("22;147", "ndt", (45, 58)), ("50", "af", (70, 110)),
    ("50+346", "af", (70, 110)), ("142", "lvh", None), ("82", "avb", None),
)


# Label-rule edge cases, each placed once in any database of >= 40 records:
# (AHA code, MI territory or None, condition, heart-rate range or None).
_SPH_EDGE = (
    ("50+161", "inferior", "af", (70, 110)), ("165;22", "anterior", None, (45, 58)),
    ("166+332;146", "anterolateral", None, None), ("160", "anterior", None, None),
    ("162", "posterior", None, None), ("163+332", "lateral", None, None),
    ("22;23", None, None, (45, 58)), ("1", None, None, None),
)


def _sph_label(code: str) -> str:
    parts = {p.strip() for p in code.replace(",", ";").replace("+", ";").split(";") if p.strip()}
    if any(p.startswith(("160", "161", "165", "166")) for p in parts):
        return "mi"
    return "normal" if parts == {"1"} else "other"


def write_sph(root, n_records: int, seed: int, *, max_samples: int = 30000,
              p_long: float = 0.15, p_multi: float = 0.05, noise: float = 1.0) -> dict[str, Any]:
    """Writes a synthetic SPH database in its original layout.

    ``metadata.csv`` (``ECG_ID,AHA_Code,Patient_ID,Age,Sex,N,Date``) and
    ``records/<ECG_ID>.h5`` with dataset ``ecg`` float32 ``(12, N)``, 500 Hz,
    mV, leads I II III aVR aVL aVF V1..V6. N is 5000 for most records and up to
    ``max_samples`` (a multiple of 500) for a fraction ``p_long``. AHA codes:
    normal ``1``; MI like ``161``, ``160+332``, ``165;22``, ``166+332;146``,
    ``50+161``; excluded MI-like ``162``/``163+332`` (posterior / lateral, not in
    the paper's rule) and other rhythm / ST-T / conduction codes. A database of
    >= 40 records holds each of ``50+161``, ``165;22``, ``166+332;146``,
    ``160``, ``162``, ``163+332``, ``22;23``, ``1`` at least once.

    Returns:
      summary dict like :func:`write_ptb` (``records`` with ``ecg_id``,
      ``patient_id``, ``aha``, ``label``, ``n``).
    """
    import h5py

    root = Path(root)
    (root / "records").mkdir(parents=True, exist_ok=True)
    prng = _rec_rng(seed, 3, -1)
    pat: list[int] = []
    while len(pat) < n_records:
        k = 1 + (int(prng.integers(1, 3)) if prng.random() < p_multi else 0)
        pat += [len(set(pat))] * k
    pat = pat[:n_records]
    n_pat = (pat[-1] + 1) if pat else 0
    ages = prng.integers(18, 90, n_pat)
    sexes = np.where(prng.random(n_pat) < 0.55, "M", "F")
    lengths = np.arange(5500, max(max_samples, 5500) + 1, 500)
    forced: dict[int, int] = {}
    if n_records >= 5 * len(_SPH_EDGE):
        forced = dict(zip(prng.choice(n_records, len(_SPH_EDGE), replace=False).tolist(),
                          range(len(_SPH_EDGE))))
    rows, records = [], []
    for i in range(n_records):
        r = _rec_rng(seed, 3, i)
        ecg_id, pid = f"A{i + 1:05d}", f"S{pat[i] + 1:05d}"
        u = r.random()
        mi, territory, condition, hr = False, None, None, None
        if i in forced:
            code, territory, condition, hr_rng = _SPH_EDGE[forced[i]]
            mi = territory is not None
            hr = float(r.uniform(*hr_rng)) if hr_rng else None
        elif u < 0.5:
            code = "1"
        elif u < 0.72:
            prim = _choice(r, tuple(_SPH_MI_PRIMARY))
            mi, territory = True, _SPH_MI_PRIMARY[prim]
            code = prim + (f"+{_choice(r, ('330', '331', '332'))}" if r.random() < 0.6 else "")
            v = r.random()
            if v < 0.2:
                code = f"{code};{_choice(r, ('22', '146', '147', '145+363'))}"
            elif v < 0.3:
                code, condition, hr = f"50+{prim}", "af", float(r.uniform(70, 110))
            elif v < 0.4:
                code = f"22;{code}"
                hr = float(r.uniform(45, 58))
        elif u < 0.76:
            prim = _choice(r, ("162", "163"))
            mi, territory = True, "posterior" if prim == "162" else "lateral"
            code = prim + ("+332" if r.random() < 0.5 else "")
        else:
            code, condition, hr_rng = _SPH_OTHER[int(r.integers(len(_SPH_OTHER)))]
            hr = float(r.uniform(*hr_rng)) if hr_rng else None
        n = 5000 if r.random() >= p_long or max_samples <= 5000 else \
            int(lengths[min(int(r.exponential(3.0)), len(lengths) - 1)])
        sig, info = synthesize(r, 500, n / 500, mi, territory, condition=condition, hr=hr,
                               noise=noise)
        with h5py.File(root / "records" / f"{ecg_id}.h5", "w") as fh:
            fh.create_dataset("ecg", data=np.ascontiguousarray(sig.T, dtype=np.float32))
        date = _dt.date(2019, 1, 1) + _dt.timedelta(days=int(r.integers(0, 700)))
        rows.append([ecg_id, code, pid, str(int(ages[pat[i]])), str(sexes[pat[i]]), str(n),
                     date.isoformat()])
        label = _sph_label(code)
        records.append({"ecg_id": ecg_id, "patient_id": pid, "aha": code, "label": label,
                        "label_alt": label, "territory": info.territory, "n": n})
    with open(root / "metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(SPH_COLUMNS)
        w.writerows(rows)
    return {"db": "sph", "n_records": len(records), "n_patients": n_pat,
            "labels": _label_counts(records, "label"), "records": records}


def write_all(root, seed: int = 0, *, ptb_patients: int = 12, ptbxl_records: int = 60,
              sph_records: int = 60, **kwargs) -> dict[str, dict[str, Any]]:
    """Writes ``root/ptb``, ``root/ptbxl`` and ``root/sph``; returns their summaries.
    Extra keyword arguments (e.g. ``noise``) go to every writer."""
    root = Path(root)
    return {
        "ptb": write_ptb(root / "ptb", ptb_patients, seed, **kwargs),
        "ptbxl": write_ptbxl(root / "ptbxl", ptbxl_records, seed, **kwargs),
        "sph": write_sph(root / "sph", sph_records, seed, **kwargs),
    }


if __name__ == "__main__":  # pragma: no cover
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Write synthetic PTB / PTB-XL / SPH databases.")
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ptb-patients", type=int, default=12)
    ap.add_argument("--ptbxl-records", type=int, default=60)
    ap.add_argument("--sph-records", type=int, default=60)
    a = ap.parse_args()
    out = write_all(a.root, a.seed, ptb_patients=a.ptb_patients,
                    ptbxl_records=a.ptbxl_records, sph_records=a.sph_records)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "records"}
                      for k, v in out.items()}, indent=1))
