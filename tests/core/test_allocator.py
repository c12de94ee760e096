"""glibc's mmap threshold as `rvos train` fixes it on the CPU (`rvos_cli.core.allocator`).

The threshold is process-wide, so what changes it runs in a child process: the suite's own allocator
stays as glibc set it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from rvos_cli.core import allocator
from rvos_cli.engine.recipe import tune_cpu_memory

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# In a child: fix the threshold, then malloc 1 MB and report whether glibc mapped it (mallinfo2's hblks).
CHILD = """
import ctypes, sys
from rvos_cli.core import allocator
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
applied = allocator.set_mmap_threshold(int(sys.argv[1]))
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
print(applied, libc.mallinfo2().hblks - before)
"""


def _child(threshold: int, **env: str) -> str:
    """Run CHILD with `threshold` and extra environment; returns its "applied mapped-blocks" line."""
    command = [sys.executable, "-c", CHILD, str(threshold)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, **env})
    return result.stdout.strip()


@glibc_only
def test_a_low_threshold_maps_a_1_mb_block_and_a_high_one_keeps_it_on_the_heap() -> None:
    assert _child(256 * 1024) == "True 1"
    assert _child(16 << 20) == "True 0"


@glibc_only
def test_the_users_own_setting_wins() -> None:
    # glibc reads the variable at start-up (16 MB: the 1 MB block stays on the heap); rvos leaves it
    assert _child(256 * 1024, MALLOC_MMAP_THRESHOLD_=str(16 << 20)) == "False 0"
    assert _child(256 * 1024, GLIBC_TUNABLES=f"glibc.malloc.mmap_threshold={16 << 20}") == "False 0"


def test_training_thresholds_and_their_start_line(monkeypatch) -> None:
    assert allocator.training_mmap_threshold(grad_checkpoint=False) == 16 << 20
    assert allocator.training_mmap_threshold(grad_checkpoint=True) == 256 * 1024
    assert allocator.describe_threshold(16 << 20) == "16 MB"
    assert allocator.describe_threshold(256 * 1024) == "256 KB"
    set_to: list[int] = []
    monkeypatch.setattr(allocator, "set_mmap_threshold", lambda n: set_to.append(n) or True)
    assert tune_cpu_memory("cuda:0", grad_checkpoint=True) is None  # GPU runs keep glibc's default
    assert tune_cpu_memory("cpu", grad_checkpoint=True) == (
        "memory: tensors above 256 KB go back to the system when freed "
        "(glibc mmap threshold; MALLOC_MMAP_THRESHOLD_ overrides)"
    )
    assert set_to == [256 * 1024]
    monkeypatch.setattr(allocator, "set_mmap_threshold", lambda n: False)
    assert tune_cpu_memory("cpu", grad_checkpoint=False) is None  # not glibc, or the user's setting


# In a child: leave 64 MB of 64 KB holes inside the heap (every other block freed, so glibc cannot trim
# them from its top), then release them; prints the resident MB released.
HOLES = """
import ctypes, sys
from pathlib import Path
from rvos_cli.core import allocator
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def resident_mb():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20
blocks = [libc.malloc(64 * 1024) for _ in range(2048)]
for block in blocks:
    ctypes.memset(block, 1, 64 * 1024)
for block in blocks[::2]:
    libc.free(block)
before = resident_mb()
released = getattr(allocator, sys.argv[1])()
print(released, round(before - resident_mb()))
"""


@glibc_only
@pytest.mark.parametrize("release", ["release_free_memory", "trim_free_heap"])
def test_releasing_hands_holes_in_the_heap_back(release: str) -> None:
    command = [sys.executable, "-c", HOLES, release]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    released, megabytes = result.stdout.split()
    assert released == "True"
    assert 56 <= int(megabytes) <= 72  # 1024 holes of 64 KB, less the heap's own bookkeeping pages


# In a child: maybe share one arena, then let 4 threads allocate; glibc's malloc_stats lists the arenas.
ARENAS = """
import ctypes, sys, threading
from rvos_cli.core import allocator
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
if sys.argv[1] == "one":
    allocator.use_one_arena()
blocks = []
threads = [threading.Thread(target=lambda: blocks.append(libc.malloc(4096))) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()
"""


def _arenas(mode: str, **env: str) -> int:
    """How many arenas malloc_stats lists after 4 threads allocated in a child (`mode` 'one' or not)."""
    command = [sys.executable, "-c", ARENAS, mode]
    result = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, **env})
    return sum(line.startswith("Arena ") for line in result.stderr.splitlines())


@glibc_only
def test_use_one_arena_keeps_new_threads_on_the_main_arena() -> None:
    assert _arenas("default") > 1  # each thread got an arena of its own
    assert _arenas("one") == 1
    assert _arenas("one", MALLOC_ARENA_MAX="3") > 1  # the user's own setting wins
