"""Packaging: a non-editable ``pip install .`` must carry every subpackage, the kernel sources and the
config tree. pyproject.toml lists packages explicitly (two live outside boxpose/), so a new subpackage
or file type that is not listed would silently be missing from wheels; these tests catch that."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _source_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes and "__pycache__" not in p.parts
    )


def test_every_subpackage_is_listed() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "boxpose").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert {"boxpose._kernels", "boxpose._configs"} <= listed
    assert listed - on_disk - {"boxpose._kernels", "boxpose._configs"} == set(), "listed but missing"


def test_package_dirs_point_at_the_kernel_and_config_folders() -> None:
    package_dir = _pyproject()["tool"]["setuptools"]["package-dir"]
    assert package_dir["boxpose._kernels"] == "kernels"
    assert package_dir["boxpose._configs"] == "configs"
    assert (ROOT / "kernels" / "__init__.py").exists() and (ROOT / "configs" / "__init__.py").exists()


@pytest.mark.slow
def test_wheel_contains_kernels_configs_and_all_modules(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("boxpose", "kernels", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w", "dist"],
        cwd=source, check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = (source / "dist").glob("boxpose-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = [f"boxpose/{p.relative_to(ROOT / 'boxpose').as_posix()}" for p in _source_files(
        ROOT / "boxpose", (".py",))]  # fmt: skip
    expected += [
        f"boxpose/_kernels/{p.relative_to(ROOT / 'kernels').as_posix()}"
        for p in _source_files(ROOT / "kernels", (".py", ".h", ".cpp", ".cu"))
    ]
    expected += [
        f"boxpose/_configs/{p.relative_to(ROOT / 'configs').as_posix()}"
        for p in _source_files(ROOT / "configs", (".py", ".yaml"))
    ]
    missing = sorted(set(expected) - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "boxpose/_configs/experiment/mpii_boxnet.yaml" in names
    assert "boxpose/_kernels/box_filter_cuda.cu" in names
