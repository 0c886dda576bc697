"""Synthetic 12-lead ECGs: a fast, vectorised dipole simulator (testing only).

:func:`synth_record` / :func:`synthesize` give realistic 12-lead ECGs (mV,
canonical lead order ``I, II, III, aVR, aVL, aVF, V1 .. V6``). The heart is
modelled as a moving dipole: every wave (P, septal q/r, R, S, T, ST segment,
pathological Q) is a Gaussian in time on a per-beat clock times a 3-D vector;
leads are projections of that dipole. Leads I, II and V1..V6 are projected
(and get their own noise), the other limb leads are derived from I and II
(``III = II - I``, ``aVR = -(I+II)/2``, ``aVL = I - II/2``, ``aVF = II - I/2``),
so Einthoven's identities hold exactly. Myocardial infarction is an injury
vector pointing at the infarcted territory: ST elevation along it, a
pathological Q wave and R loss away from it, T inversion; reciprocal leads
see the mirror image. Severities, stages, heart axis, rate, amplitudes, noise
and normal variants are drawn per record so that the task is learnable but
not trivial. Everything is NumPy; no per-sample Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from leadmix_jax.data.leads import CANONICAL_LEADS

__all__ = ["TERRITORIES", "CONDITIONS", "SynthInfo", "synthesize", "synth_record"]

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
    "inferior": (0.05, 1.0, 0.0),  # II, III, aVF (aVL, I reciprocal)
    "anterior": (-0.25, 0.0, 1.0),  # V1-V4
    "lateral": (1.0, -0.35, 0.25),  # I, aVL, V5, V6
    "anterolateral": (0.55, -0.2, 0.85),  # V3-V6, I, aVL
    "inferolateral": (0.6, 0.8, 0.05),  # II, III, aVF, V5, V6
    "posterior": (0.1, 0.15, -1.0),  # mirror image in V1-V3
}
_MAIN_TERRITORIES = ("inferior", "anterior", "lateral")
#: Non-MI conditions the generator can add (``condition=``).
CONDITIONS = ("lvh", "ndt", "bbb", "avb", "af")
_STAGES = ("acute", "recent", "old")
# Uniform ranges, per MI stage, of (ST elevation mV, Q depth, T inversion, R loss)
# before severity scaling: acute MIs carry ST elevation, older ones Q waves and R loss.
_STAGE_RANGES = {
    "acute": ((0.08, 0.35), (0.0, 0.3), (-0.25, 0.0), (0.0, 0.3)),
    "recent": ((0.03, 0.15), (0.1, 0.5), (0.25, 0.6), (0.2, 0.6)),
    "old": ((0.0, 0.06), (0.15, 0.5), (0.0, 0.3), (0.2, 0.7)),
}

# Wave table: (name, default offset from the R peak in s, width in s).
# T waves are placed per beat (QT follows the RR interval).
_W_P, _W_P2, _W_SEPT, _W_Q, _W_R, _W_S, _W_R2, _W_T1, _W_T2 = range(9)
_N_GAUSS = 9


@dataclass
class SynthInfo:
    """What the generator drew for one record (for tests and manifests)."""

    fs: float
    n_samples: int
    beats: np.ndarray  # R-peak times in s (only those inside the record)
    hr: float  # mean heart rate, bpm
    mi: bool
    territory: str | None = None
    stage: str | None = None  # acute / recent / old (MI only)
    st_mv: float = 0.0  # ST elevation along the injury vector, mV
    q_mv: float = 0.0  # pathological-Q vector magnitude, mV
    t_inv_mv: float = 0.0  # T-vector shift away from the territory, mV
    condition: str | None = None
    variant: str | None = None  # normal variant, e.g. 't_flat', 'early_repol'
    vcg: np.ndarray | None = field(default=None, repr=False)  # (T, 3) dipole, mV


def _as_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _rotation(
    rng: np.random.Generator, frontal_sd_deg: float, horiz_sd_deg: float, frontal_mean_deg: float = 0.0
) -> np.ndarray:
    """Random rotation of the heart: about z (frontal axis) and about y."""
    a = np.deg2rad(rng.normal(frontal_mean_deg, frontal_sd_deg))
    b = np.deg2rad(rng.normal(0.0, horiz_sd_deg))
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0, 0, 1.0]])
    ry = np.array([[np.cos(b), 0.0, -np.sin(b)], [0, 1.0, 0], [np.sin(b), 0.0, np.cos(b)]])
    return ry @ rz


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def synthesize(
    rng,
    fs: float,
    seconds: float,
    mi: bool,
    territory: str | None = None,
    *,
    condition: str | None = None,
    stage: str | None = None,
    hr: float | None = None,
    noise: float = 1.0,
    severity: float | None = None,
) -> tuple[np.ndarray, SynthInfo]:
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
    # The draws happen in this order (a record's seed fixes all of them).
    rhythm = _rhythm(rng, seconds, condition, hr)
    heart = _heart(rng, condition)
    variant = _normal_variant(rng, heart) if not mi and condition is None else None
    _add_condition(rng, heart, condition)
    st = q = t_inv = 0.0
    stage_ = None
    if mi:
        stage_, st, q, t_inv = _add_infarct(rng, heart, territory, stage, severity)
    V = heart.vectors()
    t = np.arange(n) / fs
    vcg = _dipole(rng, rhythm, heart, V, t, n, condition)
    out = _leads(rng, vcg, t, n, rhythm.f_resp, noise)
    beats = rhythm.beats
    info = SynthInfo(
        fs=float(fs),
        n_samples=n,
        beats=beats[(beats >= 0) & (beats < n / fs)],
        hr=rhythm.hr,
        mi=bool(mi),
        territory=territory,
        stage=stage_,
        st_mv=float(st),
        q_mv=float(q),
        t_inv_mv=float(t_inv),
        condition=condition,
        variant=variant,
        vcg=vcg.astype(np.float32),
    )
    return out, info


@dataclass
class _Rhythm:
    hr: float  # mean heart rate, bpm
    f_resp: float  # respiration frequency, Hz
    beats: np.ndarray  # (nb,) R-peak times, s
    sq: np.ndarray  # (nb,) sqrt of the RR interval before each beat (QT ~ sqrt(RR))


def _rhythm(rng: np.random.Generator, seconds: float, condition, hr) -> _Rhythm:
    """RR intervals with respiratory sinus arrhythmia and jitter (AF: irregular)."""
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
        rr = rr0 * (
            1.0
            + rsa * np.sin(2 * np.pi * f_resp * k * rr0 + rng.uniform(0, 2 * np.pi))
            + 0.02 * np.sin(2 * np.pi * 0.07 * k * rr0 + rng.uniform(0, 2 * np.pi))
        )
        rr *= 1.0 + jitter * rng.standard_normal(nb)
    rr = np.clip(rr, 0.33, 2.0)
    beats = -rng.uniform(0.2, 1.0) * rr[0] + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    rr_prev = np.concatenate([[rr0], rr[:-1]])  # RR preceding each beat (QT)
    return _Rhythm(hr, f_resp, beats, np.sqrt(rr_prev))


@dataclass
class _Heart:
    """Per-record morphology: wave vectors, timing and the ST/T vectors."""

    rot: np.ndarray  # (3, 3) heart axis rotation
    gain: float  # body habitus
    pr: float  # PR interval, s
    qt_k: float  # T peak at qt_k * sqrt(RR)
    qrs_w: float  # QRS width factor
    amp_t: float  # T amplitude, mV
    V: np.ndarray  # (_N_GAUSS + 1, 3) wave vectors, mV; the last row is the ST plateau
    t_vec: np.ndarray
    st_vec: np.ndarray
    widths: np.ndarray  # (_N_GAUSS,) width factors

    def vectors(self) -> np.ndarray:
        """The wave vectors with the T waves and the ST plateau, rotated and scaled."""
        V = self.V.copy()
        V[_W_T1] = 0.6 * self.t_vec
        V[_W_T2] = 0.55 * self.t_vec
        V[_N_GAUSS] = self.st_vec
        return V @ self.rot.T * self.gain


def _heart(rng: np.random.Generator, condition) -> _Heart:
    rot = _rotation(rng, 18.0, 12.0, frontal_mean_deg=rng.normal(0.0, 6.0))
    gain = rng.uniform(0.7, 1.3)  # body habitus
    pr = rng.uniform(0.14, 0.19) if condition != "avb" else rng.uniform(0.22, 0.32)
    qt_k = rng.uniform(0.25, 0.29)  # T peak at qt_k * sqrt(RR)
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
    V = np.zeros((_N_GAUSS + 1, 3))  # wave vectors (mV); last row: ST plateau
    V[_W_P] = amp["p"] * vec["p"]
    V[_W_P2] = 0.35 * amp["p"] * vec["p2"]
    V[_W_SEPT] = amp["sept"] * vec["sept"]
    V[_W_R] = amp["r"] * vec["r"]
    V[_W_S] = amp["s"] * vec["s"]
    return _Heart(
        rot, gain, pr, qt_k, qrs_w, amp["t"], V, amp["t"] * vec["t"], np.zeros(3), np.ones(_N_GAUSS)
    )


def _normal_variant(rng: np.random.Generator, h: _Heart) -> str | None:
    """A normal record's variant (about 42 %), applied to ``h``; its name."""
    u = rng.random()
    if u < 0.12:
        h.t_vec = h.t_vec * rng.uniform(0.25, 0.6)
        return "t_flat"  # nonspecific T flattening
    if u < 0.22:
        h.st_vec = rng.uniform(0.04, 0.12) * _unit([0.35, 0.2, 0.9])
        return "early_repol"  # benign ST elevation V2-V5
    if u < 0.30:
        h.t_vec = h.t_vec - 0.25 * h.amp_t * _unit([-0.3, 0.0, 1.0])
        return "juvenile_t"  # inverted T in V1-V2
    if u < 0.36:
        h.gain *= 0.5
        return "low_voltage"
    if u < 0.42:
        h.V[_W_SEPT] = h.V[_W_SEPT] + rng.uniform(0.1, 0.25) * _unit([0.3, -1.0, 0.2])
        return "deep_q_iii"  # positional q in III/aVF
    return None


