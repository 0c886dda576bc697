"""A synthetic SPH database in its original layout: ``metadata.csv`` and
``records/<ECG_ID>.h5`` (testing only; docs/data.md)."""

from __future__ import annotations

import csv
import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np


from leadmix_jax.synthetic._common import _choice, _label_counts, _rec_rng, map_records, patients_of_records
from leadmix_jax.synthetic.simulator import synthesize


# ---------------------------------------------------------------------------
# SPH (Shandong Provincial Hospital)
# ---------------------------------------------------------------------------

SPH_COLUMNS = ("ECG_ID", "AHA_Code", "Patient_ID", "Age", "Sex", "N", "Date")
_SPH_MI_PRIMARY = {"160": "anterior", "161": "inferior", "165": "anterior", "166": "anterolateral"}
_SPH_OTHER = (  # (AHA code, condition, hr range)
    ("22", None, (45, 58)),
    ("23", None, None),
    ("22;23", None, (45, 58)),
    ("21", None, (101, 120)),
    ("147", "ndt", None),
    ("146", "ndt", None),
    ("145+362", "ndt", None),
    ("105", "bbb", None),
    ("106", "bbb", None),
    ("22;147", "ndt", (45, 58)),
    ("50", "af", (70, 110)),
    ("50+346", "af", (70, 110)),
    ("142", "lvh", None),
    ("82", "avb", None),
)


# Label-rule edge cases, each placed once in any database of >= 40 records:
# (AHA code, MI territory or None, condition, heart-rate range or None).
_SPH_EDGE = (
    ("50+161", "inferior", "af", (70, 110)),
    ("165;22", "anterior", None, (45, 58)),
    ("166+332;146", "anterolateral", None, None),
    ("160", "anterior", None, None),
    ("162", "posterior", None, None),
    ("163+332", "lateral", None, None),
    ("22;23", None, None, (45, 58)),
    ("1", None, None, None),
)


def _sph_label(code: str) -> str:
    parts = {p.strip() for p in code.replace(",", ";").replace("+", ";").split(";") if p.strip()}
    if any(p.startswith(("160", "161", "165", "166")) for p in parts):
        return "mi"
    return "normal" if parts == {"1"} else "other"


def write_sph_record(
    path, sig_mv: np.ndarray, *, quantum: float | None = None, compress: bool = False
) -> None:
    """Writes one SPH record: dataset ``ecg`` float32 ``(12, N)`` from a
    ``(N, 12)`` canonical-order signal in mV.

    Args:
      quantum: round to multiples of this many mV first (e.g. 1/256: exact in
        float32 and compresses well), or None.
      compress: gzip with shuffle (small files for checked-in dummy data).
    """
    import h5py

    data = np.ascontiguousarray(np.asarray(sig_mv, np.float64).T)
    if quantum:
        data = np.round(data / quantum) * quantum
    opts = dict(compression="gzip", compression_opts=9, shuffle=True) if compress else {}
    with h5py.File(path, "w") as fh:
        fh.create_dataset("ecg", data=data.astype(np.float32), **opts)


