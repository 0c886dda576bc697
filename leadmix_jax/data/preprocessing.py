"""Signal preprocessing of one ECG record: the paper's chain, done once per record.

The chain (docs/data.md, "Preprocessing") runs at the record's native
sampling rate on a ``(time, leads)`` array, all leads at once:

1. :func:`bandpass` - 4th-order Butterworth band-pass, 0.5-25 Hz, applied
   forward-backward (``scipy.signal.sosfiltfilt``, default padding).
2. :func:`remove_baseline` - subtract each lead's mean over the record.
3. :func:`wavelet_denoise` - one-level ``db4`` DWT (``symmetric`` mode),
   detail coefficients zeroed, reconstruction trimmed to the input length
   (the reference keeps the extra sample an odd length produces; this is a
   documented deviation).
4. :func:`resample` - FFT resampling (``scipy.signal.resample``) to
   ``int(T * 250 / fs)`` samples.
5. :func:`cut_windows` - non-overlapping 10 s windows of 2500 samples from
   sample 0; the remainder is dropped, a record shorter than 10 s gives none.
6. Clean rule - a window is dropped if any lead is exactly flat or any sample
   is NaN/Inf, judged over all leads of the record so that every lead subset
   sees the same windows (:func:`clean_window_mask` plus the raw-signal checks
   below), or if its amplitude after the chain is not that of an ECG in mV
   (:class:`AmplitudeRange`: a record stored in uV, a wrong header gain, a
   file of random bytes, one lead x1e30).
7. No amplitude scaling: per-lead z-scoring happens at load time.

:func:`preprocess_record` runs the whole chain and adds two things the
reference lacks:

* **Non-finite samples.** One NaN fed to ``sosfiltfilt`` (or to the FFT
  resampler) spreads over the whole lead and would cost every window of the
  record. So non-finite raw samples are first replaced per lead by linear
  interpolation over time (held constant beyond the first/last finite sample,
  0 for a lead with no finite sample), the chain runs on the repaired signal,
  and then exactly those windows whose raw time span ``[w*10 s, (w+1)*10 s)``
  held a non-finite raw sample are dropped (``num_nonfinite``).
* **Flat leads.** A lead that is constant in the raw record does *not* come out
  exactly constant: the band-pass of a constant is ~0 up to rounding, the
  forward-backward filter and the FFT resampler mix in the neighbouring
  samples, so a flat stretch inside a live record comes out as filter ringing.
  The paper's ``ptp == 0`` test on the output windows alone would therefore
  miss most disconnected leads. The rule is thus applied to the raw samples of
  each window's time span as well: a window is flat if any lead's raw samples
  in that span have peak-to-peak 0, or any lead of the output (float32) window
  has peak-to-peak 0 (``num_flat``). A window both flat and non-finite counts
  as non-finite.

Internally everything is float64; the stored windows are float32.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pywt
from scipy import signal as sps

from leadmix_jax.data.amplitude import DEFAULT_AMPLITUDE_RANGE, AmplitudeRange

TARGET_FS = 250
WINDOW_SECONDS = 10
WINDOW_SAMPLES = TARGET_FS * WINDOW_SECONDS  # 2500


__all__ = [
    "TARGET_FS",
    "WINDOW_SECONDS",
    "WINDOW_SAMPLES",
    "bandpass",
    "remove_baseline",
    "wavelet_denoise",
    "resample",
    "cut_windows",
    "clean_window_mask",
    "PreprocessResult",
    "preprocess_record",
]


# --------------------------------------------------------------------------
# validation helpers


def _as_2d(x, name: str = "x") -> np.ndarray:
    """``x`` as a float64 ``(time, leads)`` array, or a ValueError."""
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (time, leads) array, got shape {arr.shape}.")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one lead, got shape {arr.shape}.")
    try:
        return arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}: {err}") from None


def _check_fs(fs, name: str = "fs") -> float:
    """``fs`` as a positive finite float, or a ValueError."""
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {fs!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {fs!r}.")
    return value


# --------------------------------------------------------------------------
# the chain, one step each


def bandpass(x: np.ndarray, fs: float, low: float = 0.5, high: float = 25.0, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass along time.

    ``butter(order, [low, high], btype='band', fs=fs, output='sos')`` applied
    forward-backward with ``sosfiltfilt(axis=0)`` and its default padding.

    Args:
      x: ``(time, leads)`` signal; must be longer than the filter's padding
        (a few dozen samples for the default order).
      fs: sampling rate in Hz, must exceed ``2 * high``.
      low, high: pass band edges in Hz, ``0 < low < high < fs / 2``.
      order: Butterworth order (the band-pass has twice as many poles).

    Returns:
      float64 array of the same shape ``(time, leads)``.

    Raises:
      ValueError: on a non-2-D input, bad ``fs``/band edges, or a record too
        short for the filter's padding.
    """
    x = _as_2d(x)
    fs = _check_fs(fs)
    if not 0 < low < high < fs / 2:
        raise ValueError(
            f"Band edges must satisfy 0 < low < high < fs/2; got low={low}, "
            f"high={high}, fs={fs} (fs/2={fs / 2})."
        )
    sos = sps.butter(order, [low, high], btype="band", fs=fs, output="sos")
    try:
        return sps.sosfiltfilt(sos, x, axis=0)
    except ValueError as err:
        raise ValueError(f"Record of {x.shape[0]} samples is too short to band-pass: {err}") from None


