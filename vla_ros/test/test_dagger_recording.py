"""DAgger recording: the student drives, the expert labels every state it reaches.

The student is the untrained model through the whole pipeline (torch backend, no export), which
the safety monitor stops: its drive is visibly not the expert's, which is the point.
"""

import argparse
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from std_msgs.msg import Header
from vla_msgs.msg import Trajectory

from message_trees import message_class
from vla_model.bag_cache import BagReadError, DatasetSettings, load_bag
from vla_model.config import student
from vla_model.driving_labels import expert_trajectory
from vla_model.trajectory_messages import trajectory_arrays, trajectory_message
from vla_ros.topics import CONTROL_COMMAND_TOPIC, EXPERT_TRAJECTORY_TOPIC, ODOMETRY_TOPIC
from vla_sim.expert_lookahead import expert_lookahead
from vla_sim.pipeline_driver import PipelineDriver
from vla_sim.recorder import add_record_arguments, record, run_record
from vla_sim.scenarios import get_scenario
from vla_sim.simulation import SimConfig, SimulationCore

SEED, STEPS = 3, 45  # the session's expert bag (conftest.highway_bag) is this episode


def encode(text: str) -> np.ndarray:
    return np.full(384, len(text), np.float32)


def messages(bag: Path, topic: str) -> list:
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [
            deserialize_message(bytes(raw), message_class(connection.msgtype))
            for connection, _, raw in reader.messages(connections=connections)
        ]


def positions(bag: Path) -> np.ndarray:
    return np.array(
        [(m.pose.pose.position.x, m.pose.pose.position.y) for m in messages(bag, ODOMETRY_TOPIC)]
    )


@pytest.fixture(scope='module')
def untrained(rig) -> PipelineDriver:
    driver = PipelineDriver(rig, backend='torch')
    yield driver
    driver.close()


@pytest.fixture(scope='module')
def student_bag(tmp_path_factory, untrained) -> Path:
    out_dir = tmp_path_factory.mktemp('dagger')
    record('highway', 1, out_dir, seed_start=SEED, max_steps=STEPS, progress=False,
           student=untrained)  # fmt: skip
    return out_dir / f'highway_seed{SEED}'


def test_every_state_the_student_reaches_carries_the_experts_label(student_bag, rig):
    labels = messages(student_bag, EXPERT_TRAJECTORY_TOPIC)
    odometry = messages(student_bag, ODOMETRY_TOPIC)
    assert len(labels) == len(odometry) == STEPS + 1
    assert [m.header.stamp for m in labels] == [m.header.stamp for m in odometry]
    first = labels[0]
    assert first.origin == Trajectory.ORIGIN_EXPERT and first.header.frame_id == 'base_link'
    times, poses, speeds = trajectory_arrays(first)
    np.testing.assert_allclose(times, 0.5 * np.arange(1, 7))
    # The first state is the episode's start: the label is the expert's look-ahead from there.
    fresh = SimulationCore(get_scenario('highway'), SEED, rig, SimConfig(render=False))
    np.testing.assert_allclose(poses, expert_lookahead(fresh, student()), atol=1e-4)
    assert speeds[0] > 15.0  # the expert drives on at highway speed...


def test_the_student_drove_and_its_commands_are_recorded(student_bag, highway_bag):
    driven, demonstrated = positions(student_bag), positions(highway_bag)
    assert len(driven) == len(demonstrated)
    assert np.abs(driven - demonstrated).max() > 1.0  # ...the stopped student does not
    commands = messages(student_bag, CONTROL_COMMAND_TOPIC)
    assert len(commands) == STEPS + 1
    # The monitor's comfortable stop (-1 m/s^2) drove, not the expert.
    assert all(c.longitudinal.acceleration == pytest.approx(-1.0) for c in commands[-10:])
    expert_commands = messages(highway_bag, CONTROL_COMMAND_TOPIC)
    assert all(c.longitudinal.acceleration != -1.0 for c in expert_commands[-10:])


def test_with_the_expert_in_control_everywhere_the_drive_is_the_experts(
    tmp_path, untrained, highway_bag
):
    """The look-ahead and the student run every frame and change nothing in the episode."""
    record('highway', 1, tmp_path, seed_start=SEED, max_steps=STEPS, progress=False,
           student=untrained, expert_share=1.0)  # fmt: skip
    np.testing.assert_array_equal(
        positions(tmp_path / f'highway_seed{SEED}'), positions(highway_bag)
    )


def test_the_dataset_takes_the_experts_labels_over_the_logged_future(student_bag, rig, tmp_path):
    settings = DatasetSettings.defaults(student(), rig)
    cache = load_bag(student_bag, tmp_path, settings, encode, progress=False)
    labels = {
        (m.header.stamp.sec, m.header.stamp.nanosec): expert_trajectory(m, student())
        for m in messages(student_bag, EXPERT_TRAJECTORY_TOPIC)
    }
    assert cache.arrays['trajectory_valid'].all()  # to the last frame: no future needed
    for stamp_ns, trajectory in zip(
        cache.arrays['stamp_ns'], cache.arrays['trajectory'], strict=True
    ):
        np.testing.assert_array_equal(trajectory, labels[divmod(int(stamp_ns), 10**9)])


def label(times: np.ndarray, frame_id: str = 'base_link') -> Trajectory:
    poses = np.zeros((len(times), 3))
    poses[:, 0] = 10.0 * times
    zeros = np.zeros(len(times))
    header = Header(frame_id=frame_id)
    return trajectory_message(header, Trajectory.ORIGIN_EXPERT, times, poses, zeros, zeros, zeros)


def test_an_expert_label_off_the_models_plan_steps_is_refused():
    config = student()
    steps = 0.5 * np.arange(1, 7)
    assert expert_trajectory(label(steps), config)[-1, 0] == pytest.approx(30.0)
    with pytest.raises(ValueError, match=r'the model plans at \[0.5, 1.0'):
        expert_trajectory(label(0.25 * np.arange(1, 13)), config)
    with pytest.raises(ValueError, match="in 'odom', not 'base_link'"):
        expert_trajectory(label(steps, 'odom'), config)


def test_a_bag_with_unusable_expert_labels_says_which_and_where(student_bag, rig, tmp_path):
    settings = DatasetSettings.defaults(student(), rig)
    other = DatasetSettings.defaults(student(horizon_steps=8), rig)
    assert settings.key() != other.key()
    with pytest.raises(BagReadError, match=rf'{student_bag}: /sim/expert/trajectory at \d+ ns'):
        load_bag(student_bag, tmp_path, other, encode, progress=False)


def test_an_expert_share_without_the_pipeline_is_refused(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_record_arguments(parser)
    args = parser.parse_args(
        [
            '--scenario',
            'highway',
            '--episodes',
            '1',
            '--out',
            str(tmp_path),
            '--expert-share',
            '0.5',
        ]
    )
    assert run_record(args) == 1
    assert '--expert-share needs --driver pipeline' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
