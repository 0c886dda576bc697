"""Tests of leadmix_jax.model.torch_import, including parity with the official model.

The parity fixtures are read from $LEADMIX_PARITY_DIR (set by .ci/run); the
parity tests skip only when it is unset.
"""

import os
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from leadmix_jax.model import torch_import
from model_stages import stage_outputs

PARITY_DIR = os.environ.get("LEADMIX_PARITY_DIR")
FIXTURES = ["reference_parity_3lead.npz", "reference_parity_12lead_base16.npz"]
needs_fixtures = pytest.mark.skipif(not PARITY_DIR, reason="LEADMIX_PARITY_DIR is unset")


def official_shapes(num_leads, base=48, depth=3):
    """Official state_dict key -> shape, as the official PyTorch model names them."""
    shapes = {"stem.0.weight": (base, num_leads, 7), "stem.1.weight": (base,), "stem.1.bias": (base,)}
    c = base
    for i in range(depth):
        b, h = f"body.{4 * i}.", max(1, c // 8)
        shapes.update(
            {
                b + "lead_embed": (num_leads, c),
                b + "ms1.0.weight": (c, 1, 3),
                b + "ms1.1.weight": (c // 2, c, 1),
                b + "ms2.0.weight": (c, 1, 3),
                b + "ms2.1.weight": (c // 2, c, 1),
                b + "proj.weight": (c, c, 1),
                b + "gn.weight": (c,),
                b + "gn.bias": (c,),
                b + "se.fc.1.weight": (h, c, 1),
                b + "se.fc.1.bias": (h,),
                b + "se.fc.3.weight": (c, h, 1),
                b + "se.fc.3.bias": (c,),
                b + "qkv.weight": (3 * c, c),
                b + "mha.in_proj_weight": (3 * c, c),
                b + "mha.in_proj_bias": (3 * c,),
                b + "mha.out_proj.weight": (c, c),
                b + "mha.out_proj.bias": (c,),
                b + "ffn.0.weight": (2 * c, c),
                b + "ffn.0.bias": (2 * c,),
                b + "ffn.3.weight": (c, 2 * c),
                b + "ffn.3.bias": (c,),
                b + "norm_tokens1.weight": (c,),
                b + "norm_tokens1.bias": (c,),
                b + "norm_tokens2.weight": (c,),
                b + "norm_tokens2.bias": (c,),
                f"body.{4 * i + 1}.weight": (2 * c, c, 3),
                f"body.{4 * i + 2}.weight": (2 * c,),
                f"body.{4 * i + 2}.bias": (2 * c,),
            }
        )
        c *= 2
    shapes.update({"fc.weight": (1, c), "fc.bias": (1,)})
    return shapes


def random_state_dict(num_leads, base=48, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.2, s).astype(np.float32) for k, s in official_shapes(num_leads, base).items()}


def test_official_layout_has_89_tensors_and_reference_count():
    shapes = official_shapes(3)
    assert len(shapes) == 89
    assert sum(int(np.prod(s)) for s in shapes.values()) == 941_995


def test_every_official_tensor_lands_in_the_right_place():
    sd = random_state_dict(3, base=16)
    params = torch_import.params_from_torch(sd)
    b = params["blocks"][1]  # body.4, C = 32, heads 4, d = 8
    np.testing.assert_array_equal(params["stem"]["kernel"], sd["stem.0.weight"].transpose(2, 1, 0))
    np.testing.assert_array_equal(b["ms2_pw"], sd["body.4.ms2.1.weight"][:, :, 0].T)
    wk = sd["body.4.mha.in_proj_weight"][32:64]  # rows of Wk
    np.testing.assert_array_equal(b["mha"]["key"][:, 2, :], wk[16:24].T)  # head 2
    np.testing.assert_array_equal(b["mha"]["value_bias"].reshape(-1), sd["body.4.mha.in_proj_bias"][64:])
    np.testing.assert_array_equal(b["mha"]["out"][3], sd["body.4.mha.out_proj.weight"][:, 24:32].T)
    np.testing.assert_array_equal(params["downs"][2]["norm"]["bias"], sd["body.10.bias"])
    np.testing.assert_array_equal(params["fc"]["kernel"][:, 0], sd["fc.weight"][0])
    assert params["fc"]["kernel"].shape == (128, 1)


@pytest.mark.slow
def test_load_into_model_changes_outputs_and_count():
    sd = random_state_dict(12, base=16)
    model = torch_import.model_from_torch(sd)
    assert model.num_leads == 12
    leaves = nnx.state(model, nnx.Param)
    np.testing.assert_array_equal(leaves["blocks"][0]["lead_embed"][...], sd["body.0.lead_embed"])


def test_missing_and_unexpected_keys_are_named():
    sd = random_state_dict(3, base=16)
    del sd["body.4.ffn.0.bias"]
    sd["body.4.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(
        KeyError, match=r"missing keys \['body.4.ffn.0.bias'\].*unexpected keys \['body.4.extra.weight'\]"
    ):
        torch_import.params_from_torch(sd)


def test_shape_mismatch_is_named():
    sd = random_state_dict(3, base=16)
    sd["body.8.proj.weight"] = np.zeros((64, 32, 1), np.float32)
    with pytest.raises(
        ValueError, match=r"body.8.proj.weight -> blocks/2/proj: got \(32, 64\), expected \(64, 64\)"
    ):
        torch_import.params_from_torch(sd)


def test_not_a_checkpoint():
    with pytest.raises(KeyError, match="not a LeadMix-MST checkpoint"):
        torch_import.params_from_torch({"weight": np.zeros(3)})


@pytest.mark.slow
def test_lead_reordering_permutes_the_stem():
    sd = random_state_dict(3, base=16)
    ref = torch_import.model_from_torch(sd, leads="II,III,aVF")
    moved = torch_import.model_from_torch(sd, leads="II,III,aVF", target_leads="aVF,II,III")
    x = np.random.default_rng(0).normal(size=(2, 2500, 3)).astype(np.float32)
    np.testing.assert_allclose(
        moved(jnp.asarray(x[:, :, [2, 0, 1]])), ref(jnp.asarray(x)), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="must be a reordering"):
        torch_import.params_from_torch(sd, leads="II,III,aVF", target_leads="I,III,aVF")
    with pytest.raises(ValueError, match="do not match the checkpoint's 3 input leads"):
        torch_import.params_from_torch(sd, leads="chest")


def test_pth_loads_with_weights_only(tmp_path):
    torch = pytest.importorskip("torch", reason="the .pth loader needs the torch extra")
    sd = random_state_dict(3, base=16)
    path = tmp_path / "official.pth"
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
    loaded = torch_import.load_state_dict(path)
    assert set(loaded) == set(sd)
    np.testing.assert_array_equal(loaded["body.8.qkv.weight"], sd["body.8.qkv.weight"])
    # Torch tensors are accepted directly as well.
    params = torch_import.params_from_torch({k: torch.from_numpy(v) for k, v in sd.items()})
    np.testing.assert_array_equal(params["blocks"][0]["lead_embed"], sd["body.0.lead_embed"])
    # A pickle holding arbitrary objects is refused, not executed.
    evil = tmp_path / "evil.pth"
    torch.save({"stem.0.weight": pathlib.Path("/")}, evil)
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        torch_import.load_state_dict(evil)


def test_npz_and_bad_suffix(tmp_path):
    sd = random_state_dict(3, base=16)
    np.savez(tmp_path / "w.npz", **sd)
    assert set(torch_import.load_state_dict(tmp_path / "w.npz")) == set(sd)
    with pytest.raises(ValueError, match="expected .pth, .pt or .npz"):
        torch_import.load_state_dict(tmp_path / "w.ckpt")


@pytest.mark.slow
@needs_fixtures
@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("export", [False, True])
def test_parity_with_official_model(fixture, export):
    """Logits and every stage activation match the official PyTorch model."""
    path = pathlib.Path(PARITY_DIR) / fixture
    assert path.exists(), f"parity fixture {path} missing"
    data = np.load(path)
    num_leads, base, depth, heads, length = (int(v) for v in data["config"])
    model = torch_import.model_from_torch(torch_import.load_state_dict(path), heads=heads, export=export)
    assert (model.num_leads, model.depth) == (num_leads, depth)
    x = jnp.asarray(data["x"].transpose(0, 2, 1))
    assert x.shape[1] == length
    logits, acts = stage_outputs(model, x)
    np.testing.assert_allclose(logits, data["logits"][:, 0], rtol=1e-5, atol=1e-4)
    stages = sorted(k.split("/", 1)[1] for k in data.files if k.startswith("activations/"))
    assert len(stages) == 1 + 4 * depth
    for stage in stages:
        np.testing.assert_allclose(
            acts[stage], data[f"activations/{stage}"].transpose(0, 2, 1), rtol=1e-5, atol=1e-4, err_msg=stage
        )


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: b"", "is empty: not a PyTorch weights file"),
        (lambda data: data[: len(data) // 2], "is a truncated or damaged PyTorch file"),
        (
            lambda data: bytes(range(256)) * 8,
            "is not a PyTorch weights file (neither the zip archive nor the pickle",
        ),
    ],
    ids=["empty", "truncated", "random_bytes"],
)
def test_a_damaged_pth_is_one_clear_error(tmp_path, damage, message):
    torch = pytest.importorskip("torch", reason="the .pth loader needs the torch extra")
    good = tmp_path / "good.pth"
    torch.save({k: torch.from_numpy(v) for k, v in random_state_dict(3, base=16).items()}, good)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(ValueError) as err:
        torch_import.load_state_dict(bad)
    assert message in str(err.value) and "\n" not in str(err.value) and "pickled" not in str(err.value)
