"""The recorder writes bags that ROS tools read and that hold the simulation exactly.

It fails clearly on an unknown scenario, an unwritable folder or a full disk. Episodes are cut to
a few steps for speed.
"""

import argparse
import errno
import json
import shutil
from pathlib import Path

import pytest
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader, Writer

from message_trees import message_class
from vla_model.config import BEV_CLASSES, MAP_PRIOR_LAYERS, RATIONALES
from vla_perception.rig import RigConfig
from vla_ros.install_paths import vla_ros_file
from vla_ros.topics import (
    CLOCK_TOPIC,
    CONTROL_COMMAND_TOPIC,
    INSTRUCTION_TOPIC,
    OBSTACLES_TOPIC,
    ODOMETRY_TOPIC,
    RATIONALE_TOPIC,
    bev_topic,
    map_prior_topic,
)
from vla_sim.recorder import (
    DEFAULT_RIG,
    PARTIAL_DIR,
    RECORDING_JSON,
    RecordError,
    add_record_arguments,
    record,
    run_record,
)
from vla_sim.scenarios import get_scenario
from vla_sim.sim_messages import odometry_message
from vla_sim.simulation import SimConfig, SimulationCore

SCENARIO, SEED, STEPS = 'highway', 3, 5
FRAMES = STEPS + 1  # the first frame, then one per step
BAG = f'{SCENARIO}_seed{SEED}'


def _record(out_dir: Path, **kwargs):
    return record(SCENARIO, 1, out_dir, seed_start=SEED, max_steps=STEPS, progress=False, **kwargs)


def _messages(bag: Path) -> list[tuple[str, str, int, bytes]]:
    """(topic, type, log time, raw CDR) of every message, in bag order."""
    with Reader(bag) as reader:
        return [
            (connection.topic, connection.msgtype, timestamp, bytes(raw))
            for connection, timestamp, raw in reader.messages()
        ]


def _stamp_ns(message: object) -> int:
    stamp = next(
        getattr(message, name) for name in ('clock', 'stamp', 'header') if hasattr(message, name)
    )
    stamp = getattr(stamp, 'stamp', stamp)  # a header's stamp
    return stamp.sec * 1_000_000_000 + stamp.nanosec


@pytest.fixture(scope='module')
def rig() -> RigConfig:
    return RigConfig.from_file(vla_ros_file(DEFAULT_RIG))


@pytest.fixture(scope='module')
def recorded(tmp_path_factory) -> tuple[Path, object]:
    out_dir = tmp_path_factory.mktemp('recording')
    return out_dir, _record(out_dir)


def test_bag_has_every_topic_once_per_frame_with_ros_types(recorded, rig):
    out_dir, summary = recorded
    assert (summary.written, summary.skipped, summary.frames) == (1, 0, FRAMES)
    assert not any((out_dir / PARTIAL_DIR).iterdir())
    expected = {
        **{camera.image_topic: 'sensor_msgs/msg/Image' for camera in rig.cameras},
        **{camera.info_topic: 'sensor_msgs/msg/CameraInfo' for camera in rig.cameras},
        **{bev_topic(name): 'nav_msgs/msg/OccupancyGrid' for name in BEV_CLASSES},
        **{map_prior_topic(name): 'nav_msgs/msg/OccupancyGrid' for name in MAP_PRIOR_LAYERS},
        ODOMETRY_TOPIC: 'nav_msgs/msg/Odometry',
        OBSTACLES_TOPIC: 'vla_msgs/msg/ObstacleArray',
        CLOCK_TOPIC: 'rosgraph_msgs/msg/Clock',
        INSTRUCTION_TOPIC: 'vla_msgs/msg/Instruction',
        RATIONALE_TOPIC: 'std_msgs/msg/String',
        CONTROL_COMMAND_TOPIC: 'vla_msgs/msg/ControlCommand',
    }
    with Reader(out_dir / BAG) as reader:
        topics = {topic: info.msgtype for topic, info in reader.topics.items()}
        counts = {topic: info.msgcount for topic, info in reader.topics.items()}
        instruction_qos = next(
            c.ext.offered_qos_profiles for c in reader.connections if c.topic == INSTRUCTION_TOPIC
        )
    assert topics == expected
    assert counts == {topic: 1 if topic == INSTRUCTION_TOPIC else FRAMES for topic in expected}
    assert instruction_qos[0].durability.name == 'TRANSIENT_LOCAL'  # latched on replay too

    instruction = SimulationCore(get_scenario(SCENARIO), SEED, rig, SimConfig(render=False))
    sizes = {camera.frame_id: camera.intrinsics for camera in rig.cameras}
    clock_stamps = []
    for topic, msgtype, log_time, raw in _messages(out_dir / BAG):
        message = deserialize_message(raw, message_class(msgtype))
        if topic != RATIONALE_TOPIC:  # a std_msgs/String has no stamp
            assert _stamp_ns(message) == log_time, topic  # log time = the message's stamp
        if msgtype == 'sensor_msgs/msg/Image':
            intrinsics = sizes[message.header.frame_id]
            assert (message.width, message.height) == (intrinsics.width, intrinsics.height)
            assert message.encoding == 'rgb8'
            assert len(message.data) == 3 * intrinsics.width * intrinsics.height
        elif topic == INSTRUCTION_TOPIC:
            assert message.text == instruction.instruction.text
            assert message.text == summary.episodes[0].instruction
        elif topic == RATIONALE_TOPIC:
            assert message.data in RATIONALES
        elif topic == CONTROL_COMMAND_TOPIC:
            assert message.longitudinal.is_defined_acceleration
        elif topic == CLOCK_TOPIC:
            clock_stamps.append(log_time)
    assert clock_stamps == sorted(set(clock_stamps)) and len(clock_stamps) == FRAMES

    report = json.loads((out_dir / RECORDING_JSON).read_text())
    assert report['scenario'] == SCENARIO and report['seeds'] == [SEED]
    assert report['episodes'][0]['frames'] == FRAMES


