"""A synthetic PTB Diagnostic ECG Database (PhysioNet ptbdb 1.0.0) in its
original layout: ``RECORDS``, ``CONTROLS``, ``patientNNN/sXXXXyyy.{hea,dat}``
(testing only; layout as described in docs/data.md)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np


from leadmix_jax.synthetic._common import _choice, _label_counts, _rec_rng
from leadmix_jax.synthetic.simulator import synthesize
from leadmix_jax.synthetic.wfdb_writer import write_wfdb


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
    ("Cardiomyopathy", "ndt"),
    ("Cardiomyopathy", "lvh"),
    ("Bundle branch block", "bbb"),
    ("Dysrhythmia", "af"),
    ("Myocardial hypertrophy", "lvh"),
    ("Valvular heart disease", "lvh"),
    ("Myocarditis", "ndt"),
    ("Heart failure (NYHA 3)", "ndt"),
)
_PTB_ADDITIONAL = (
    "Arterial hypertension",
    "Diabetes mellitus",
    "Hyperlipoproteinemia",
    "Adipositas",
    "Renal insufficiency",
    "Gout",
    "no",
)
_PTB_DRUGS = (
    "ASA",
    "Nitrate",
    "Beta blocker",
    "Ca-antagonist",
    "Diuretics",
    "ACE inhibitor",
    "Heparin",
    "Digitalis",
    "Marcumar",
)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _ptb_day(d: _dt.date) -> str:
    """``29-Sep-90`` (locale-independent)."""
    return f"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year % 100:02d}"


def _ptb_date(rng, start=(1990, 1, 1), days=3 * 365) -> _dt.date:
    return _dt.date(*start) + _dt.timedelta(days=int(rng.integers(days)))


def _ptb_comments(
    rng,
    kind: str,
    reason: str,
    territory: str | None,
    age: int,
    sex: str,
    ecg_date: _dt.date,
    extra_mi_mention: bool,
) -> list[str]:
    """Header comments in PTB's layout (sections separated by empty lines)."""
    na = "n/a"
    is_mi = kind == "mi"
    loc = _choice(rng, _PTB_LOCALISATION[territory]) if is_mi else "no"
    if kind == "control":
        loc = former = additional = smoker = vessels = na
    else:
        former = "no" if rng.random() < 0.8 or not is_mi else _choice(rng, ("inferior", "anterior"))
        additional = ", ".join(
            sorted({_choice(rng, _PTB_ADDITIONAL) for _ in range(int(rng.integers(1, 3)))})
        )
        if extra_mi_mention:
            additional = "Old myocardial infarction, " + additional
        smoker = _choice(rng, ("yes", "no", "unknown"))
        vessels = str(int(rng.integers(0, 4))) if kind != "control" else na
    infarct_date = ecg_date - _dt.timedelta(days=int(rng.integers(0, 20)))
    cath = ecg_date + _dt.timedelta(days=int(rng.integers(1, 15)))
    mi_date = _ptb_day(infarct_date) if is_mi else na
    drugs = " ".join(_choice(rng, _PTB_DRUGS) for _ in range(int(rng.integers(1, 4))))
    bp = f"{int(rng.integers(10, 17)) * 10}/{int(rng.integers(6, 10)) * 10} mmHg"
    lines = [
        f"age: {age}",
        f"sex: {sex}",
        f"ECG date: {ecg_date.strftime('%d/%m/%Y')}",
        "",
        "Diagnose:",
        f"Reason for admission: {reason}",
        f"Acute infarction (localization): {loc}",
        f"Former infarction (localization): {former}",
        f"Additional diagnoses: {additional}",
        f"Smoker: {smoker}",
        f"Number of coronary vessels involved: {vessels}",
        f"Infarction date (acute): {mi_date}",
        f"Previous infarction (1) date: {na}",
        f"Previous infarction (2) date: {na}",
        "",
        "Hemodynamics:",
        f"Catheterization date: {_ptb_day(cath) if kind != 'control' else na}",
        f"Ventriculography: {('Hypokinesia ' + territory + ' wall') if is_mi else na}",
        f"Chest X-ray: {_choice(rng, ('Heart size normal', 'Heart size upper limit of norm', na))}",
        f"Peripheral blood Pressure (syst/diast):  {bp}",
        f"Pulmonary artery pressure (at rest) (syst/diast): {na}",
        f"Left ventricular enddiastolic pressure: {na}",
        f"Echocardiography: {na}",
        "",
        "Therapy:",
        f"Infarction date: {mi_date}",
        f"Admission date: {_ptb_day(ecg_date)}",
        f"Medication pre admission: {drugs if kind != 'control' else na}",
        f"In hospital medication: {drugs if kind != 'control' else na}",
    ]
    return lines


