"""Tests of leadmix_jax.data.preprocessing."""

import numpy as np
import pytest

from leadmix_jax.data import preprocessing as pp


def _sine(freq, fs, seconds, leads=1, amp=1.0):
    t = np.arange(int(round(seconds * fs))) / fs
    return np.tile(amp * np.sin(2 * np.pi * freq * t)[:, None], (1, leads))


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def _ecg_like(seconds, fs, leads=12, seed=0):
    """Smooth random multi-lead signal with in-band content and some drift."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * fs))) / fs
    freqs = rng.uniform(1.0, 20.0, size=(6, leads))
    phases = rng.uniform(0, 2 * np.pi, size=(6, leads))
    amps = rng.uniform(0.1, 1.0, size=(6, leads))
    x = (amps * np.sin(2 * np.pi * freqs * t[:, None, None] + phases)).sum(axis=1)
    x += 0.3 * np.sin(2 * np.pi * 0.05 * t)[:, None] + rng.normal(0, 0.05, x.shape)
    return x


# ---------------------------------------------------------------- bandpass


def test_bandpass_keeps_passband_amplitude():
    fs = 500
    x = _sine(10.0, fs, 20)
    y = pp.bandpass(x, fs)
    assert y.shape == x.shape
    mid = slice(5 * fs, 15 * fs)  # away from the edges
    amp_in = np.ptp(x[mid]) / 2
    amp_out = np.ptp(y[mid]) / 2
    assert abs(amp_out / amp_in - 1) < 0.05


@pytest.mark.parametrize("freq", [0.1, 60.0])
def test_bandpass_attenuates_stopband(freq):
    fs = 500
    x = _sine(freq, fs, 60)
    y = pp.bandpass(x, fs)
    mid = slice(20 * fs, 40 * fs)
    gain_db = 20 * np.log10(_rms(y[mid]) / _rms(x[mid]))
    assert gain_db <= -20, gain_db


def test_bandpass_is_vectorised_over_leads():
    x = _ecg_like(12, 500, leads=4)
    y = pp.bandpass(x, 500)
    for j in range(4):
        np.testing.assert_allclose(y[:, j], pp.bandpass(x[:, j : j + 1], 500)[:, 0], rtol=1e-10, atol=1e-12)


def test_bandpass_rejects_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        pp.bandpass(np.zeros(1000), 500)
    with pytest.raises(ValueError, match="positive"):
        pp.bandpass(np.zeros((1000, 2)), 0)
    with pytest.raises(ValueError, match="positive"):
        pp.bandpass(np.zeros((1000, 2)), -250)
    with pytest.raises(ValueError, match="fs/2"):
        pp.bandpass(np.zeros((1000, 2)), 40)


# ---------------------------------------------------------------- baseline


def test_remove_baseline_zero_mean():
    x = _ecg_like(3, 500, leads=3) + np.array([1.0, -2.0, 5.0])
    y = pp.remove_baseline(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y - x, np.broadcast_to(y[0] - x[0], x.shape), atol=1e-12)


# ---------------------------------------------------------------- wavelet


@pytest.mark.parametrize("n", [2500, 2501, 7001, 17, 16])
def test_wavelet_denoise_preserves_length(n):
    x = np.random.default_rng(n).normal(size=(n, 3))
    y = pp.wavelet_denoise(x)
    assert y.shape == x.shape
    assert y.dtype == np.float64


def test_wavelet_denoise_smooths_and_keeps_slow_signal():
    fs = 500
    slow = _sine(5.0, fs, 4, leads=2)
    noise = np.random.default_rng(0).normal(0, 0.2, slow.shape)
    y = pp.wavelet_denoise(slow + noise)
    mid = slice(100, -100)
    # A slow sine goes through almost untouched; white noise loses about half its power.
    np.testing.assert_allclose(pp.wavelet_denoise(slow)[mid], slow[mid], atol=1e-3)
    assert _rms(y[mid] - slow[mid]) < 0.8 * _rms(noise[mid])


# ---------------------------------------------------------------- resample


@pytest.mark.parametrize(
    "fs,expected",
    [
        (1000, 1750),
        (500, 1750),
        (250, 1750),
        (100, 1750),
    ],
)
def test_resample_lengths_whole_seconds(fs, expected):
    x = np.zeros((7 * fs, 2))
    assert pp.resample(x, fs).shape == (expected, 2)


@pytest.mark.parametrize("fs", [1000, 500, 250, 100])
def test_resample_lengths_odd(fs):
    n = 7 * fs + 1  # 7 s plus one sample
    x = np.random.default_rng(fs).normal(size=(n, 3))
    y = pp.resample(x, fs)
    assert y.shape == (int(n * 250 / fs), 3)
    assert y.shape[0] == {1000: 1750, 500: 1750, 250: 1751, 100: 1752}[fs]


def test_resample_preserves_sine():
    fs = 1000
    x = _sine(5.0, fs, 4)
    y = pp.resample(x, fs)
    np.testing.assert_allclose(y, _sine(5.0, 250, 4), atol=1e-6)


# ---------------------------------------------------------------- windows


def test_cut_windows_counts():
    x = np.arange(25 * 250 * 2, dtype=np.float64).reshape(-1, 2)  # 25 s at 250 Hz
    w = pp.cut_windows(x)
    assert w.shape == (2, 2500, 2)
    np.testing.assert_array_equal(w[1], x[2500:5000])
    assert pp.cut_windows(np.zeros((2475, 3))).shape == (0, 2500, 3)


def test_clean_window_mask():
    w = np.random.default_rng(0).normal(size=(4, 100, 3))
    w[1, :, 2] = 0.7  # flat lead
    w[2, 50, 0] = np.nan  # NaN
    w[3, 10, 1] = -np.inf  # Inf
    np.testing.assert_array_equal(pp.clean_window_mask(w), [True, False, False, False])
    assert pp.clean_window_mask(np.zeros((0, 2500, 12))).shape == (0,)
    with pytest.raises(ValueError, match="3-D"):
        pp.clean_window_mask(np.zeros((2500, 12)))


# ---------------------------------------------------------------- whole chain


def test_preprocess_record_shapes_and_dtype():
    fs = 500
    x = _ecg_like(25, fs, leads=12)
    r = pp.preprocess_record(x, fs)
    assert r.windows.shape == (2, 2500, 12)
    assert r.windows.dtype == np.float32
    assert r.window_index.dtype == np.int32
    np.testing.assert_array_equal(r.window_index, [0, 1])
    assert (r.num_windows, r.num_flat, r.num_nonfinite) == (2, 0, 0)
    assert np.isfinite(r.windows).all()


@pytest.mark.parametrize("fs", [1000, 500, 250, 100])
def test_preprocess_record_short_record_is_empty(fs):
    x = _ecg_like(9.9, fs, leads=12)
    r = pp.preprocess_record(x, fs)
    assert r.windows.shape == (0, 2500, 12)
    assert r.windows.dtype == np.float32
    assert r.window_index.shape == (0,)
    assert r.window_index.dtype == np.int32
    assert (r.num_windows, r.num_flat, r.num_nonfinite) == (0, 0, 0)


@pytest.mark.parametrize("fs", [1000, 500, 100])
def test_preprocess_record_window_counts_across_rates(fs):
    x = _ecg_like(35, fs, leads=2)[: 35 * fs - 1]  # just under 35 s
    r = pp.preprocess_record(x, fs)
    assert r.num_windows == 3 and r.windows.shape == (3, 2500, 2)


def test_flat_lead_in_one_window_drops_exactly_that_window():
    fs = 500
    x = _ecg_like(40, fs, leads=12)
    x[10 * fs : 20 * fs, 4] = 0.25  # lead aVL disconnected during window 1
    r = pp.preprocess_record(x, fs)
    np.testing.assert_array_equal(r.window_index, [0, 2, 3])
    assert (r.num_windows, r.num_flat, r.num_nonfinite) == (4, 1, 0)
    # The output of that window is not exactly flat: only the raw check sees it.
    full = pp.cut_windows(
        pp.resample(pp.wavelet_denoise(pp.remove_baseline(pp.bandpass(x, fs))), fs).astype(np.float32)
    )
    assert pp.clean_window_mask(full).all()


def test_flat_lead_over_whole_record_drops_all_windows():
    fs = 1000
    x = _ecg_like(30, fs, leads=12)
    x[:, 7] = -1.5
    r = pp.preprocess_record(x, fs)
    assert r.windows.shape == (0, 2500, 12)
    assert (r.num_windows, r.num_flat, r.num_nonfinite) == (3, 3, 0)


def test_short_flat_stretch_is_not_flat():
    fs = 500
    x = _ecg_like(20, fs, leads=3)
    x[12 * fs : 15 * fs, 0] = 0.0  # flat for 3 s of window 1 only
    r = pp.preprocess_record(x, fs)
    assert (r.num_windows, r.num_flat) == (2, 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_in_one_window_drops_exactly_that_window(bad):
    fs = 500
    x = _ecg_like(40, fs, leads=12)
    clean = pp.preprocess_record(x, fs)
    x[25 * fs + 123, 3] = bad  # window 2
    r = pp.preprocess_record(x, fs)
    np.testing.assert_array_equal(r.window_index, [0, 1, 3])
    assert (r.num_windows, r.num_flat, r.num_nonfinite) == (4, 0, 1)
    assert np.isfinite(r.windows).all()
    # The kept windows are barely touched by the repaired sample.
    np.testing.assert_allclose(r.windows, clean.windows[[0, 1, 3]], atol=1e-4)


def test_nonfinite_stretch_and_whole_lead():
    fs = 1000
    x = _ecg_like(50, fs, leads=12)
    x[19 * fs : 21 * fs, 0] = np.nan  # spans windows 1 and 2
    r = pp.preprocess_record(x, fs)
    np.testing.assert_array_equal(r.window_index, [0, 3, 4])
    assert r.num_nonfinite == 2 and r.num_flat == 0
    assert np.isfinite(r.windows).all()

    x = _ecg_like(30, fs, leads=12)
    x[:, 5] = np.nan  # lead entirely missing
    r = pp.preprocess_record(x, fs)
    assert r.windows.shape == (0, 2500, 12)
    assert (r.num_windows, r.num_flat, r.num_nonfinite) == (3, 0, 3)


def test_nonfinite_and_flat_windows_counted_once():
    fs = 500
    x = _ecg_like(30, fs, leads=2)
    x[: 10 * fs, 0] = 1.0
    x[5, 0] = np.nan  # window 0: flat and NaN -> counted as non-finite
    x[15 * fs :, 1] = 2.0  # window 2 flat (window 1 only partly)
    r = pp.preprocess_record(x, fs)
    np.testing.assert_array_equal(r.window_index, [1])
    assert (r.num_windows, r.num_flat, r.num_nonfinite) == (3, 1, 1)


def test_fill_nonfinite_interpolates_linearly():
    x = np.array(
        [
            [np.nan, 1.0, np.nan],
            [1.0, np.nan, np.nan],
            [np.nan, np.nan, np.nan],
            [3.0, 4.0, np.nan],
            [np.inf, np.nan, np.nan],
        ]
    )
    y = pp._fill_nonfinite(x, np.isfinite(x))
    expected = np.array([[1.0, 1.0, 0.0], [1.0, 2.0, 0.0], [2.0, 3.0, 0.0], [3.0, 4.0, 0.0], [3.0, 4.0, 0.0]])
    np.testing.assert_allclose(y, expected)
    ref = np.interp(np.arange(5), np.flatnonzero(np.isfinite(x[:, 0])), x[np.isfinite(x[:, 0]), 0])
    np.testing.assert_allclose(y[:, 0], ref)


@pytest.mark.parametrize("fs", [1000, 500])
def test_preprocess_record_is_vectorised_over_leads(fs):
    x = _ecg_like(32, fs, leads=12, seed=3)
    r = pp.preprocess_record(x, fs)
    assert r.windows.shape == (3, 2500, 12)
    for j in range(12):
        rj = pp.preprocess_record(x[:, j : j + 1], fs)
        np.testing.assert_array_equal(rj.window_index, r.window_index)
        np.testing.assert_allclose(rj.windows[..., 0], r.windows[..., j], rtol=1e-5, atol=1e-6)


def test_preprocess_record_accepts_integer_input():
    fs = 500
    x = (_ecg_like(10, fs, leads=3) * 1000).astype(np.int16)  # ADC counts of 1 uV, not mV:
    r = pp.preprocess_record(x, fs, amplitude_range_mv=None)  # the amplitude rule would drop them
    assert r.windows.shape == (1, 2500, 3) and r.windows.dtype == np.float32


def test_preprocess_record_validation():
    with pytest.raises(ValueError, match="2-D"):
        pp.preprocess_record(np.zeros(5000), 500)
    with pytest.raises(ValueError, match="2-D"):
        pp.preprocess_record(np.zeros((2, 5000, 12)), 500)
    with pytest.raises(ValueError, match="positive"):
        pp.preprocess_record(np.zeros((5000, 12)), 0)
    with pytest.raises(ValueError, match="positive"):
        pp.preprocess_record(np.zeros((5000, 12)), float("nan"))
    with pytest.raises(ValueError, match="lead"):
        pp.preprocess_record(np.zeros((5000, 0)), 500)
