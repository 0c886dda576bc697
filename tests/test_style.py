"""The code is formatted by the project's one formatter (ruff, settings in
pyproject.toml) and has no unused imports or undefined names."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: it comes with the `test` extra (pip install -e '.[test]')")
    return [exe]


def test_code_is_formatted():
    out = subprocess.run(_ruff() + ["format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"run `ruff format .` to format:\n{out.stdout}{out.stderr}"


def test_no_unused_imports_or_undefined_names():
    out = subprocess.run(_ruff() + ["check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"ruff check found problems:\n{out.stdout}{out.stderr}"
