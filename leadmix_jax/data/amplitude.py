"""The clean rule's amplitude check: what a filtered 10-s ECG window in mV can look like.

Records that pass every format check can still hold numbers no ECG has: a
record stored in uV, a header gain wrong by 1000, a signal file of random
bytes of the right size, one lead multiplied by 1e30. Built into a dataset,
one of them inflates a lead's normalisation statistics by orders of
magnitude; at prediction it becomes a diagnosis. The same rule runs in the
build and in prediction (:func:`leadmix_jax.data.preprocessing.preprocess_record`).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class AmplitudeRange:
    """The amplitudes a filtered 10-s ECG window can have, in mV.

    A window is implausible when its largest lead peak ``max |x|`` exceeds
    ``max_peak_mv``, or stays below ``min_peak_mv`` (every lead nearly zero:
    a gain wrong by 1000), or when some lead's typical value ``median |x|``
    exceeds ``max_median_mv`` (an ECG is near its baseline most of the time;
    noise is not). The defaults and their source: ``docs/data.md``
    ("Plausible amplitudes"), measured on real PTB-XL and PTB records with
    ``bench/amplitude_survey.py``.
    """

    max_peak_mv: float = 40.0
    min_peak_mv: float = 0.05
    max_median_mv: float = 2.5

    @classmethod
    def parse(cls, spec) -> "AmplitudeRange | None":
        """From ``config.amplitude_range_mv`` (``'min_peak,max_peak,max_median'``
        or a tuple); ``''``/``None`` switches the rule off."""
        if spec in (None, ""):
            return None
        values = [float(v) for v in (spec.split(",") if isinstance(spec, str) else spec)]
        if len(values) != 3 or not 0 <= values[0] < values[1] or values[2] <= 0:
            raise ValueError(
                f"amplitude range {spec!r}: give min_peak,max_peak,max_median in mV, 0 <= min < max, median > 0"
            )
        return cls(min_peak_mv=values[0], max_peak_mv=values[1], max_median_mv=values[2])

    def spec(self) -> str:
        return f"{self.min_peak_mv:g},{self.max_peak_mv:g},{self.max_median_mv:g}"

    def implausible(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(implausible (n,) bool, largest lead peak (n,) mV)`` of windows ``(n, T, leads)``."""
        magnitude = np.abs(np.asarray(windows, np.float64))
        peak = magnitude.max(axis=1).max(axis=1)
        median = np.median(magnitude, axis=1).max(axis=1)
        bad = (peak > self.max_peak_mv) | (peak < self.min_peak_mv) | (median > self.max_median_mv)
        return bad, peak


DEFAULT_AMPLITUDE_RANGE = AmplitudeRange()
