"""`vla soak`: the analysis on synthetic series, and a reduced soak of the real nodes over DDS."""

import json
import math

import numpy as np
import pytest

from repo_paths import run_vla
from vla_tools.soak import (
    LatencyWindow,
    cpu_percent,
    drift_per_hour,
    latency_windows,
    memory_trend,
    slope_per_hour,
    warm_up_s,
    window_s,
)

NODES = {
    'sim_bridge_node',
    'sensor_sync_node',
    'vla_inference_node',
    'safety_monitor_node',
    'trajectory_output_node',
}


def test_a_known_slope_gives_that_growth_per_hour():
    times = [5.0 * i for i in range(100)]
    rss = [200.0 + 0.01 * t for t in times]  # 0.01 MiB/s
    assert slope_per_hour(times, rss) == pytest.approx(36.0)


def test_memory_growth_is_fitted_after_the_warm_up_only():
    times = [float(t) for t in range(0, 600, 5)]
    start_up = [100.0 + 5.0 * t if t < 60 else 400.0 + 0.002 * t for t in times]
    trend = memory_trend(times, start_up, peak_mb=420.0, warm_up=60.0)
    assert trend.growth_mb_per_h == pytest.approx(0.002 * 3600)
    assert trend.start_mb == pytest.approx(400.0 + 0.002 * 60)
    assert trend.end_mb == start_up[-1] and trend.peak_mb == 420.0


def test_flat_noisy_memory_grows_about_nothing():
    rng = np.random.default_rng(0)
    times = [float(t) for t in range(0, 1800, 5)]
    rss = list(300.0 + rng.normal(0.0, 0.5, len(times)))
    assert abs(memory_trend(times, rss, 302.0, 60.0).growth_mb_per_h) < 1.0


def test_one_sample_has_no_slope():
    assert math.isnan(slope_per_hour([3.0], [1.0]))
    assert math.isnan(memory_trend([], [], math.nan, 60.0).growth_mb_per_h)


def test_warm_up_and_windows_scale_down_for_short_runs():
    assert warm_up_s(1800.0) == 60.0 and window_s(1800.0) == 300.0
    assert warm_up_s(30.0) == pytest.approx(3.0) and window_s(30.0) == pytest.approx(5.0)


def test_latencies_split_into_consecutive_windows():
    times = [0.5 * i for i in range(120)]  # 0 .. 59.5 s
    latencies = [100.0 + (t // 10) for t in times]  # each 10 s window 1 ms slower
    windows = latency_windows(times, latencies, 0.0, 60.0, 10.0)
    assert [(w.start_s, w.end_s, w.plans) for w in windows] == [
        (10.0 * k, 10.0 * (k + 1), 20) for k in range(6)
    ]
    assert [w.p50_ms for w in windows] == [100.0 + k for k in range(6)]
    assert drift_per_hour(windows) == pytest.approx(360.0)  # 1 ms per 10 s


def test_windows_leave_out_the_warm_up_non_finite_values_and_empty_windows():
    times = [1.0, 2.0, 12.0, 13.0, 35.0, 44.0]
    latencies = [900.0, 900.0, 50.0, math.nan, 70.0, 80.0]
    windows = latency_windows(times, latencies, 10.0, 44.0, 10.0)
    assert [(w.start_s, w.end_s, w.plans) for w in windows] == [
        (10.0, 20.0, 1),
        (30.0, 40.0, 1),
        (40.0, 44.0, 1),  # the last window ends with the run; 20-30 s had no plan
    ]
    assert windows[0].max_ms == 50.0


def test_flat_latency_has_no_drift():
    windows = [LatencyWindow(10.0 * k, 10.0 * (k + 1), 5, 80.0, 90.0, 95.0) for k in range(6)]
    assert drift_per_hour(windows) == pytest.approx(0.0)


def test_cpu_percent_after_the_warm_up():
    times = [0.0, 10.0, 20.0, 30.0]
    cpu = [0.0, 9.0, 14.0, 19.0]  # busy start-up, then half a core
    assert cpu_percent(times, cpu, warm_up=10.0) == pytest.approx(50.0)


def test_minutes_must_be_positive():
    result = run_vla('soak', '--minutes', '0')
    assert result.returncode == 1 and 'must be positive' in result.stderr


@pytest.mark.timeout(600)
def test_a_short_soak_of_the_real_nodes_reports_every_node(tmp_path):
    report, extra = tmp_path / 'soak', tmp_path / 'figures.json'
    result = run_vla(
        'soak',
        '--minutes',
        '0.5',
        '--sample-s',
        '1',
        '--report',
        str(report),
        '--json',
        str(extra),
        timeout=540.0,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((report / 'soak.json').read_text())
    assert extra.read_text() == (report / 'soak.json').read_text()
    assert summary['outcome'] == 'completed'
    assert set(summary['samples']) == NODES == set(summary['nodes'])
    for name, series in summary['samples'].items():
        assert len(series['rss_mb']) >= 2 and min(series['rss_mb']) > 0, name
        assert series['cpu_s'][-1] > 0, name
    assert summary['sim']['steps'] > 0 and summary['sim']['simulated_s'] > 0
    assert summary['sim']['plans_received'] > 0
    assert summary['latency']['frame_to_plan_ms']['windows']
    assert sum(summary['safety_states'].values()) > 0
    page = (report / 'report.md').read_text()
    assert all(f'| {name} |' in page for name in NODES)
    for name in ('rss.png', 'latency.png', *(f'logs/{node}.log' for node in NODES)):
        assert (report / name).stat().st_size > 0, name
    assert result.stdout.strip().splitlines()[-1].startswith('soak: 0.5 min of highway')
