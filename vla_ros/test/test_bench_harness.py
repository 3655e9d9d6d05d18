"""The measurement harness the benchmarks share (vla_tools.bench_harness)."""

import math

import numpy as np
import pytest

from vla_tools.bench_harness import latencies_ms, percentile, summary, table_lines


def test_summary_names_rounds_and_keys_each_statistic():
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert summary(values, 2, ('p50', 'p99', 'max', 'mean'), 'x_{}_ms') == {
        'x_p50_ms': 3.0,
        'x_p99_ms': round(float(np.percentile(values, 99)), 2),
        'x_max_ms': 100.0,
        'x_mean_ms': 22.0,
    }
    assert summary(values) == {'p50': 3.0, 'p99': float(np.percentile(values, 99))}


def test_nothing_measured_reads_nan():
    assert all(math.isnan(v) for v in summary([], 2, ('p50', 'p99', 'max')).values())
    assert math.isnan(percentile([], 99, 1))
    assert percentile([1.0, 2.0], 50, 1) == 1.5


def test_table_lines_right_align_each_cell_to_its_column():
    lines = table_lines([('case', 6), ('p50', 5)], [['far', 0.25], ['near', 12]])
    assert lines == ['  case   p50', '   far  0.25', '  near    12']


def test_latencies_ms_counts_the_warm_up_apart():
    calls = []
    times = latencies_ms(lambda: calls.append(1), repeats=4, warm_up=2)
    assert len(calls) == 6 and times.shape == (4,)
    assert (times >= 0).all() and times.max() < 1e3
    with pytest.raises(ZeroDivisionError):
        latencies_ms(lambda: 1 / 0, repeats=1, warm_up=0)
