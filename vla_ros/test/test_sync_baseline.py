"""`vla bench sync`'s baseline: message_filters' ApproximateTimeSynchronizer beside the core.

Both synchronisers get the same recorded inputs on the same arrival clock (no wall time is
read), so what each emits under each fault is exact and asserted here; the printed figures are
in docs/PERCEPTION.md.
"""

import pytest

from repo_paths import require_ros_extras

require_ros_extras()

from vla_perception.synchronizer import SyncConfig  # noqa: E402
from vla_tools.sync_baseline import FAULTS, SyncOutcome, compare  # noqa: E402
from vla_tools.sync_benchmark import run_baseline  # noqa: E402


@pytest.fixture(scope='module')
def outcomes() -> dict[tuple[str, str], SyncOutcome]:
    results, facts = compare(loops=3)
    assert facts['message_filters'] == {'queue_size': 10, 'slop_s': 0.1}
    return {(o.fault, o.synchroniser): o for o in results}


def test_as_recorded_both_emit_every_frame_complete(outcomes):
    ours, theirs = outcomes['none', 'sensor_sync core'], outcomes['none', 'message_filters']
    assert ours.frames == theirs.frames == ours.complete_frames == 63  # 21 frames x 3
    assert ours.latency_p99_ms == theirs.latency_p99_ms == 0.0


def test_a_camera_that_stops_silences_message_filters_but_not_the_core(outcomes):
    ours, theirs = (
        outcomes['camera_stops', 'sensor_sync core'],
        outcomes['camera_stops', 'message_filters'],
    )
    assert theirs.frames_after_fault == 0
    assert ours.frames == 63 and ours.frames_after_fault > 0
    assert ours.complete_frames == theirs.frames  # frames after the stop say the camera is out
    # The core waits at most its deadline for the dead camera, then stops waiting for it.
    assert 0.0 < ours.latency_p99_ms <= SyncConfig(('a',)).deadline_s * 1e3


def test_a_camera_clock_40_ms_ahead_shifts_both_frame_stamps(outcomes):
    for synchroniser in ('sensor_sync core', 'message_filters'):
        outcome = outcomes['clock_offset', synchroniser]
        assert outcome.frames == outcome.complete_frames == 63
        assert outcome.stamp_error_p99_ms == pytest.approx(40.0)


def test_stamps_jumping_back_reset_the_core_and_only_the_core_says_so(outcomes):
    ours = outcomes['stamps_jump_back', 'sensor_sync core']
    theirs = outcomes['stamps_jump_back', 'message_filters']
    assert ours.resets == 1 and theirs.resets == 0
    assert ours.frames_after_fault > 0 and theirs.frames_after_fault > 0


def test_the_benchmark_prints_both_synchronisers_side_by_side(capsys):
    report = run_baseline()
    printed = capsys.readouterr().out
    assert 'ApproximateTimeSynchronizer (queue 10, slop 0.1 s)' in printed
    for fault in FAULTS:
        rows = [line for line in printed.splitlines() if line.split()[:1] == [fault]]
        assert len(rows) == 2, printed
        assert 'sensor_sync core' in rows[0] and 'message_filters' in rows[1]
    assert [o['fault'] for o in report['outcomes']] == [f for f in FAULTS for _ in range(2)]