def _add_condition(rng: np.random.Generator, h: _Heart, condition) -> None:
    """The morphology of a non-MI ``condition`` (AV block and AF change the rhythm instead)."""
    if condition == "lvh":
        h.V[_W_R] *= rng.uniform(1.5, 2.0)
        h.V[_W_S] *= rng.uniform(1.5, 2.0)
        lat = _unit(TERRITORIES["lateral"])
        h.t_vec = h.t_vec - rng.uniform(0.2, 0.45) * lat
        h.st_vec = h.st_vec - rng.uniform(0.02, 0.08) * lat
    elif condition == "ndt":
        h.t_vec = h.t_vec * rng.uniform(0.2, 0.7) + rng.uniform(0.1, 0.25) * _unit(rng.normal(size=3))
        h.st_vec = h.st_vec + rng.uniform(0.0, 0.06) * _unit(rng.normal(size=3))
    elif condition == "bbb":
        h.widths[[_W_R, _W_S]] = rng.uniform(1.5, 2.0)
        h.V[_W_R2] = rng.uniform(0.3, 0.7) * _unit([-0.5, 0.0, 0.85])
        h.t_vec = h.t_vec - 0.2 * _unit([-0.3, 0.0, 1.0])


def _add_infarct(rng: np.random.Generator, h: _Heart, territory: str, stage, severity):
    """The injury vector of an MI in ``territory``: ST elevation along it, a
    pathological Q and R loss away from it, T inversion. Returns
    ``(stage, st, q, t_inv)`` as drawn (after severity scaling)."""
    d = _unit(np.asarray(TERRITORIES[territory]) + rng.normal(0, 0.12, 3))
    stage_ = stage or str(rng.choice(_STAGES, p=[0.3, 0.35, 0.35]))
    if stage_ not in _STAGE_RANGES:
        raise ValueError(f"Unknown stage {stage_!r}; valid: {', '.join(_STAGES)}")
    st, q, t_inv, rloss = (rng.uniform(lo, hi) for lo, hi in _STAGE_RANGES[stage_])
    sev = (rng.uniform(0.3, 0.7) if rng.random() < 0.25 else 1.0) if severity is None else float(severity)
    st, q, t_inv, rloss = st * sev, q * sev, t_inv * sev, rloss * sev
    h.st_vec = h.st_vec + st * d
    h.V[_W_Q] = -q * d
    proj = h.V[_W_R] @ d
    if proj > 0:
        h.V[_W_R] = h.V[_W_R] - rloss * proj * d
    h.t_vec = h.t_vec - t_inv * d
    return stage_, st, q, t_inv


