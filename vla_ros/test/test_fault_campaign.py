"""`vla faults`: its judgements of trajectories and results, and a reduced campaign over DDS."""

import json
import math
from pathlib import Path

import pytest
from sensor_msgs.msg import Image
from vla_msgs.msg import ControlCommand, Trajectory, TrajectoryPoint, VlaPlan

from repo_paths import run_vla
from vla_ros.stamps import to_time
from vla_tools.fault_campaign import (
    FAULT_NAMES,
    FAULTS,
    RECOVERY_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    FaultResult,
    commands_above_trusted,
    commands_accelerating,
    markdown_table,
    nan_plan,
    plan_latency_note,
    unsafe,
)
from vla_tools.synthetic_sensors import malformed_image

REDUCED = (
    'camera dropout',
    'odometry lost',
    'NaN/Inf plan',
    'inference node killed',
    'malformed image: giant',
    'instruction: control characters',
    'instruction: not English',
    'out-of-range parameter',
)


def trajectory(speeds: list[float]) -> Trajectory:
    message = Trajectory()
    for index, speed in enumerate(speeds):
        point = TrajectoryPoint(longitudinal_velocity_mps=speed)
        point.pose.position.x = float(index)
        point.pose.orientation.w = 1.0
        message.points.append(point)
    return message


def result(**overrides) -> FaultResult:
    fields = {
        'fault': 'odometry lost',
        'injection': 'odometry stops',
        'expected': 'stop',
        'ftt_s': 0.7,
        'detected_s': 0.2,
        'safe_s': 0.2,
        'within_ftt': True,
        'recovered_s': 1.1,
        'unsafe_trajectories': 0,
        'crashed': [],
    }
    return FaultResult(**{**fields, **overrides})


def test_non_finite_or_too_fast_trajectories_are_unsafe():
    assert not unsafe(trajectory([10.0, 10.0]))
    assert unsafe(trajectory([10.0, math.nan]))
    assert unsafe(trajectory([10.0, 40.0]))  # over the 36.1 m/s hard limit
    broken = trajectory([10.0, 10.0])
    broken.points[1].pose.position.y = math.inf
    assert unsafe(broken)


def command(stamp_ns: int, velocity: float, acceleration: float = 0.0) -> ControlCommand:
    message = ControlCommand(stamp=to_time(stamp_ns))
    message.longitudinal.velocity, message.longitudinal.acceleration = velocity, acceleration
    return message


def test_a_command_no_trusted_trajectory_asked_for_followed_another_source():
    trusted, rogue = trajectory([10.0, 10.0]), trajectory([60.0, 60.0])
    trusted.header.stamp = rogue.header.stamp = to_time(2_000_000_000)
    sent = [trusted, rogue]
    sources = [b'monitor', b'rogue']
    followed = [command(2_100_000_000, 10.5), command(2_200_000_000, 36.1)]
    assert commands_above_trusted(sent, sources, {b'rogue'}, followed, 2_000_000_000) == [
        pytest.approx(36.1)
    ]
    before = [command(1_000_000_000, 36.1)]  # before the fault: not judged
    assert commands_above_trusted(sent, sources, {b'rogue'}, before, 2_000_000_000) == []
    # Were the rogue's trajectories trusted, 36 m/s would have been asked for: no violation.
    assert commands_above_trusted(sent, sources, set(), followed, 2_000_000_000) == []


def test_a_stop_that_still_accelerates_once_due_is_named():
    commands = [command(500, 10.0, 1.5), command(1_500, 10.0, -0.5), command(1_600, 10.0, 0.2)]
    assert commands_accelerating(commands, 1_000) == [pytest.approx(0.2)]
    assert commands_accelerating(commands[:2], 1_000) == []


