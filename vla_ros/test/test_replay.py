"""`vla replay`: deterministic offline replay through the cores, and live replay over DDS."""

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader
from vla_msgs.msg import Trajectory, VlaPlan

from repo_paths import run_vla, tool
from vla_model.artifacts import load_weights
from vla_model.shipped import shipped_model
from vla_perception.synchronizer import stamp_to_ns
from vla_planning.vla_inference_node import model_id
from vla_ros.bag_types import make_typestore
from vla_ros.qos import RELIABLE
from vla_ros.testing import RosHarness

FRONT_IMAGE = '/sensing/camera/front/image_raw'


def replay(bag: Path, *options: str) -> subprocess.CompletedProcess:
    return run_vla('replay', str(bag), '--no-progress', *options)


def raw_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    with Reader(bag) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def image_stamps(bag: Path) -> set[int]:
    typestore = make_typestore()
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == FRONT_IMAGE]
        return {
            stamp_to_ns(typestore.deserialize_cdr(raw, c.msgtype).header.stamp)
            for c, _, raw in reader.messages(connections=connections)
        }


@pytest.fixture(scope='module')
def two_replays(highway_bag: Path, tmp_path_factory: pytest.TempPathFactory):
    runs = []
    for run in (1, 2):
        folder = tmp_path_factory.mktemp(f'replay{run}')
        result = replay(
            highway_bag, '--out', str(folder / 'out'), '--json', str(folder / 's.json')
        )
        assert result.returncode == 0, result.stderr
        runs.append((folder / 'out', json.loads((folder / 's.json').read_text()), result.stdout))
    return runs


def test_offline_replay_is_bit_reproducible(two_replays):
    (first, summary1, _), (second, summary2, _) = two_replays
    messages = raw_messages(first)
    assert messages and messages == raw_messages(second)
    for summary in (summary1, summary2):
        assert summary.pop('model_latency_ms')['p50'] > 0  # measured, so not compared
    assert summary1 == summary2


def test_offline_replay_publishes_what_the_nodes_would(highway_bag: Path, two_replays):
    out, summary, stdout = two_replays[0]
    typestore = make_typestore()
    with Reader(out) as reader:
        decoded = [
            (c.topic, t, typestore.deserialize_cdr(raw, c.msgtype))
            for c, t, raw in reader.messages()
        ]
    counts = Counter(topic for topic, _, _ in decoded)
    plans = [m for topic, _, m in decoded if topic == '/vla/plan']
    cycles = [t for topic, t, _ in decoded if topic == '/vla/trajectory']
    assert counts['/vla/plan'] == counts['/vla/neural_map'] == counts['/vla/sensor_status']
    assert counts['/vla/trajectory'] == counts['/vla/safety_status'] == len(cycles)
    # A plan for every frame, at the frame's camera stamp, by the shipped model.
    assert {stamp_to_ns(p.header.stamp) for p in plans} == image_stamps(highway_bag)
    shipped = shipped_model()
    config = load_weights(shipped.weights_path, shipped.weights_sha256).config
    assert {p.model_id for p in plans} == {model_id(config, shipped.weights_sha256)}
    assert all(p.inference_ms == p.input_to_output_ms == 0.0 for p in plans)
    # The monitor cycles on each plan, at its log time, and on its 10 Hz watchdog in between.
    assert {t for topic, t, _ in decoded if topic == '/vla/plan'} <= set(cycles)
    assert max(b - a for a, b in zip(cycles, cycles[1:], strict=False)) <= 100_000_000
    assert summary['published'] == dict(sorted(counts.items()))
    events = summary['safety_events']
    assert events and events[0]['log_time_ns'] == cycles[0]  # the first cycle sets a state
    assert {e['state'] for e in events} <= {'NOMINAL', 'DEGRADED', 'OVERRIDE', 'MINIMAL_RISK'}
    assert summary['open_loop']['frames'] > 0 and summary['open_loop']['l2_3s_m'] > 0
    assert f'{counts["/vla/plan"]} plans' in stdout


def test_bad_replays_are_refused_with_one_line(highway_bag: Path, tmp_path: Path):
    missing = replay(tmp_path / 'nothing')
    assert missing.returncode == 1 and 'no bag at' in missing.stderr
    taken = tmp_path / 'taken'
    taken.mkdir()
    exists = replay(highway_bag, '--out', str(taken))
    assert exists.returncode == 1 and 'exists; give a new path' in exists.stderr
    shipped = shipped_model()
    wrong = replay(highway_bag, '--weights', str(shipped.weights_path), '--sha256', 'f' * 64)
    assert wrong.returncode == 1 and 'f' * 64 in wrong.stderr
    assert 'Traceback' not in wrong.stderr + exists.stderr + missing.stderr
    rate = replay(highway_bag, '--live', '--rate', '0')
    assert rate.returncode == 1 and '--rate must be a positive number' in rate.stderr


def test_live_replay_drives_the_running_nodes_on_the_bag_clock(ros: RosHarness, highway_bag: Path):
    node = ros.node('observer')
    plans: list[VlaPlan] = []
    trajectories: list[Trajectory] = []
    node.create_subscription(VlaPlan, '/vla/plan', plans.append, RELIABLE)
    node.create_subscription(Trajectory, '/vla/trajectory', trajectories.append, RELIABLE)
    pipeline = subprocess.Popen(
        [tool('vla'), 'run', 'pipeline', 'use_sim_time:=true'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        loaded = ros.spin_until(lambda: node.count_publishers('/vla/plan') > 0, 120.0)
        assert loaded, 'the inference node did not load the model'
        player = subprocess.Popen(
            [tool('vla'), 'replay', str(highway_bag), '--live', '--no-progress'],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert ros.spin_until(lambda: player.poll() is not None, 60.0)
        assert player.returncode == 0, player.stderr.read()
        ros.spin_until(lambda: False, 2.0)
    finally:
        pipeline.send_signal(signal.SIGINT)
        pipeline.communicate(timeout=30)
    stamps = image_stamps(highway_bag)
    planned = {stamp_to_ns(p.header.stamp) for p in plans}
    assert len(planned) >= 10 and planned <= stamps, 'plans must be of the bag frames'
    # The monitor ran on the bag's /clock: its trajectories are stamped in the bag's time.
    cycle_stamps = [stamp_to_ns(t.header.stamp) for t in trajectories]
    assert cycle_stamps and min(stamps) - 1e9 <= max(cycle_stamps) <= max(stamps) + 1e9