def write_ptb(
    root,
    n_patients: int,
    seed: int,
    *,
    seconds: tuple[float, float] = (30.0, 60.0),
    fs: int = 1000,
    p_mi: float = 0.55,
    p_control: float = 0.2,
    p_multi: float = 0.25,
    p_xyz: float = 0.5,
    noise: float = 1.0,
    lengths: tuple[tuple[float, float], ...] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
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

    Record lengths are uniform in ``seconds``, or drawn from ``lengths``
    (``(seconds, weight)`` pairs) when given. Patients are written in order
    (record numbers run on from one patient to the next); ``progress``
    prints a line about every 10 %.

    Returns:
      ``{'db': 'ptb', 'n_records', 'n_patients', 'labels': {mi, normal,
      other}, 'labels_alt': ..., 'records': [{'record', 'patient', 'label',
      'label_alt', 'territory', 'xyz', 'n_samples', 'reason'}...]}``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    prng = _rec_rng(seed, 1, -1)
    kinds = _ptb_kinds(prng, n_patients, p_mi, p_control)
    # With >= 2 "other" patients, the first one is always the edge case of an
    # admission that mentions an old myocardial infarction.
    first_other = kinds.index("other") if kinds.count("other") >= 2 else -1
    opts = dict(seconds=seconds, fs=fs, p_multi=p_multi, p_xyz=p_xyz, noise=noise, lengths=lengths)
    records: list[dict] = []
    rec_no = int(prng.integers(1, 20))
    pat_no = 0
    for p, kind in enumerate(kinds):
        pat_no += 1 + int(prng.random() < 0.1)
        patient_records, rec_no = _write_ptb_patient(
            root, _rec_rng(seed, 1, p), f"patient{pat_no:03d}", kind, p == first_other, rec_no, **opts
        )
        records += patient_records
        if progress and ((p + 1) % max(1, len(kinds) // 10) == 0 or p + 1 == len(kinds)):
            print(f"ptb: {p + 1}/{len(kinds)} patients, {len(records)} records", flush=True)
    with open(root / "RECORDS", "w", newline="") as fh:
        fh.write("".join(f"{x['record']}\n" for x in records))
    with open(root / "CONTROLS", "w", newline="") as fh:
        fh.write("".join(f"{x['record']}\n" for x in records if x["reason"] == "Healthy control"))
    return {
        "db": "ptb",
        "n_records": len(records),
        "n_patients": len({x["patient"] for x in records}),
        "labels": _label_counts(records, "label"),
        "labels_alt": _label_counts(records, "label_alt"),
        "records": records,
    }


def _ptb_kinds(prng: np.random.Generator, n_patients: int, p_mi: float, p_control: float) -> list[str]:
    """Each patient's kind (``mi``, ``control``, ``other``), shuffled."""
    n_mi = max(1, int(round(n_patients * p_mi))) if n_patients >= 3 else 1
    n_ctrl = max(1, int(round(n_patients * p_control))) if n_patients >= 3 else 0
    kinds = ["mi"] * n_mi + ["control"] * n_ctrl
    kinds += ["other"] * max(0, n_patients - len(kinds))
    kinds = kinds[:n_patients]
    prng.shuffle(kinds)
    return kinds


def _ptb_admission(r: np.random.Generator, kind: str, is_first_other: bool):
    """``(reason, condition, mentions an old MI)`` of a patient's admission."""
    if kind == "mi":
        return "Myocardial infarction", None, False
    if kind == "control":
        return "Healthy control", None, False
    reason, condition = _PTB_OTHER[int(r.integers(len(_PTB_OTHER)))]
    if r.random() < 0.1 or is_first_other:
        return "Unstable angina", None, True
    return reason, condition, False


def _write_ptb_patient(
    root: Path, r: np.random.Generator, patient: str, kind: str, is_first_other: bool, rec_no: int, **opts
) -> tuple[list[dict], int]:
    """Writes one patient's records (``r``: the patient's generator); returns
    their summaries and the last record number used."""
    n_rec = 1 + (int(r.integers(1, 4)) if r.random() < opts["p_multi"] else 0)
    age = int(r.integers(17, 88))
    sex = "male" if r.random() < 0.7 else "female"
    territory = (
        str(r.choice(list(_PTB_LOCALISATION), p=[0.35, 0.3, 0.08, 0.1, 0.12, 0.05])) if kind == "mi" else None
    )
    reason, condition, mention = _ptb_admission(r, kind, is_first_other)
    ecg_date = _ptb_date(r)
    records = []
    for j in range(n_rec):
        rec_no += 1 + int(r.random() < 0.05)
        suffix = "_re" if r.random() < 0.5 else "lre"
        record = f"s{rec_no:04d}{suffix}"
        if opts["lengths"]:
            options, weights = zip(*opts["lengths"])
            secs = float(r.choice(options, p=np.asarray(weights) / np.sum(weights)))
        else:
            secs = float(r.uniform(*opts["seconds"]))
        sig, info = synthesize(
            r,
            opts["fs"],
            secs,
            kind == "mi" or mention,
            territory if kind == "mi" else ("inferior" if mention else None),
            condition=condition,
            stage="old" if mention else None,
            noise=opts["noise"],
        )
        frank = info.vcg * np.array([1.0, 1.0, -1.0], dtype=np.float32)  # vz: posterior +
        frank = frank + (0.01 * opts["noise"]) * r.standard_normal(frank.shape).astype(np.float32)
        has_xyz = bool(r.random() < opts["p_xyz"])
        date = ecg_date + _dt.timedelta(days=3 * j)
        comments = _ptb_comments(r, kind, reason, territory, age, sex, date, mention)
        write_wfdb(
            root / patient,
            record,
            [(f"{record}.dat", sig, list(PTB_LEADS)), (f"{record}.xyz", frank, list(PTB_FRANK))],
            opts["fs"],
            "2000",
            2000.0,
            comments=comments,
            newline="\r\n" if suffix == "_re" else "\n",
            signed_checksum=True,
            zero_fields=suffix == "lre",
            write_files={f"{record}.dat"} | ({f"{record}.xyz"} if has_xyz else set()),
        )
        label = "mi" if (kind == "mi" or mention) else ("normal" if kind == "control" else "other")
        records.append(
            {
                "record": f"{patient}/{record}",
                "patient": patient,
                "label": label,
                "label_alt": {"mi": "mi", "control": "normal"}.get(kind, "other"),
                "territory": info.territory,
                "reason": reason,
                "xyz": has_xyz,
                "n_samples": info.n_samples,
            }
        )
    return records, rec_no