def remove_baseline(x: np.ndarray) -> np.ndarray:
    """Subtracts each lead's mean over the whole record.

    Args:
      x: ``(time, leads)`` signal.

    Returns:
      float64 ``(time, leads)``, every column with mean ~0.
    """
    x = _as_2d(x)
    return x - x.mean(axis=0, keepdims=True)


def wavelet_denoise(x: np.ndarray, wavelet: str = "db4") -> np.ndarray:
    """One-level wavelet low-pass: DWT, detail coefficients zeroed, inverse DWT.

    Uses ``pywt.dwt``/``pywt.idwt`` along axis 0 in PyWavelets' default
    ``'symmetric'`` mode. For an odd length the reconstruction is one sample
    longer than the input; it is trimmed back to the input length (the
    reference keeps the extra sample - a documented deviation).

    Args:
      x: ``(time, leads)`` signal.
      wavelet: PyWavelets wavelet name.

    Returns:
      float64 ``(time, leads)``, same shape as ``x``.
    """
    x = _as_2d(x)
    approx, _ = pywt.dwt(x, wavelet, mode="symmetric", axis=0)
    recon = pywt.idwt(approx, None, wavelet, mode="symmetric", axis=0)
    return np.asarray(recon[: x.shape[0]], dtype=np.float64)


def resample(x: np.ndarray, fs: float, target_fs: float = TARGET_FS) -> np.ndarray:
    """FFT resampling along time to ``int(T * target_fs / fs)`` samples.

    Args:
      x: ``(T, leads)`` signal sampled at ``fs`` Hz.
      fs: input sampling rate in Hz.
      target_fs: output sampling rate in Hz (250).

    Returns:
      float64 ``(int(T * target_fs / fs), leads)``; ``x`` itself (as float64)
      when the rates are equal.
    """
    x = _as_2d(x)
    fs = _check_fs(fs)
    target_fs = _check_fs(target_fs, "target_fs")
    num = int(x.shape[0] * target_fs / fs)
    if num == x.shape[0]:
        return x
    if num == 0 or x.shape[0] == 0:
        return np.zeros((num, x.shape[1]), dtype=np.float64)
    return sps.resample(x, num, axis=0)


