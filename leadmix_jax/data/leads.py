"""The 12 standard ECG leads: canonical order, name parsing and lead sets.

Datasets store every example with all 12 leads in the canonical order
``I, II, III, aVR, aVL, aVF, V1 .. V6``; a model sees a subset chosen at load
time by :func:`lead_indices`, in the order the user asked for (the order is
part of a checkpoint, since it fixes the stem's input channels).
"""

from __future__ import annotations

import re

from collections.abc import Iterable, Sequence

CANONICAL_LEADS: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)
NUM_LEADS = len(CANONICAL_LEADS)

_BY_KEY = {name.lower(): i for i, name in enumerate(CANONICAL_LEADS)}

# The paper's seven lead sets, in the channel order of
# the paper's files (the 12-lead and limb sets put aVL before aVR).
LEAD_SETS: dict[str, tuple[str, ...]] = {
    "chest": ("V1", "V2", "V3", "V4", "V5", "V6"),
    "limb": ("I", "II", "III", "aVL", "aVR", "aVF"),
    "all12": ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II", "III", "aVL", "aVR", "aVF"),
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5"),
    "I-II-V3": ("I", "II", "V3"),
    "V1-V3-V5": ("V1", "V3", "V5"),
}
_SET_KEY = {name.lower(): name for name in LEAD_SETS}
_SET_ALIASES = {"all": "all12", "12": "all12", "all 12": "all12", "twelve": "all12"}


def canonical_name(name: str) -> str:
    """Returns the canonical spelling of one lead name, any case ('avl' -> 'aVL').

    Raises:
      ValueError: naming the valid leads if ``name`` is not a standard lead.
    """
    key = str(name).strip().lower()
    if key not in _BY_KEY:
        raise ValueError(f"Unknown lead {name!r}; valid leads are {', '.join(CANONICAL_LEADS)} (any case).")
    return CANONICAL_LEADS[_BY_KEY[key]]


def lead_index(name: str) -> int:
    """Index of one lead in the canonical 12-lead order."""
    return _BY_KEY[canonical_name(name).lower()]


def parse_leads(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Parses a lead specification into canonical lead names, in the given order.

    Args:
      spec: a paper lead-set name (``'inferior'``, ``'limb'``, ``'all12'``,
        ``'I-II-V3'`` ...), a comma-separated list of lead names
        (``'II,III,aVF'``, any case) or a sequence of lead names.

    Returns:
      Tuple of canonical names, e.g. ``('II', 'III', 'aVF')``.

    Raises:
      ValueError: on an empty spec, an unknown lead (naming the valid leads
        and lead sets) or a duplicated lead.
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        key = _SET_ALIASES.get(key, key)
        if key in _SET_KEY:
            return LEAD_SETS[_SET_KEY[key]]
        names: Iterable[str] = [p for p in spec.split(",") if p.strip()]
    else:
        names = spec
    try:
        leads = tuple(canonical_name(n) for n in names)
    except ValueError as err:
        raise ValueError(f"{err} Lead sets by name: {', '.join(LEAD_SETS)}.") from None
    if not leads:
        raise ValueError(
            f"Empty lead specification {spec!r}; give lead names such as 'II,III,aVF' "
            f"or a lead set: {', '.join(LEAD_SETS)}."
        )
    seen: set[str] = set()
    dups = [n for n in leads if n in seen or seen.add(n)]
    if dups:
        raise ValueError(f"Duplicated lead(s) {', '.join(dups)} in {spec!r}.")
    return leads


def lead_indices(spec: str | Sequence[str]) -> tuple[int, ...]:
    """Channel indices into the canonical 12-lead array, in the order given.

    ``lead_indices('II,III,aVF') == (1, 2, 5)``.
    """
    return tuple(lead_index(n) for n in parse_leads(spec))


def reorder_to_canonical(names: Sequence[str]) -> list[int]:
    """For a record whose channels are named ``names`` (any case, any order,
    possibly with extra non-standard channels), returns for each canonical lead
    the position of that lead in ``names``.

    Raises:
      ValueError: naming the standard leads the record lacks.
    """
    pos: dict[str, int] = {}
    for i, n in enumerate(names):
        key = str(n).strip().lower()
        if key in _BY_KEY and key not in pos:
            pos[key] = i
    missing = [c for c in CANONICAL_LEADS if c.lower() not in pos]
    if missing:
        raise ValueError(f"Record lacks lead(s) {', '.join(missing)} (has {list(names)}).")
    return [pos[c.lower()] for c in CANONICAL_LEADS]


def parse_lead_sets(spec: str) -> list[tuple[str, tuple[str, ...]]]:
    """``'inferior;lateral;II,V2'`` or ``'paper'`` (every paper set) -> ``[(name, leads)]``.

    Lead sets are separated by ``;`` (a set may be a comma-separated lead
    list); when no ``;`` is present and every comma-separated item is a
    paper set name, commas separate sets (``inferior,lateral``). Names are
    :func:`set_name`'s.
    """
    spec = str(spec or "").strip()
    if spec.lower() == "paper":
        return [(n, tuple(m)) for n, m in LEAD_SETS.items()]
    if ";" in spec:
        items = [s for s in spec.split(";") if s.strip()]
    else:
        parts = [s for s in spec.split(",") if s.strip()]
        set_keys = {k.lower() for k in LEAD_SETS} | {"all", "12"}
        items = (
            parts if parts and all(p.strip().lower() in set_keys for p in parts) else ([spec] if spec else [])
        )
    out = []
    for item in items:
        leads = parse_leads(item.strip())
        out.append((set_name(leads), leads))
    return out


def set_name(leads: Sequence[str], any_order: bool = True) -> str:
    """The paper's set name when ``leads`` are one (in any order, or with
    ``any_order=False`` in the set's own order), else the leads joined by '-'."""
    leads = tuple(leads)
    for name, members in LEAD_SETS.items():
        if members == leads or (any_order and set(members) == set(leads) and len(members) == len(leads)):
            return name
    return "-".join(leads)


def slug(text: str) -> str:
    """``text`` (a lead-set name, an evaluation target) as a file-name part:
    runs of characters other than letters, digits, ``.``, ``_`` and ``-``
    become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
