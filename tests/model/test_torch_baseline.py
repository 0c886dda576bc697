"""The PyTorch benchmark baseline (bench/torch_baseline.py) is the official
architecture: it loads the official state_dict strictly and reproduces the
official logits. Skips only when LEADMIX_PARITY_DIR is unset."""

import os
import pathlib
import sys

import pytest

PARITY_DIR = os.environ.get("LEADMIX_PARITY_DIR")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))


@pytest.mark.skipif(not PARITY_DIR, reason="LEADMIX_PARITY_DIR is unset")
@pytest.mark.parametrize("fixture", ["reference_parity_3lead.npz", "reference_parity_12lead_base16.npz"])
def test_baseline_matches_official_logits(fixture):
    pytest.importorskip("torch")
    import torch_baseline

    assert torch_baseline.check(str(pathlib.Path(PARITY_DIR) / fixture)) < 1e-4
