"""Keep freed CPU memory in the process, so that large tensors are not page-faulted in on every call.

PyTorch allocates CPU tensors with the C library's ``malloc``, and glibc's ``malloc`` serves every block
larger than 32 MiB (the most its ``M_MMAP_THRESHOLD`` can be) with a fresh ``mmap`` and returns it to the
kernel with ``munmap`` when the tensor is freed. The next tensor of that size is then new memory again:
the kernel zero-fills it one 4 KiB page fault at a time. BoxNet keeps 192 channels at half the input
resolution, so at batch 4, 256x256 its stem, first unit and 768-channel units produce 38-50 MiB tensors on
every forward: 70,000-420,000 minor page faults per forward (the most in eager NCHW) and about 0.3 s of
kernel time on 2 cores. SimpleBaseline-R50, with no tensor above 32 MiB at that batch, mostly has none
(``scripts/bench_models.py`` reports them, ``page_faults``). Larger evaluation batches make every model's
tensors cross the limit.

:func:`retain_freed_memory` tells ``malloc`` to serve every block from its heap (``M_MMAP_MAX = 0``) and
never to give the heap's free top back (``M_TRIM_THRESHOLD``), the effect that the allocators PyTorch's
CPU performance guides preload (jemalloc, tcmalloc) have. The process's resident memory then stays at its
peak instead of following it. The command-line tools call it at start; ``BOXPOSE_RETAIN_MEMORY=0`` turns
it off. It is a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger("boxpose")

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # the largest value an int parameter takes
ENV_SWITCH = "BOXPOSE_RETAIN_MEMORY"


def retain_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse (see the module docstring).

    Returns:
        True if both settings took effect; False when they were not applied: the C library is not glibc,
        or ``BOXPOSE_RETAIN_MEMORY=0`` is set.
    """
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    applied = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    if not applied:
        log.warning("could not make malloc keep freed memory (mallopt refused); large tensors stay mmap'ed")
    return applied