def _dipole(rng, rhythm: _Rhythm, h: _Heart, V: np.ndarray, t: np.ndarray, n: int, condition) -> np.ndarray:
    """The heart's dipole ``(T, 3)`` in mV: every wave of the previous and the next
    beat evaluated at every sample (plus AF's fibrillatory waves)."""
    # Waves P .. R' sit at fixed offsets from the R peak; the T wave (two
    # Gaussians: slow rise, faster fall) and the end of the ST plateau follow
    # the preceding RR interval (QT ~ sqrt(RR)).
    f32 = np.float32
    beats, nb = rhythm.beats, rhythm.beats.shape[0]
    pr, qrs_w = h.pr, h.qrs_w
    mu_c = np.array([-pr, -pr + 0.035, -0.028, -0.02, 0.0, 0.027 * qrs_w, 0.065], f32)
    sg_c = np.array([0.022, 0.02, 0.009, 0.013, 0.011 * qrs_w, 0.011 * qrs_w, 0.013])
    isg_c = (1.0 / (sg_c * h.widths[:_W_T1])).astype(f32)
    t_peak = (h.qt_k * rhythm.sq).astype(f32)
    sq = rhythm.sq.astype(f32)
    # Beat-to-beat amplitude: respiration modulates the QRS; small random scatter.
    qrs_mod = (1.0 + 0.05 * np.sin(2 * np.pi * rhythm.f_resp * beats)).astype(f32)
    scatter = (1.0 + 0.02 * rng.standard_normal(nb)).astype(f32)
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
    vcg = (G @ V.astype(f32)).astype(np.float64)  # (T, 3) mV
    if condition == "af":
        f_af = rng.uniform(4.0, 7.0)
        vcg += (
            rng.uniform(0.02, 0.07)
            * np.sin(2 * np.pi * f_af * t + 0.8 * np.sin(2 * np.pi * 0.3 * t))[:, None]
            * _unit([0.2, 0.4, 0.9])
        )
    return vcg


