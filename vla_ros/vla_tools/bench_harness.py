"""What every measurement of `vla bench`, `vla faults`, `vla soak` and `vla replay` shares.

A timing loop after a warm-up, percentile summaries of timings (NaN where nothing was
measured), the machine line each report starts with, right-aligned tables, and the JSON result
of a benchmark. Only the numbers measured differ from one benchmark to the next.
"""

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from vla_ros.process_stats import cpu_name
from vla_ros.reports import write_json

STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    'p50': lambda values: np.percentile(values, 50),
    'p99': lambda values: np.percentile(values, 99),
    'max': np.max,
    'mean': np.mean,
}


def latencies_ms(run: Callable[[], object], repeats: int, warm_up: int) -> np.ndarray:
    """Time `run()` after `warm_up` calls; return the per-call wall times in milliseconds."""
    for _ in range(warm_up):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return np.asarray(times)


def percentile(values: Sequence[float], q: float, digits: int | None = None) -> float:
    """Return the q-th percentile, rounded to `digits` decimals if given; NaN of no values."""
    if len(values) == 0:
        return math.nan
    value = float(np.percentile(values, q))
    return value if digits is None else round(value, digits)


def summary(
    values: Sequence[float] | np.ndarray,
    digits: int | None = None,
    statistics: Sequence[str] = ('p50', 'p99'),
    key: str = '{}',
) -> dict[str, float]:
    """Return the named statistics of `values` (p50, p99, max, mean), each under `key` ('{}_ms').

    Rounded to `digits` decimals when given; NaN each where there are no values.
    """
    array = np.asarray(values, dtype=np.float64)
    result = {}
    for name in statistics:
        value = float(STATISTICS[name](array)) if array.size else math.nan
        result[key.format(name)] = value if digits is None else round(value, digits)
    return result


def machine_line() -> str:
    """Return the machine a measurement ran on, as every report names it."""
    return f'{cpu_name()}, {os.cpu_count()} CPUs'


def table_lines(columns: Sequence[tuple[str, int]], rows: Iterable[Sequence[object]]) -> list[str]:
    """Return the header and a line a row; each cell right-aligned to its column's width."""
    widths = [width for _, width in columns]
    return [
        ' '.join(f'{cell:>{width}}' for cell, width in zip(row, widths, strict=True))
        for row in [[title for title, _ in columns], *rows]
    ]


def print_table(columns: Sequence[tuple[str, int]], rows: Iterable[Sequence[object]]) -> None:
    """Print `table_lines` of the rows."""
    for line in table_lines(columns, rows):
        print(line)


def write_benchmark_json(json_path: Path, benchmark: str, results: list, **fields: object) -> None:
    """Write a benchmark's result: its name, the CPU count, the results, then any other fields."""
    write_json(
        json_path, {'benchmark': benchmark, 'cpus': os.cpu_count(), 'results': results, **fields}
    )
