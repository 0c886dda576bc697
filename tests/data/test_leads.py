"""Tests of leadmix_jax.data.leads."""

import pytest

from leadmix_jax.data import leads


def test_canonical_order():
    assert leads.CANONICAL_LEADS == (
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


@pytest.mark.parametrize("name", ["avl", "AVL", "aVL", " aVl "])
def test_case_insensitive(name):
    assert leads.canonical_name(name) == "aVL"
    assert leads.lead_index(name) == 4


def test_comma_string_keeps_order():
    assert leads.parse_leads("II,III,aVF") == ("II", "III", "aVF")
    assert leads.lead_indices("II,III,aVF") == (1, 2, 5)
    assert leads.lead_indices("v5, i ,AVL") == (10, 0, 4)
    assert leads.lead_indices(["V1"]) == (6,)


def test_paper_sets_by_name():
    assert leads.lead_indices("inferior") == (1, 2, 5)
    assert leads.lead_indices("lateral") == (0, 4, 10)
    assert leads.lead_indices("I-II-V3") == (0, 1, 8)
    assert leads.lead_indices("V1-V3-V5") == (6, 8, 10)
    assert leads.lead_indices("chest") == (6, 7, 8, 9, 10, 11)
    # The paper's limb and 12-lead orders put aVL before aVR.
    assert leads.lead_indices("limb") == (0, 1, 2, 4, 3, 5)
    assert leads.lead_indices("all12") == (6, 7, 8, 9, 10, 11, 0, 1, 2, 4, 3, 5)
    assert leads.parse_leads("ALL12") == leads.LEAD_SETS["all12"]
    assert len(leads.LEAD_SETS) == 7


def test_unknown_lead_error_names_valid_leads():
    with pytest.raises(ValueError, match=r"Unknown lead 'V7'.*I, II, III, aVR, aVL, aVF, V1"):
        leads.parse_leads("II,V7")


def test_duplicate_lead_error():
    with pytest.raises(ValueError, match="Duplicated lead.*II"):
        leads.parse_leads("II,ii,III")


def test_empty_spec_error():
    with pytest.raises(ValueError, match="Empty lead"):
        leads.parse_leads(" , ")


def test_reorder_to_canonical():
    names = ["v1", "v2", "v3", "v4", "v5", "v6", "i", "ii", "iii", "avr", "avl", "avf", "vx"]
    assert leads.reorder_to_canonical(names) == [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="lacks lead.*V6"):
        leads.reorder_to_canonical(names[:5] + names[6:])