def cut_windows(x: np.ndarray, window: int = WINDOW_SAMPLES) -> np.ndarray:
    """Cuts non-overlapping windows from sample 0; the remainder is dropped.

    Args:
      x: ``(T, leads)`` signal.
      window: window length in samples (2500 = 10 s at 250 Hz).

    Returns:
      ``(T // window, window, leads)`` array of the same dtype (a copy), or
      ``(0, window, leads)`` when ``T < window``.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D (time, leads) array, got shape {x.shape}.")
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}.")
    window = int(window)
    n = x.shape[0] // window
    return x[: n * window].reshape(n, window, x.shape[1]).copy()


def clean_window_mask(windows: np.ndarray) -> np.ndarray:
    """The paper's clean rule on cut windows, across all leads.

    A window is clean unless some lead is exactly flat (peak-to-peak 0) or some
    sample is NaN/Inf.

    Args:
      windows: ``(n, window, leads)``.

    Returns:
      bool ``(n,)``: True for a clean window.
    """
    w = np.asarray(windows)
    if w.ndim != 3:
        raise ValueError(f"windows must be a 3-D (n, window, leads) array, got shape {w.shape}.")
    if w.shape[0] == 0 or w.shape[1] == 0 or w.shape[2] == 0:
        # No windows, or empty windows (which count as flat).
        return np.zeros(w.shape[0], dtype=bool)
    finite = np.isfinite(w).all(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        flat = (np.ptp(w, axis=1) == 0).any(axis=1)
    return finite & ~flat


# --------------------------------------------------------------------------
# the whole chain


@dataclasses.dataclass(frozen=True)
class PreprocessResult:
    """Output of :func:`preprocess_record`.

    Attributes:
      windows: ``(n_kept, 2500, leads)`` float32, the clean windows.
      window_index: ``(n_kept,)`` int32, position of each kept window among
        all cut windows (window ``i`` starts at ``i * 10`` s of the record).
      num_windows: windows cut before the clean rule.
      num_flat: windows dropped for a flat lead.
      num_nonfinite: windows dropped for NaN/Inf (takes precedence over flat).
      num_implausible: windows dropped for an implausible amplitude (neither
        non-finite nor flat).
      max_peak_mv: the largest ``|x|`` of any cut window, mV (NaN if none is finite).
      dropped: ``{window index: reason}`` of every cut window not kept
        (``non-finite``, ``flat lead`` or ``implausible amplitude (... mV)``).
    """

    windows: np.ndarray
    window_index: np.ndarray
    num_windows: int
    num_flat: int
    num_nonfinite: int
    num_implausible: int = 0
    max_peak_mv: float = float("nan")
    dropped: dict = dataclasses.field(default_factory=dict)

    @property
    def num_kept(self) -> int:
        """Number of windows kept."""
        return int(self.windows.shape[0])


def _fill_nonfinite(x: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Per-lead linear interpolation over non-finite samples, all leads at once.

    Beyond the first/last finite sample the nearest finite value is held (as
    ``np.interp`` does); a lead without any finite sample becomes 0.
    """
    t = x.shape[0]
    rows = np.arange(t)[:, None]
    # Index of the previous / next finite sample of each lead (-1 / t: none).
    prev = np.maximum.accumulate(np.where(finite, rows, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(finite, rows, t)[::-1], axis=0)[::-1]
    has_prev, has_next = prev >= 0, nxt < t
    cols = np.broadcast_to(np.arange(x.shape[1]), x.shape)
    safe = np.where(finite, x, 0.0)
    v_prev = safe[np.clip(prev, 0, t - 1), cols]
    v_next = safe[np.clip(nxt, 0, t - 1), cols]
    between = has_prev & has_next & (nxt > prev)  # only at non-finite samples
    span = np.where(between, nxt - prev, 1)
    frac = np.where(between, (rows - prev) / span, 0.0)
    interp = v_prev + frac * (v_next - v_prev)
    interp = np.where(has_prev & ~has_next, v_prev, interp)
    interp = np.where(~has_prev & has_next, v_next, interp)
    interp = np.where(~has_prev & ~has_next, 0.0, interp)
    return np.where(finite, x, interp)


def _raw_spans(num_windows: int, fs: float, total: int) -> np.ndarray:
    """Start sample of each window's raw time span ``[w*10 s, (w+1)*10 s)``,
    plus the end of the last one: ``(num_windows + 1,)`` int, within ``[0, total]``.

    Raw sample ``i`` (time ``i / fs``) belongs to window ``w`` when
    ``w*10 <= i/fs < (w+1)*10``, i.e. ``ceil(w*10*fs) <= i < ceil((w+1)*10*fs)``.
    """
    edges = np.arange(num_windows + 1, dtype=np.float64) * (WINDOW_SECONDS * fs)
    # Tolerate rounding just above an integer (e.g. 10 * 100.00000000001).
    starts = np.ceil(edges - 1e-9 * np.maximum(1.0, edges)).astype(np.int64)
    return np.clip(starts, 0, total)


def _span_any(values: np.ndarray, starts: np.ndarray, reduce_max: bool) -> np.ndarray:
    """Per-span max (or min) over ``values[starts[w]:starts[w+1]]``, along axis 0.

    Returns ``(num_windows, leads)``; an empty span gives the reduction's
    identity (-inf for max, +inf for min).
    """
    n = starts.shape[0] - 1
    ufunc = np.maximum if reduce_max else np.minimum
    ident = -np.inf if reduce_max else np.inf
    out = np.full((n, values.shape[1]), ident, dtype=np.float64)
    nonempty = starts[1:] > starts[:-1]
    if not nonempty.any():
        return out
    idx = starts[:-1][nonempty]
    # reduceat reduces values[idx[k]:idx[k+1]] (the last up to the end), so cut
    # the array at the end of the last span.
    end = int(starts[1:][nonempty][-1])
    out[nonempty] = ufunc.reduceat(values[:end], idx, axis=0)
    return out


def preprocess_record(
    signal: np.ndarray, fs: float, amplitude_range_mv: AmplitudeRange | None = DEFAULT_AMPLITUDE_RANGE
) -> PreprocessResult:
    """Runs the whole preprocessing chain on one raw record.

    Args:
      signal: raw ``(time, leads)`` record at its native rate, any real dtype
        (leads in whatever order the caller wants stored, normally canonical).
      fs: its sampling rate in Hz (> 50, since the pass band ends at 25 Hz).
      amplitude_range_mv: the plausible amplitudes of a window
        (:class:`AmplitudeRange`); None keeps every finite, non-flat window.

    Returns:
      :class:`PreprocessResult` with ``windows`` of shape
      ``(n_kept, 2500, leads)`` float32 (``(0, 2500, leads)`` when the record
      is shorter than 10 s or no window is clean).

    Raises:
      ValueError: if ``signal`` is not 2-D with at least one lead, ``fs`` is not
        a positive finite number, or ``fs <= 50`` Hz.
    """
    raw = _as_2d(signal, "signal")
    fs = _check_fs(fs)
    t, n_leads = raw.shape
    n_out = int(t * TARGET_FS / fs)
    num_windows = n_out // WINDOW_SAMPLES
    if num_windows == 0:
        return PreprocessResult(
            windows=np.zeros((0, WINDOW_SAMPLES, n_leads), dtype=np.float32),
            window_index=np.zeros((0,), dtype=np.int32),
            num_windows=0,
            num_flat=0,
            num_nonfinite=0,
        )

    finite = np.isfinite(raw)
    x = raw if finite.all() else _fill_nonfinite(raw, finite)

    # Raw-span checks (see the module docstring for why they are needed).
    starts = _raw_spans(num_windows, fs, t)
    bad_raw = _span_any((~finite).astype(np.float64), starts, True) > 0
    nonfinite = bad_raw.any(axis=1)
    span_max = _span_any(x, starts, True)
    span_min = _span_any(x, starts, False)
    # An empty span (only for absurdly low fs) gives -inf - inf, not 0: not flat.
    flat = (span_max - span_min == 0).any(axis=1)

    y = bandpass(x, fs)
    y = remove_baseline(y)
    y = wavelet_denoise(y)
    y = resample(y, fs, TARGET_FS)
    windows = cut_windows(y, WINDOW_SAMPLES).astype(np.float32)
    assert windows.shape[0] == num_windows, (windows.shape, num_windows)

    out_finite = np.isfinite(windows).all(axis=(1, 2))
    nonfinite |= ~out_finite
    with np.errstate(invalid="ignore"):
        flat |= (np.ptp(windows, axis=1) == 0).any(axis=1)
    flat &= ~nonfinite
    return _kept(windows, nonfinite, flat, amplitude_range_mv)


def _kept(windows: np.ndarray, nonfinite: np.ndarray, flat: np.ndarray, amplitudes) -> PreprocessResult:
    """The clean windows of ``windows`` ``(n, T, leads)`` and why the others go:
    non-finite, then a flat lead, then an implausible amplitude."""
    implausible = np.zeros_like(flat)
    with np.errstate(invalid="ignore", over="ignore"):
        peak = np.abs(windows.astype(np.float64)).max(axis=(1, 2))
        if amplitudes is not None:
            implausible = amplitudes.implausible(windows)[0] & ~nonfinite & ~flat
    kept = np.flatnonzero(~(nonfinite | flat | implausible))
    finite_peaks = peak[np.isfinite(peak)]
    dropped = {int(w): "non-finite" for w in np.flatnonzero(nonfinite)}
    dropped.update({int(w): "flat lead" for w in np.flatnonzero(flat)})
    dropped.update(
        {int(w): f"implausible amplitude (largest |x| {peak[w]:.3g} mV)" for w in np.flatnonzero(implausible)}
    )
    return PreprocessResult(
        windows=np.ascontiguousarray(windows[kept]),
        window_index=kept.astype(np.int32),
        num_windows=int(windows.shape[0]),
        num_flat=int(flat.sum()),
        num_nonfinite=int(nonfinite.sum()),
        num_implausible=int(implausible.sum()),
        max_peak_mv=float(finite_peaks.max()) if finite_peaks.size else float("nan"),
        dropped=dict(sorted(dropped.items())),
    )