def test_the_plan_latency_during_a_fault_is_set_beside_as_long_before_it():
    latencies = [(stamp, ms) for stamp, ms in ((5, 40.0), (8, 50.0), (10, 60.0), (12, 90.0))]
    note = plan_latency_note(latencies, 10, 15)
    assert note == (
        'plan latency during the fault: 2 plans, p50 75.0 ms, max 90.0 ms; '
        'before it: 2 plans, p50 45.0 ms, max 50.0 ms'
    )
    assert 'during the fault: no plan' in plan_latency_note(latencies, 20, 30)


def test_an_injected_plan_is_a_stamped_copy_with_non_finite_values():
    template = VlaPlan(trajectory=trajectory([5.0, 5.0, 5.0]), confidence=0.9)
    template.header.frame_id = 'base_link'
    plan = nan_plan(template, 7_000_000_001)
    assert (plan.header.stamp.sec, plan.header.stamp.nanosec) == (7, 1)
    assert plan.header.frame_id == 'base_link' and unsafe(plan.trajectory)


@pytest.mark.parametrize('kind', ['size', 'encoding', 'giant', 'empty'])
def test_malformed_images_break_one_thing(kind: str):
    good = Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(12))
    broken = malformed_image(kind, good)
    fields = ('height', 'width', 'encoding', 'step')
    changed = {f for f in fields if getattr(broken, f) != getattr(good, f)}
    changed |= {'data'} if bytes(broken.data) != bytes(good.data) else set()
    assert (
        changed
        == {
            'size': {'data'},
            'encoding': {'encoding'},
            'giant': {'height', 'width', 'step'},
            'empty': {'height', 'width', 'step', 'data'},
        }[kind]
    )


def test_a_fault_passes_only_if_safe_in_time_clean_and_recovered():
    assert result().passed
    assert not result(within_ftt=False).passed
    assert not result(unsafe_trajectories=1).passed
    assert not result(crashed=['vla_inference_node (exit 1)']).passed
    assert not result(recovered_s=None).passed
    table = markdown_table([result(), result(recovered_s=None)])
    assert table.splitlines()[2].endswith('| 0 | none | pass |')
    assert '| — |' in table.splitlines()[3] and table.endswith('| FAIL |')


def test_a_restarted_process_gets_bring_ups_budget_to_recover():
    # A killed node restarts from scratch (torch, ONNX Runtime, the model): 21-24 s on a slow CI
    # machine, beyond the 20 s a fault gets when every process keeps running.
    budgets = {fault.name: fault.recovery_timeout_s for fault in FAULTS}
    assert budgets['inference node killed'] == budgets['sync node killed'] == STARTUP_TIMEOUT_S
    assert budgets['camera dropout'] == budgets['odometry lost'] == RECOVERY_TIMEOUT_S


def test_a_reduced_campaign_reaches_every_safe_state_and_recovers(tmp_path: Path):
    out = tmp_path / 'faults.json'
    arguments = [argument for name in REDUCED for argument in ('--only', name)]
    outcome = run_vla('faults', *arguments, '--json', str(out), timeout=600)
    assert outcome.returncode == 0, outcome.stdout[-3000:] + outcome.stderr[-3000:]
    results = json.loads(out.read_text())['results']
    assert [r['fault'] for r in results] == list(REDUCED)
    for r in results:
        assert r['unsafe_trajectories'] == 0 and r['crashed'] == [], r
        assert r['safe_s'] is not None and r['recovered_s'] is not None, r
        # Three monitor cycles of slack for a loaded machine; the campaign reports the exact time.
        assert r['safe_s'] <= r['ftt_s'] + 0.3, r
    by_name = {r['fault']: r for r in results}
    assert any('refused' in note for note in by_name['out-of-range parameter']['notes'])
    assert f'{len(REDUCED)}/{len(REDUCED)} faults handled safely' in outcome.stdout


def test_an_unknown_fault_is_refused_with_the_choices():
    outcome = run_vla('faults', '--only', 'gremlins')
    assert outcome.returncode == 1
    assert 'unknown fault(s) gremlins: choose from' in outcome.stderr
    assert all(name in outcome.stderr for name in FAULT_NAMES)
