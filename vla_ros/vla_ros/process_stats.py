"""What the kernel says about a process (Linux /proc): CPU time and memory, for benchmarks."""

import os
import platform
from pathlib import Path


def process_cpu_s(pid: int) -> float:
    """Return the user + system CPU seconds of a process so far."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(f'{field}:'):
            return int(line.split()[1])
    raise ValueError(f'/proc/{pid}/status has no {field}')


def resident_mb(pid: int) -> float:
    """Return the resident memory of a process now, MiB (VmRSS)."""
    return _status_kib(pid, 'VmRSS') / 1024.0


def peak_resident_mb(pid: int) -> float:
    """Return the largest resident memory of a process so far, MiB (VmHWM)."""
    return _status_kib(pid, 'VmHWM') / 1024.0


def cpu_name() -> str:
    """Return the CPU model (Linux /proc/cpuinfo), else what the platform module knows."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