def test_odometry_is_what_the_expert_driven_simulation_produces(recorded, rig):
    out_dir, _ = recorded
    core = SimulationCore(get_scenario(SCENARIO), SEED, rig, SimConfig(render=False))
    expected = []
    for _ in range(FRAMES):
        expected.append(odometry_message(core.frame.ego, core.frame.stamp_ns))
        core.step(core.expert_decision().command)
    odometry = [
        deserialize_message(raw, Odometry)
        for topic, *_, raw in _messages(out_dir / BAG)
        if topic == ODOMETRY_TOPIC
    ]
    assert odometry == expected


def test_same_seed_gives_the_same_bag_byte_for_byte(recorded, tmp_path):
    out_dir, _ = recorded
    _record(tmp_path)
    assert _messages(tmp_path / BAG) == _messages(out_dir / BAG)


def test_rerun_skips_finished_episodes_and_removes_stale_partial_ones(recorded, capsys):
    out_dir, first = recorded
    stale = out_dir / PARTIAL_DIR / f'{SCENARIO}_seed{SEED + 1}'
    stale.mkdir()
    (stale / 'half.mcap').write_bytes(b'\x89MCAP')
    mcap = out_dir / BAG / f'{BAG}.mcap'
    before = mcap.stat().st_mtime_ns
    summary = _record(out_dir)
    assert (summary.written, summary.skipped, summary.frames) == (0, 1, 0)
    assert summary.episodes[0].instruction == first.episodes[0].instruction
    assert summary.episodes[0].bytes == first.episodes[0].bytes
    assert mcap.stat().st_mtime_ns == before
    assert not stale.exists()
    output = capsys.readouterr().out
    assert f'{BAG}: already recorded, skipping' in output
    assert f'removed {stale}' in output


def test_rerun_with_other_settings_is_refused(recorded):
    out_dir, _ = recorded
    with pytest.raises(RecordError, match='recorded with other settings.*max_steps'):
        record(SCENARIO, 1, out_dir, seed_start=SEED, max_steps=STEPS - 1, progress=False)


def test_unknown_scenario_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario 'motorway'; known: highway, merge"):
        record('motorway', 1, tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_unwritable_output_directory_is_refused(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    with pytest.raises(RecordError, match='output directory .* is not writable'):
        _record(blocker / 'out')


def test_clearly_insufficient_space_is_refused_before_recording(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, 'disk_usage', lambda _path: usage._replace(free=10_000_000))
    with pytest.raises(RecordError, match=r'need about .* MB, but only 10.0 MB is free'):
        _record(tmp_path)
    assert not (tmp_path / BAG).exists()


def test_full_disk_removes_the_partial_bag_and_says_how_much_is_free(tmp_path, monkeypatch):
    real_write = Writer.write
    calls = []

    def write(self, connection, timestamp, data):
        calls.append(connection.topic)
        if len(calls) > 20:
            raise OSError(errno.ENOSPC, 'No space left on device')
        real_write(self, connection, timestamp, data)

    monkeypatch.setattr(Writer, 'write', write)
    with pytest.raises(RecordError, match=rf'disk full while recording {BAG}: .* free on the'):
        _record(tmp_path)
    assert not (tmp_path / BAG).exists()
    assert not any((tmp_path / PARTIAL_DIR).iterdir())


def test_command_line_refuses_an_unknown_scenario(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_record_arguments(parser)
    args = parser.parse_args(['--scenario', 'nope', '--episodes', '2', '--out', str(tmp_path)])
    assert (args.seed_start, args.split, args.no_progress, args.rig) == (0, 'train', False, None)
    assert run_record(args) == 1
    assert "vla sim record: unknown scenario 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(['--scenario', 'highway', '--episodes', '0', '--out', str(tmp_path)])
