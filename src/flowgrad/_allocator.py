"""The C allocator's caching of freed memory (glibc), for loops that allocate the same
large arrays again and again. Not imported by ``import flowgrad``: training and the
benchmarks turn it on.
"""

from __future__ import annotations

import ctypes

_MALLOC_TUNED = False


def retain_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Let the C allocator keep freed array memory for reuse instead of returning it to the
    operating system after every array (glibc only; elsewhere nothing changes).

    A training step allocates and frees the same large arrays (activations, im2col columns,
    gradients) every time. By default glibc gives blocks above 32 MiB, and whatever sits
    free at the top of its heap, back to the kernel, so each step faults its pages in again
    (about 2.5 µs per 4 KiB page: a fifth of a convolutional step's time). This raises
    both thresholds to ``limit_bytes``, process-wide: the memory a step needs stays mapped
    (RSS keeps its high-water mark, as PyTorch's allocator does). Returns whether it applied.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's mallopt among them
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters in <malloc.h>
        # Older glibc caps the mmap threshold at 32 MiB; larger blocks are then mapped anew.
        ok = (libc.mallopt(m_mmap_threshold, int(limit_bytes)) == 1
              or libc.mallopt(m_mmap_threshold, 32 << 20) == 1)
        ok = libc.mallopt(m_trim_threshold, int(limit_bytes)) == 1 and ok
    except (OSError, AttributeError, TypeError):  # not glibc (or no libc to open): no mallopt
        return False
    _MALLOC_TUNED = ok
    return ok
