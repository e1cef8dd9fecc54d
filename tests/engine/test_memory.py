"""retain_freed_memory: a large tensor freed and allocated again is reused, not page-faulted in anew.

The oracle is the kernel's own count of minor page faults (``getrusage``) in a fresh process: a 64 MiB
tensor (above glibc's largest mmap threshold, 32 MiB) allocated and freed again and again costs about
16,000 faults (one per 4 KiB page) every time under the C library's default, and none once freed memory
is kept (after the first rounds, in which the heap's free blocks coalesce; the process's resident memory
then stays at a steady size, which the test bounds too).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from boxpose.engine.memory import ENV_SWITCH, retain_freed_memory

REPO = Path(__file__).resolve().parents[2]
PAGES_OF_64_MIB = 64 * 2**20 // 4096

CHILD = """
import json, resource, torch
from boxpose.engine.memory import retain_freed_memory

applied = retain_freed_memory()
faults, resident_mib = [], []
for _ in range(ROUNDS):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 2**20)  # 64 MiB, written
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del x
    resident_mib.append(int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20)
print(json.dumps({"applied": applied, "faults": faults, "resident_mib": resident_mib}))
"""
ROUNDS = 24

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's"
)


def _allocation_rounds(switch: str) -> dict:
    env = {**os.environ, ENV_SWITCH: switch, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    child = CHILD.replace("ROUNDS", str(ROUNDS))
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_a_freed_large_tensor_is_reused_without_page_faults() -> None:
    result = _allocation_rounds("1")
    assert result["applied"] is True
    assert sum(result["faults"][-8:]) < PAGES_OF_64_MIB // 20, result
    # The memory kept is bounded: it stops growing once the free blocks have coalesced.
    assert result["resident_mib"][-1] == pytest.approx(result["resident_mib"][-8], abs=8), result
    assert result["resident_mib"][-1] - result["resident_mib"][0] < 1024, result


@glibc_only
def test_without_it_the_same_tensor_is_page_faulted_in_again() -> None:
    """The cost the setting removes, measured the same way (so the test above can fail)."""
    result = _allocation_rounds("0")
    assert result["applied"] is False
    assert min(result["faults"][-8:]) > PAGES_OF_64_MIB // 2, result


@pytest.mark.parametrize("value", ["0", "false", "off", "No"])
def test_the_environment_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_SWITCH, value)
    assert retain_freed_memory() is False
