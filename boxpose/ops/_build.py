"""Compiling the box-filter kernels on first use, and loading them.

The C++ (CPU) and CUDA sources in ``kernels/`` (installed as ``boxpose._kernels``) are compiled with
``torch.utils.cpp_extension.load`` the first time a CPU or CUDA tensor reaches the op, and cached in
``$BOXPOSE_KERNEL_CACHE`` (default ``~/.cache/boxpose/kernels/<torch version>``); later runs load the
cached library in well under a second. Two independent libraries are built:

- ``boxpose_kernels`` (C++, g++ and OpenMP): the CPU kernels, plus a CPU emulation of the CUDA block
  algorithm used by the tests.
- ``boxpose_kernels_cuda`` (nvcc): the CUDA kernels; built only when a CUDA tensor is used, or by
  ``python -m boxpose.ops.build --cuda`` (which CI runs to compile the CUDA sources without a GPU).

If a build fails, :class:`KernelBuildError` says why and how to fall back to the pure-PyTorch path
(``BOXPOSE_OP_IMPL=reference``).
"""

from __future__ import annotations

import importlib.resources
import os
import sys
import threading
import time
from pathlib import Path

import torch

CPU_LIBRARY = "boxpose_kernels"
CUDA_LIBRARY = "boxpose_kernels_cuda"
CPU_SOURCES = ("box_filter_cpu.cpp",)
CUDA_SOURCES = ("box_filter_cuda.cu",)
HEADERS = ("box_filter_common.h", "box_filter_torch.h")

_FALLBACK_HINT = (
    "To run without compiled kernels, set BOXPOSE_OP_IMPL=reference (the pure-PyTorch path: same "
    "results, slower and more memory)."
)


class KernelBuildError(RuntimeError):
    """The box-filter kernels could not be compiled or loaded."""


_lock = threading.Lock()
_loaded: dict[str, bool] = {}
_errors: dict[str, KernelBuildError] = {}


def kernel_source_dir() -> Path:
    """Folder holding the kernel sources (``kernels/`` in a checkout, ``boxpose/_kernels`` when installed)."""
    return Path(str(importlib.resources.files("boxpose._kernels")))


def cache_dir() -> Path:
    """Where compiled kernels are cached (``$BOXPOSE_KERNEL_CACHE`` or ``~/.cache/boxpose/kernels``)."""
    root = os.environ.get("BOXPOSE_KERNEL_CACHE") or os.path.join(Path.home(), ".cache", "boxpose", "kernels")
    tag = f"torch{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}".replace("+", "_")
    return Path(root) / tag


def _cuda_home() -> str | None:
    """The CUDA toolkit root: $CUDA_HOME / $CUDA_PATH, else /usr/local/cuda, else None (torch guesses)."""
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if candidate and Path(candidate, "bin", "nvcc").exists() and Path(candidate, "include").is_dir():
            return candidate
    return None


def _pip_cuda_runtime_dirs() -> list[str]:
    """Library folders of the CUDA runtime that pip installs next to torch (``nvidia/*/lib``)."""
    dirs = []
    for entry in sys.path:
        nvidia = Path(entry) / "nvidia"
        if nvidia.is_dir():
            dirs += [str(p) for p in sorted(nvidia.glob("*/lib")) if any(p.glob("libcudart.so*"))]
    return dirs


def _cpu_flags() -> list[str]:
    flags = ["-O3", "-fopenmp"]
    capability = torch.backends.cpu.get_cpu_capability()
    # The library is built on the machine that runs it, so its vector extensions can be used; the cache
    # key includes the flags, so a machine without them builds its own copy.
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def _needs_build(build_dir: Path, name: str, sources: list[Path]) -> bool:
    libraries = sorted(build_dir.glob(f"{name}*.so"))
    if not libraries:
        return True
    newest_source = max(p.stat().st_mtime for p in sources)
    return max(p.stat().st_mtime for p in libraries) < newest_source


def _build(name: str, cuda: bool, verbose: bool = False) -> None:
    home = _cuda_home()
    if home is not None:
        # Before importing cpp_extension, which otherwise guesses (and warns) from the nvcc on the PATH.
        os.environ.setdefault("CUDA_HOME", home)
    from torch.utils import cpp_extension

    src_dir = kernel_source_dir()
    sources = [src_dir / s for s in (CUDA_SOURCES if cuda else CPU_SOURCES)]
    headers = [src_dir / h for h in HEADERS]
    missing = [str(p) for p in sources + headers if not p.exists()]
    if missing:
        raise KernelBuildError(f"kernel sources missing: {missing}. Reinstall boxpose. {_FALLBACK_HINT}")
    build_dir = cache_dir() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    extra_cflags = [] if cuda else _cpu_flags()
    extra_ldflags = [] if cuda else ["-fopenmp"]
    extra_cuda_cflags = []
    if cuda:
        home = home or cpp_extension.CUDA_HOME
        if home is None:
            raise KernelBuildError(f"no CUDA toolkit (nvcc) found; set CUDA_HOME. {_FALLBACK_HINT}")
        cpp_extension.CUDA_HOME = home
        extra_ldflags = [f"-L{d}" for d in _pip_cuda_runtime_dirs()]
        extra_cuda_cflags = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
    if verbose or _needs_build(build_dir, name, sources + headers):
        kind = "CUDA" if cuda else "CPU"
        print(
            f"boxpose: compiling the {kind} box-filter kernels (first use only, about "
            f"{'2 minutes' if cuda else '1 minute'}) into {build_dir} ...",
            file=sys.stderr,
            flush=True,
        )
    start = time.time()
    try:
        cpp_extension.load(
            name=name,
            sources=[str(p) for p in sources],
            extra_include_paths=[str(src_dir)],
            extra_cflags=extra_cflags,
            extra_cuda_cflags=extra_cuda_cflags,
            extra_ldflags=extra_ldflags,
            build_directory=str(build_dir),
            is_python_module=False,
            verbose=verbose,
        )
    except Exception as exc:  # the compiler's output is in the message
        detail = str(exc).strip().splitlines()
        tail = "\n".join(detail[-40:])
        raise KernelBuildError(
            f"could not build the {'CUDA' if cuda else 'CPU'} box-filter kernels in {build_dir}.\n"
            f"Needs a C++17 compiler and ninja{' and an nvcc matching torch.version.cuda' if cuda else ''}.\n"
            f"{_FALLBACK_HINT}\nCompiler output (last lines):\n{tail}"
        ) from exc
    if verbose:
        print(f"boxpose: {name} ready in {time.time() - start:.1f} s", file=sys.stderr)


def load(cuda: bool, verbose: bool = False) -> None:
    """Build (if needed) and load the CPU or CUDA kernel library; raises :class:`KernelBuildError`."""
    name = CUDA_LIBRARY if cuda else CPU_LIBRARY
    if _loaded.get(name):
        return
    if name in _errors:
        raise _errors[name]
    with _lock:
        if _loaded.get(name):
            return
        try:
            _build(name, cuda, verbose)
        except KernelBuildError as exc:
            _errors[name] = exc
            raise
        _loaded[name] = True


def is_loaded(cuda: bool) -> bool:
    return bool(_loaded.get(CUDA_LIBRARY if cuda else CPU_LIBRARY))
