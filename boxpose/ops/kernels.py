"""The compiled box-filter kernels: compiled on first use, cached, loaded.

The C++ (CPU) and CUDA sources in ``kernels/`` (installed as ``boxpose._kernels``) are compiled with
``torch.utils.cpp_extension.load`` the first time a CPU or CUDA tensor reaches the op, and cached in
``$BOXPOSE_KERNEL_CACHE`` (default ``~/.cache/boxpose/kernels/<torch version>``); later runs load the
cached library in well under a second. A library is rebuilt when its sources, the headers or the
compiler flags change (torch hashes them; ninja follows the included headers). Three independent
libraries, each with its own ``torch.ops`` namespace:

- ``boxpose_kernels`` (C++, g++ and OpenMP; :func:`load` with ``cuda=False``): the CPU kernels.
- ``boxpose_kernels_cuda`` (nvcc; :func:`load` with ``cuda=True``): the CUDA kernels; built when a
  CUDA tensor is first used, or by ``python -m boxpose.ops.build --cuda`` (which CI runs to compile
  the CUDA sources without a GPU).
- ``boxpose_kernels_emulation`` (C++; :func:`load_emulation`): the CUDA kernels' block algorithms run
  thread by thread on the CPU, so the tests check the GPU indexing on machines without a GPU. Only the
  tests load it; it is not part of the production libraries.

If a build fails, :class:`KernelBuildError` says why and how to fall back to the pure-PyTorch path
(``BOXPOSE_OP_IMPL=reference``).
"""

from __future__ import annotations

import importlib.resources
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Library:
    """One compiled library: its name (also its ``torch.ops`` namespace) and its sources in ``kernels/``."""

    name: str
    sources: tuple[str, ...]
    cuda: bool
    description: str


CPU_LIBRARY = Library(
    "boxpose_kernels", ("box_filter_cpu.cpp",), cuda=False, description="CPU box-filter kernels"
)
CUDA_LIBRARY = Library(
    "boxpose_kernels_cuda", ("box_filter_cuda.cu",), cuda=True, description="CUDA box-filter kernels"
)
EMULATION_LIBRARY = Library(
    "boxpose_kernels_emulation",
    ("box_filter_emulation.cpp",),
    cuda=False,
    description="CPU emulation of the CUDA box-filter kernels (tests only)",
)
HEADERS = ("box_filter_common.h", "box_filter_torch.h")

_FALLBACK_HINT = (
    "To run without compiled kernels, set BOXPOSE_OP_IMPL=reference (the pure-PyTorch path: same "
    "results, slower and more memory)."
)


class KernelBuildError(RuntimeError):
    """The box-filter kernels could not be compiled or loaded."""


_lock = threading.Lock()
_loaded: set[str] = set()
_errors: dict[str, KernelBuildError] = {}


def source_dir() -> Path:
    """Folder holding the kernel sources (``kernels/`` in a checkout, ``boxpose/_kernels`` when installed)."""
    return Path(str(importlib.resources.files("boxpose._kernels")))


def cache_dir() -> Path:
    """Where compiled kernels are cached (``$BOXPOSE_KERNEL_CACHE`` or ``~/.cache/boxpose/kernels``)."""
    root = os.environ.get("BOXPOSE_KERNEL_CACHE") or os.path.join(Path.home(), ".cache", "boxpose", "kernels")
    tag = f"torch{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}".replace("+", "_")
    return Path(root) / tag


def cuda_home() -> str | None:
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


def cpu_flags() -> list[str]:
    """The compiler flags of the CPU libraries on this machine."""
    flags = ["-O3", "-fopenmp"]
    capability = torch.backends.cpu.get_cpu_capability()
    # The library is built on the machine that runs it, so its vector extensions can be used; the cache
    # key includes the flags, so a machine without them builds its own copy.
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def _is_stale(build_dir: Path, library: Library, inputs: list[Path]) -> bool:
    """True if no compiled copy exists or a source or header is newer (only to announce the compilation:
    ``cpp_extension.load`` decides what to rebuild)."""
    compiled = sorted(build_dir.glob(f"{library.name}*.so"))
    if not compiled:
        return True
    return max(p.stat().st_mtime for p in compiled) < max(p.stat().st_mtime for p in inputs)


def _compile_and_load(library: Library, verbose: bool) -> None:
    """Compile ``library`` into the cache if needed and load it into torch.ops; raises KernelBuildError."""
    home = cuda_home()
    if home is not None:
        # Before importing cpp_extension, which otherwise guesses (and warns) from the nvcc on the PATH.
        os.environ.setdefault("CUDA_HOME", home)
    from torch.utils import cpp_extension

    src_dir = source_dir()
    sources = [src_dir / s for s in library.sources]
    headers = [src_dir / h for h in HEADERS]
    missing = [str(p) for p in sources + headers if not p.exists()]
    if missing:
        raise KernelBuildError(f"kernel sources missing: {missing}. Reinstall boxpose. {_FALLBACK_HINT}")
    build_dir = cache_dir() / library.name
    build_dir.mkdir(parents=True, exist_ok=True)
    extra_cflags = [] if library.cuda else cpu_flags()
    extra_ldflags = [] if library.cuda else ["-fopenmp"]
    extra_cuda_cflags = []
    needs = "a C++17 compiler and ninja" + (
        " and an nvcc matching torch.version.cuda" if library.cuda else ""
    )
    if library.cuda:
        home = home or cpp_extension.CUDA_HOME
        if home is None:
            raise KernelBuildError(f"no CUDA toolkit (nvcc) found; set CUDA_HOME. {_FALLBACK_HINT}")
        cpp_extension.CUDA_HOME = home
        extra_ldflags = [f"-L{d}" for d in _pip_cuda_runtime_dirs()]
        extra_cuda_cflags = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
    if verbose or _is_stale(build_dir, library, sources + headers):
        print(
            f"boxpose: compiling the {library.description} (first use only, about "
            f"{'2 minutes' if library.cuda else '1 minute'}) into {build_dir} ...",
            file=sys.stderr,
            flush=True,
        )
    start = time.time()
    try:
        cpp_extension.load(
            name=library.name,
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
            f"could not build the {library.description} in {build_dir}.\n"
            f"Needs {needs}.\n"
            f"{_FALLBACK_HINT}\nCompiler output (last lines):\n{tail}"
        ) from exc
    if verbose:
        print(f"boxpose: {library.name} ready in {time.time() - start:.1f} s", file=sys.stderr)


def _load_once(library: Library, verbose: bool) -> None:
    """Compile and load ``library`` the first time; later calls return at once (or raise the first error)."""
    if library.name in _loaded:
        return
    if library.name in _errors:
        raise _errors[library.name]
    with _lock:
        if library.name in _loaded:
            return
        try:
            _compile_and_load(library, verbose)
        except KernelBuildError as exc:
            _errors[library.name] = exc
            raise
        _loaded.add(library.name)


def load(cuda: bool, verbose: bool = False) -> None:
    """Build (if needed) and load the CPU (``torch.ops.boxpose_kernels``) or CUDA
    (``torch.ops.boxpose_kernels_cuda``) kernel library; raises :class:`KernelBuildError`."""
    _load_once(CUDA_LIBRARY if cuda else CPU_LIBRARY, verbose)


def load_emulation(verbose: bool = False) -> None:
    """Build (if needed) and load the CPU emulation of the CUDA kernels, for tests
    (``torch.ops.boxpose_kernels_emulation``); raises :class:`KernelBuildError`."""
    _load_once(EMULATION_LIBRARY, verbose)