def write_sph(
    root,
    n_records: int,
    seed: int,
    *,
    max_samples: int = 30000,
    p_long: float = 0.15,
    p_multi: float = 0.05,
    noise: float = 1.0,
    label_cuts: tuple[float, float, float] = (0.5, 0.72, 0.76),
    records_per_patient: tuple[float, ...] | None = None,
    length_table: tuple[tuple[int, float], ...] | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
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

    The real database's proportions (:mod:`leadmix_jax.synthetic.full_size`)
    come from ``label_cuts`` (cumulative probabilities of normal, MI under the
    paper's rule, and MI-like codes it excludes; the rest other codes),
    ``records_per_patient`` (probabilities of 1, 2, ... records; default:
    ``p_multi``) and ``length_table`` (``(N samples, weight)`` pairs; default:
    ``p_long``). ``workers`` > 1 writes records in parallel processes (the same
    files); ``progress`` prints a line about every 10 %.

    Returns:
      summary dict like :func:`write_ptb` (``records`` with ``ecg_id``,
      ``patient_id``, ``aha``, ``label``, ``n``).
    """
    root = Path(root)
    (root / "records").mkdir(parents=True, exist_ok=True)
    prng = _rec_rng(seed, 3, -1)
    pat = patients_of_records(prng, n_records, p_multi, records_per_patient)
    n_pat = (pat[-1] + 1) if pat else 0
    ages = prng.integers(18, 90, n_pat)
    sexes = np.where(prng.random(n_pat) < 0.55, "M", "F")
    lengths = np.arange(5500, max(max_samples, 5500) + 1, 500)
    forced: dict[int, int] = {}
    if n_records >= 5 * len(_SPH_EDGE):
        forced = dict(
            zip(prng.choice(n_records, len(_SPH_EDGE), replace=False).tolist(), range(len(_SPH_EDGE)))
        )
    shape = dict(lengths=lengths, p_long=p_long, max_samples=max_samples, table=length_table)
    jobs = [
        (root, seed, i, (f"S{pat[i] + 1:05d}", str(int(ages[pat[i]])), str(sexes[pat[i]])), forced.get(i))
        + (shape, label_cuts, noise)
        for i in range(n_records)
    ]
    done = map_records(_sph_job, jobs, workers, "sph" if progress else "")
    rows, records = [row for row, _ in done], [record for _, record in done]
    with open(root / "metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(SPH_COLUMNS)
        w.writerows(rows)
    return {
        "db": "sph",
        "n_records": len(records),
        "n_patients": n_pat,
        "labels": _label_counts(records, "label"),
        "records": records,
    }


def _sph_job(root, seed, i, patient, edge, shape, cuts, noise):
    return _write_sph_record(root, _rec_rng(seed, 3, i), i, patient, edge, shape, cuts, noise)


def _sph_diagnosis(r: np.random.Generator, edge: int | None, cuts=(0.5, 0.72, 0.76)):
    """``(AHA code, mi, territory, condition, heart rate)`` of one record
    (``edge``: the index of a forced edge case in ``_SPH_EDGE``; ``cuts``:
    cumulative probabilities of normal, MI, excluded MI-like codes)."""
    u = r.random()
    mi, territory, condition, hr = False, None, None, None
    if edge is not None:
        code, territory, condition, hr_rng = _SPH_EDGE[edge]
        mi = territory is not None
        hr = float(r.uniform(*hr_rng)) if hr_rng else None
    elif u < cuts[0]:
        code = "1"
    elif u < cuts[1]:
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
    elif u < cuts[2]:
        prim = _choice(r, ("162", "163"))
        mi, territory = True, "posterior" if prim == "162" else "lateral"
        code = prim + ("+332" if r.random() < 0.5 else "")
    else:
        code, condition, hr_rng = _SPH_OTHER[int(r.integers(len(_SPH_OTHER)))]
        hr = float(r.uniform(*hr_rng)) if hr_rng else None
    return code, mi, territory, condition, hr


def _write_sph_record(root: Path, r, i: int, patient, edge, shape: dict, cuts, noise):
    """Writes record ``i`` (``r``: its generator; ``patient``: id, age, sex;
    ``shape``: how long records are); returns its ``metadata.csv`` row and its summary."""
    ecg_id = f"A{i + 1:05d}"
    code, mi, territory, condition, hr = _sph_diagnosis(r, edge, cuts)
    if shape["table"] is not None:
        sizes, weights = zip(*shape["table"])
        n = int(r.choice(sizes, p=np.asarray(weights) / np.sum(weights)))
    elif r.random() >= shape["p_long"] or shape["max_samples"] <= 5000:
        n = 5000
    else:
        n = int(shape["lengths"][min(int(r.exponential(3.0)), len(shape["lengths"]) - 1)])
    sig, info = synthesize(r, 500, n / 500, mi, territory, condition=condition, hr=hr, noise=noise)
    write_sph_record(root / "records" / f"{ecg_id}.h5", sig)
    date = _dt.date(2019, 1, 1) + _dt.timedelta(days=int(r.integers(0, 700)))
    pid, age, sex = patient
    label = _sph_label(code)
    record = {
        "ecg_id": ecg_id,
        "patient_id": pid,
        "aha": code,
        "label": label,
        "label_alt": label,
        "territory": info.territory,
        "n": n,
    }
    return [ecg_id, code, pid, age, sex, str(n), date.isoformat()], record