def _leads(rng, vcg: np.ndarray, t: np.ndarray, n: int, f_resp: float, noise: float) -> np.ndarray:
    """The 12 leads ``(T, 12)`` float32: I, II and V1..V6 projected (each with its
    own noise), the other limb leads derived from I and II."""
    f32 = np.float32
    dirs = np.concatenate([_DIR_I[None], _DIR_II[None], _DIR_V], axis=0)  # (8, 3)
    chan_gain = np.concatenate([[1.0, 1.0], _V_GAIN * rng.uniform(0.85, 1.15, 6)])
    base = (vcg @ dirs.T) * chan_gain  # (T, 8)
    if noise > 0:
        wander_level = rng.uniform(0.02, 0.25) * noise
        # Shared low-frequency sinusoids (3 in 0.1-0.4 Hz + respiration), mixed
        # into each channel with its own weights: channels wander differently.
        f_w = np.append(rng.uniform(0.1, 0.4, 3), f_resp)
        arg = 2 * np.pi * f_w * t[:, None] + rng.uniform(0, 2 * np.pi, 4)
        arg = arg.astype(f32)
        basis = np.concatenate([np.sin(arg), np.cos(arg)], axis=1)  # (T, 8)
        mix = rng.normal(0.0, 1.0, (8, 8)) * np.array([1, 1, 1, 0.6] * 2)[:, None]
        wander = basis @ (mix * (wander_level / 2.5))
        mains = 50.0 if rng.random() < 0.6 else 60.0
        pl_amp = rng.uniform(0.0, 0.02) * noise * rng.uniform(0.3, 1.0, 8)
        pl = pl_amp * np.sin(2 * np.pi * mains * t + rng.uniform(0, 2 * np.pi))[:, None]
        white = rng.uniform(0.004, 0.025) * noise * rng.standard_normal((n, 8), dtype=f32)
        base = base + wander + pl + white
    lead_i, lead_ii = base[:, 0], base[:, 1]
    out = np.empty((n, len(CANONICAL_LEADS)), dtype=np.float32)  # I II III aVR aVL aVF V1-V6
    out[:, 0] = lead_i
    out[:, 1] = lead_ii
    out[:, 2] = lead_ii - lead_i
    out[:, 3] = -(lead_i + lead_ii) / 2
    out[:, 4] = lead_i - lead_ii / 2
    out[:, 5] = lead_ii - lead_i / 2
    out[:, 6:] = base[:, 2:]
    return out


def synth_record(
    rng, fs: float, seconds: float, mi: bool, territory: str | None = None, **kwargs
) -> np.ndarray:
    """A synthetic 12-lead ECG, float32 ``(time, 12)`` in mV, canonical lead order
    (:data:`leadmix_jax.data.leads.CANONICAL_LEADS`). Keyword options as in
    :func:`synthesize`."""
    return synthesize(rng, fs, seconds, mi, territory, **kwargs)[0]
