"""Label rules of the three databases: MI = 1, normal = 0, anything else excluded.

Every rule is defined once, here (the paper's rules; see docs/data.md). Two rule
sets exist, named like the builders' configs:

``paper`` (the default, so results compare with the paper)
  * PTB: the header comments, joined and lower-cased, contain
    ``myocardial infarction`` -> MI (checked first); else the record is listed
    in ``CONTROLS`` -> normal (where ``CONTROLS`` is absent:
    ``Reason for admission: Healthy control``).
  * PTB-XL: ``scp_codes`` holds any of IMI, ASMI, ILMI, AMI, ALMI (at any
    likelihood, even 0) -> MI; otherwise ``NORM`` present -> normal.
  * SPH: ``AHA_Code`` split on ``,`` ``;`` ``+``; any code starting with 160,
    161, 165 or 166 -> MI; the set of codes exactly ``{'1'}`` -> normal.

``mi_superclass`` (the field's standard alternative)
  * PTB: the structured ``Reason for admission`` field: ``Myocardial
    infarction`` -> MI, ``Healthy control`` -> normal.
  * PTB-XL: any code whose ``diagnostic_class`` in ``scp_statements.csv`` is
    ``MI`` -> MI; ``NORM`` present and no code of another diagnostic class ->
    normal (codes without a diagnostic class, i.e. form and rhythm
    statements, do not count).
  * SPH: the paper's rule (the alternative is defined for PTB and PTB-XL only).

Functions return ``'mi'``, ``'normal'`` or ``None`` (excluded). Parsers raise
:class:`CodeParseError` on a field that cannot be parsed.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping, Sequence

MI, NORMAL = "mi", "normal"
#: ClassLabel names of the builders; the index is the integer label.
LABEL_NAMES: tuple[str, ...] = (NORMAL, MI)
RULES: tuple[str, ...] = ("paper", "mi_superclass")

#: PTB-XL statements the paper counts as MI.
PTBXL_PAPER_MI_CODES: frozenset[str] = frozenset({"IMI", "ASMI", "ILMI", "AMI", "ALMI"})
#: SPH AHA primary-statement prefixes the paper counts as MI.
SPH_MI_PREFIXES: tuple[str, ...] = ("160", "161", "165", "166")
PTB_MI_TEXT = "myocardial infarction"
PTB_HEALTHY_REASON = "healthy control"

__all__ = [
    "MI",
    "NORMAL",
    "LABEL_NAMES",
    "RULES",
    "CodeParseError",
    "label_index",
    "parse_scp_codes",
    "parse_aha_codes",
    "ptb_reason_for_admission",
    "ptb_label",
    "ptbxl_label",
    "sph_label",
    "ptbxl_mi_superclass_codes",
    "PTBXL_PAPER_MI_CODES",
    "SPH_MI_PREFIXES",
]


class CodeParseError(ValueError):
    """A diagnostic-code field that cannot be parsed."""


def _check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"Unknown label rule {rule!r}; expected one of {RULES}.")
    return rule


def label_index(label: str) -> int:
    """``'normal'`` -> 0, ``'mi'`` -> 1 (the builders' ClassLabel)."""
    return LABEL_NAMES.index(label)


# ---------------------------------------------------------------------------
# parsers


def parse_scp_codes(text) -> dict[str, float]:
    """PTB-XL ``scp_codes``: a Python dict literal ``{'NORM': 100.0, 'SR': 0.0}``.

    Raises:
      CodeParseError: if ``text`` is not a dict literal of str -> number.
    """
    if not isinstance(text, str) or not text.strip():
        raise CodeParseError(f"empty scp_codes {text!r}")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise CodeParseError(f"scp_codes is not a dict literal: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise CodeParseError(f"scp_codes is not a dict: {text[:80]!r}")
    out: dict[str, float] = {}
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CodeParseError(f"scp_codes entry {k!r}: {v!r} is not code: likelihood")
        out[k.strip()] = float(v)
    return out


_AHA_SPLIT = re.compile(r"[,;+]")
_AHA_CODE = re.compile(r"^\d+$")


def parse_aha_codes(text) -> set[str]:
    """SPH ``AHA_Code``: codes separated by ``,`` ``;`` or ``+`` (``'50+161;22'``).

    Raises:
      CodeParseError: on an empty field or a code that is not a number.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        raise CodeParseError("empty AHA_Code")
    text = str(text).strip()
    parts = {p.strip() for p in _AHA_SPLIT.split(text) if p.strip()}
    if not parts:
        raise CodeParseError(f"empty AHA_Code {text!r}")
    bad = sorted(p for p in parts if not _AHA_CODE.match(p))
    if bad:
        raise CodeParseError(f"AHA_Code {text!r} has non-numeric code(s) {bad}")
    return parts


_REASON = re.compile(r"reason\s+for\s+admission\s*:\s*(.*)", re.IGNORECASE)


def ptb_reason_for_admission(comments: Sequence[str]) -> str | None:
    """The value of PTB's ``Reason for admission:`` comment (stripped), or None."""
    for line in comments:
        m = _REASON.search(str(line))
        if m:
            return m.group(1).strip()
    return None


# ---------------------------------------------------------------------------
# rules


def ptb_label(comments: Sequence[str], in_controls: bool | None, rule: str = "paper") -> str | None:
    """Label of one PTB record.

    Args:
      comments: the WFDB header comment lines (without ``#``).
      in_controls: whether the record is listed in ``CONTROLS``; None when the
        database has no ``CONTROLS`` file (then the ``Reason for admission``
        field decides, as in the paper's fallback).
      rule: ``'paper'`` or ``'mi_superclass'``.

    Raises:
      CodeParseError: if the header has no comments at all.
    """
    _check_rule(rule)
    comments = [str(c) for c in comments]
    if not any(c.strip() for c in comments):
        raise CodeParseError("PTB header has no clinical comments")
    reason = (ptb_reason_for_admission(comments) or "").lower()
    if rule == "paper":
        if PTB_MI_TEXT in " ".join(comments).lower():
            return MI
        if in_controls is None:
            return NORMAL if reason == PTB_HEALTHY_REASON else None
        return NORMAL if in_controls else None
    if reason == PTB_MI_TEXT:
        return MI
    if reason == PTB_HEALTHY_REASON:
        return NORMAL
    return None


def ptbxl_mi_superclass_codes(scp_statements: Mapping[str, str]) -> frozenset[str]:
    """Codes whose ``diagnostic_class`` is ``MI``, from ``{code: diagnostic_class}``."""
    return frozenset(c for c, cls in scp_statements.items() if str(cls).strip() == "MI")


def ptbxl_label(
    codes: Mapping[str, float], rule: str = "paper", diagnostic_class: Mapping[str, str] | None = None
) -> str | None:
    """Label of one PTB-XL record from its parsed ``scp_codes``.

    Args:
      codes: ``{statement: likelihood}`` (likelihood ignored: any counts).
      rule: ``'paper'`` or ``'mi_superclass'``.
      diagnostic_class: ``{code: diagnostic_class}`` from ``scp_statements.csv``
        (empty string / NaN for non-diagnostic statements); needed by
        ``'mi_superclass'``.
    """
    _check_rule(rule)
    if rule == "paper":
        if any(c in PTBXL_PAPER_MI_CODES for c in codes):
            return MI
        return NORMAL if "NORM" in codes else None
    if diagnostic_class is None:
        raise ValueError("The mi_superclass rule needs scp_statements.csv's diagnostic_class.")
    classes = set()
    for c in codes:
        cls = diagnostic_class.get(c)
        if isinstance(cls, str) and cls.strip():
            classes.add(cls.strip())
    if "MI" in classes:
        return MI
    return NORMAL if "NORM" in codes and classes <= {"NORM"} else None


def sph_label(codes: Iterable[str], rule: str = "paper") -> str | None:
    """Label of one SPH record from its parsed AHA codes (same for both rules)."""
    _check_rule(rule)
    codes = set(codes)
    if any(c.startswith(SPH_MI_PREFIXES) for c in codes):
        return MI
    return NORMAL if codes == {"1"} else None
