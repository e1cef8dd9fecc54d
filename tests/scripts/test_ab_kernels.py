"""scripts/ab_kernels.py: naming versions, renaming their operators, and one compiled version end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from boxpose.ops import box_corners, kernels
from tests.scripts.helpers import load_script

ab = load_script("ab_kernels")
KERNEL = Path(ab.REPO) / ab.KERNEL


def test_a_version_is_read_from_a_file_or_from_git() -> None:
    name, source = ab.parse_version(f"tree={KERNEL}")
    assert name == "tree" and source == KERNEL.read_text()
    name, source = ab.parse_version("head=git:HEAD")
    assert name == "head" and "TORCH_LIBRARY(boxpose_kernels," in source


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_equals_sign", "name=path or name=git:REV"),
        ("1st=kernels/box_filter_cpu.cpp", "C identifier"),
        ("a-b=kernels/box_filter_cpu.cpp", "C identifier"),
        ("a=/no/such/kernel.cpp", "no such file '/no/such/kernel.cpp'"),
        ("a=git:no-such-revision", "no kernels/box_filter_cpu.cpp at 'no-such-revision'"),
    ],
)
def test_a_bad_version_is_named(spec: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(".", r"\.")):
        ab.parse_version(spec)


def test_renaming_moves_every_operator_to_the_versions_library() -> None:
    source = KERNEL.read_text()
    renamed = ab.renamed(source, "tree")
    assert "boxpose_kernels" not in renamed
    assert renamed.count("ab_tree") == source.count("boxpose_kernels") >= 2  # TORCH_LIBRARY and _IMPL
    with pytest.raises(ValueError, match="'cuda' defines no boxpose_kernels library"):
        ab.renamed("__global__ void f() {}", "cuda")


def test_bad_arguments_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ab.main([f"a={KERNEL}", f"a={KERNEL}"])
    assert "two versions have the same name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ab.main([f"a={KERNEL}", "--max-size", "4"])
    assert "--max-size must be a positive odd integer, got 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ab.main([f"a={KERNEL}", "--rounds", "0"])
    assert "must be positive, got [8, 192, 64, 64], 0, 2" in capsys.readouterr().err


def test_a_version_that_does_not_compile_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.cpp"
    broken.write_text("TORCH_LIBRARY(boxpose_kernels, m) { this is not C++ }\n")
    with pytest.raises(RuntimeError, match="version 'broken' did not compile"):
        ab.load_version("broken", broken.read_text())


@pytest.mark.slow
def test_a_compiled_version_computes_what_the_librarys_kernel_computes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The working tree's kernel, compiled under its own name, gives the library's bits, and the report
    times it against a clone in both layouts."""
    monkeypatch.setenv("BOXPOSE_RETAIN_MEMORY", "0")  # leave the test process's malloc as it is
    report = ab.main([f"tree={KERNEL}", "--shape", "2", "6", "9", "11", "--max-size", "5", "--rounds", "3"])
    assert report["pass"] == "forward" and report["rounds"] == 3
    for layout in ("nchw", "nhwc"):
        row = report[layout]["tree"]
        assert row["same_bits_as_first"] and row["over_first"]["median"] == 1.0
        assert row["ms"] > 0 and row["over_clone"]["median"] > 0

    kernels.load(cuda=False)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 9, 11, generator=generator).contiguous(memory_format=torch.channels_last)
    xs, ys = box_corners(ab.plain_boxes(6, generator), 5)
    coef = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).expand(6, 2, 2).contiguous()
    ours = torch.ops.ab_tree.box_filter_forward(x, xs, ys, coef, 5, False)
    library = torch.ops.boxpose_kernels.box_filter_forward(x, xs, ys, coef, 5, False)
    assert torch.equal(ours, library)
