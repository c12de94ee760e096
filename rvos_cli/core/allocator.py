"""How glibc's malloc keeps freed tensor memory, tuned for training and serving on the CPU.

glibc serves an allocation above its mmap threshold with a fresh mapping that goes back to the system
when freed, and smaller ones from its heap, which keeps freed blocks for reuse. The threshold adapts:
each freed mapping raises it to that block's size, up to 32 MB, so after the first step of a training run
most activation tensors come from the heap. Their sizes change from layer to layer, the freed blocks
rarely fit the next request, and the heap grows: `mttr-a2d` held 1.9 GB of free heap beside 0.6 GB of
live heap after three steps. A fixed threshold stops that drift, at a page-fault cost per mapping.

`rvos serve` also keeps every thread on glibc's main arena (`use_one_arena`). By default each new thread
(a job's frame reader, output writer, preview encoder) may get its own arena, and which one a job's
buffers land in changes from job to job: the five job peaks of an `mttr-ytvos` server spread over
2.65-2.88 GB; with one arena, over 34-165 MB in four runs, at 2.39-2.69 GB.

Before each window the `Predictor` runs on the CPU, `trim_free_heap` hands back what the last window
freed: its leftovers (500-650 MB of free heap for `mttr-ytvos`, more or less of it resident depending
on how the last window's blocks fell) otherwise sat under the next window's peak, which varied by
180 MB from job to job: an `mttr-ytvos` server's job peaks were 2.39-2.69 GB, 2.23-2.36 GB with it.

Between jobs of a long-lived process (`rvos serve`, `rvos infer` over many videos), `release_free_memory`
hands the free heap pages of every arena back (`malloc_trim`): without it an `mttr-ytvos` server kept
about 1 GB more after each job and its peak grew by 520 MB over 5 jobs; with it the memory left after
each job is the same to the megabyte.

Written by hand with ctypes: these are two libc calls (`mallopt`, `malloc_trim`), no package wraps them.
Nothing changes off glibc; a setting the user made (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_ARENA_MAX`,
`GLIBC_TUNABLES`) is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import platform

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
M_ARENA_MAX = -8
MB = 1 << 20
# Plain training: large blocks only; 16 MB cost about 5 % in step time for 0.3 GB less peak memory.
TRAINING_MMAP_THRESHOLD = 16 * MB
# --grad-checkpoint asks for the least memory: every block above 256 KB goes back at once
# (0.9 GB less peak for `mttr-a2d`, about 35 % slower steps from the page faults).
LOW_MEMORY_MMAP_THRESHOLD = 256 * 1024


def user_set_threshold() -> bool:
    """True when the environment already fixes glibc's mmap threshold (then rvos leaves it alone)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "glibc.malloc.mmap_threshold" in tunables


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The running C library if it is glibc, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def set_mmap_threshold(nbytes: int) -> bool:
    """Fix glibc's mmap threshold at `nbytes` for this process (which also stops it adapting).

    Returns True when it was set; False off glibc, when the environment sets the threshold itself, or
    when glibc refused the value.
    """
    libc = _glibc()
    if libc is None or user_set_threshold():
        return False
    return bool(libc.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(nbytes)))


def use_one_arena() -> bool:
    """Make threads that have not allocated yet share glibc's main arena; call before starting them.

    Returns True when it was set; False off glibc or when the environment sets the arena count
    (`MALLOC_ARENA_MAX` or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`).
    """
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    if "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    return bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(1)))


def trim_free_heap() -> bool:
    """Return the free pages of every arena's heap to the system (`malloc_trim`); True when any went.

    Costs 2-35 ms with an `mttr-ytvos` heap; the pages fault back in only where they are used again.
    """
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(ctypes.c_size_t(0)))


def release_free_memory() -> bool:
    """Collect garbage, then return free heap memory to the system; True when glibc released any."""
    gc.collect()
    return trim_free_heap()


def training_mmap_threshold(grad_checkpoint: bool) -> int:
    """The threshold `rvos train` uses on the CPU: low with `--grad-checkpoint`, 16 MB otherwise."""
    return LOW_MEMORY_MMAP_THRESHOLD if grad_checkpoint else TRAINING_MMAP_THRESHOLD


def describe_threshold(nbytes: int) -> str:
    """'16 MB' / '256 KB': a threshold as the start lines print it."""
    return f"{nbytes // MB} MB" if nbytes >= MB else f"{nbytes // 1024} KB"
