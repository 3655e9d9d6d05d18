"""`vla bench pipeline`: matching camera rounds to the pipeline's outputs, and a short real run."""

import json
import math
from pathlib import Path

from repo_paths import run_vla
from vla_tools.bare_relay import STAGES
from vla_tools.pipeline_benchmark import Arrivals, round_latencies, summary_ms

MS = 1_000_000
NODES = {'sensor_sync_node', 'vla_inference_node', 'safety_monitor_node', 'trajectory_output_node'}


def test_each_round_is_matched_to_the_cycle_that_judged_its_plan():
    first, second, third = 10_000 * MS, 10_100 * MS, 10_200 * MS
    arrivals = Arrivals(
        status={first: first + 5 * MS, second: second + 6 * MS},
        plan={first: first + 40 * MS, second: second + 45 * MS},
        model_ms={first: 30.0, second: 31.0},
        # A watchdog cycle judged the first plan again later; the plan-run cycle answers it.
        # The second round's plan was judged by no cycle: dropped, like the unsynced third.
        trajectory={first + 42 * MS: first + 43 * MS, first + 90 * MS: first + 91 * MS},
        # Ages come as float32 seconds: the plan stamp is recovered to within nanoseconds.
        judged={first + 42 * MS: first - 7, first + 90 * MS: first + 3},
        path={first + 42 * MS: first + 44 * MS},
    )
    latencies = round_latencies([first, second, third], arrivals)
    assert latencies.answered == {first}
    assert (latencies.synced, latencies.planned) == (2, 2)
    assert latencies.end_to_end == [43 * MS]
    assert latencies.stages == {
        'sync': [5 * MS],
        'inference': [35 * MS],
        'safety': [3 * MS],
        'output': [1 * MS],
    }


def test_a_round_judged_without_a_path_counts_end_to_end_but_not_by_stage():
    stamp = 5_000 * MS
    arrivals = Arrivals(
        status={stamp: stamp + MS},
        plan={stamp: stamp + 30 * MS},
        trajectory={stamp + 31 * MS: stamp + 32 * MS},
        judged={stamp + 31 * MS: stamp},
    )
    latencies = round_latencies([stamp], arrivals)
    assert latencies.end_to_end == [32 * MS]
    assert all(values == [] for values in latencies.stages.values())


def test_latency_summaries_are_in_milliseconds():
    assert summary_ms([10 * MS, 20 * MS, 30 * MS]) == {'p50': 20.0, 'p99': 29.8, 'max': 30.0}
    assert all(math.isnan(v) for v in summary_ms([]).values())


def test_a_short_run_measures_the_pipeline_and_its_bare_transport(tmp_path: Path):
    out = tmp_path / 'bench.json'
    result = run_vla(
        'bench',
        'pipeline',
        '--duration',
        '3',
        '--case',
        'default',
        '--json',
        str(out),
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (case,) = json.loads(out.read_text())['cases']
    pipeline, bare = case['pipeline'], case['bare_transport']
    assert pipeline['image_size'] == '448x256' and pipeline['rounds'] >= 20
    for run in (pipeline, bare):
        assert run['answered'] > 0 and run['dropped'] == run['rounds'] - run['answered']
        assert all(run['stages_ms'][stage]['p50'] > 0 for stage in STAGES)
        for usage in run['processes'].values():
            assert usage['cpu_percent'] > 0 and usage['peak_rss_mb'] > 0
    assert set(pipeline['processes']) == NODES | {'synthetic_sensors'}
    assert set(bare['processes']) == {f'bare_{s}_relay' for s in STAGES} | {'synthetic_sensors'}
    # The pipeline moves the same messages as the bare relays and computes besides.
    assert pipeline['end_to_end_ms']['p50'] > bare['end_to_end_ms']['p50']
    assert 0 < pipeline['model_ms']['p50'] < pipeline['end_to_end_ms']['p50']
    assert case['comparison']['end_to_end_p50_ratio'] > 1
    assert set(case['goals']) == {
        'p99 <= 60 ms',
        '10 Hz sustained',
        'zero dropped frames',
        'beyond the floor <= 5 ms',
        'p99 <= 1.3 x p50',
    }
    compared = case['comparison']
    assert compared['beyond_floor_p50_ms'] == round(
        pipeline['end_to_end_ms']['p50']
        - (pipeline['model_ms']['p50'] + bare['end_to_end_ms']['p50']),
        2,
    )
    assert 'default (448x256):' in result.stdout and 'goals:' in result.stdout


def test_an_unknown_case_is_refused_with_the_choices():
    result = run_vla('bench', 'pipeline', '--case', 'huge')
    assert result.returncode == 1
    assert 'unknown case(s) huge: choose from default, 720p' in result.stderr
