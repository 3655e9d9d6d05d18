"""Every vla_msgs type crosses real DDS (rclpy + Fast DDS) between two nodes unchanged."""

import random
import subprocess
import sys
from pathlib import Path

import pytest
from vla_msgs.msg import Instruction, SensorFrame

from message_trees import from_rclpy, message_class, random_tree, to_rclpy
from repo_paths import MESSAGE_TYPES
from sensor_frame_talker import large_frame
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.testing import RosHarness


@pytest.fixture(scope='module')
def delivered(module_ros: RosHarness) -> dict[str, tuple[object, list]]:
    """Publish one fully populated message of every type; return (sent, received) per type."""
    talker = module_ros.node('round_trip_talker')
    listener = module_ros.node('round_trip_listener')
    rng = random.Random(20261125)
    sent, received, publishers = {}, {}, {}
    for index, type_name in enumerate(MESSAGE_TYPES):
        cls = message_class(type_name)
        topic = f'/round_trip/t{index}'
        received[type_name] = []
        listener.create_subscription(cls, topic, received[type_name].append, RELIABLE)
        publishers[type_name] = talker.create_publisher(cls, topic, RELIABLE)
        sent[type_name] = to_rclpy(random_tree(type_name, rng), type_name)
    assert module_ros.spin_until(
        lambda: all(pub.get_subscription_count() == 1 for pub in publishers.values()), 20.0
    ), 'publishers and subscriptions did not match within 20 s'
    for type_name, publisher in publishers.items():
        publisher.publish(sent[type_name])
    module_ros.spin_until(lambda: all(received.values()), 20.0)
    return {type_name: (sent[type_name], received[type_name]) for type_name in MESSAGE_TYPES}


@pytest.mark.parametrize('type_name', MESSAGE_TYPES)
def test_message_arrives_with_every_field_equal(delivered, type_name: str):
    sent, received = delivered[type_name]
    assert len(received) == 1, f'{type_name}: {len(received)} messages arrived, expected 1'
    assert from_rclpy(received[0]) == from_rclpy(sent)
    assert received[0] == sent


def test_latched_instruction_reaches_a_late_subscriber(ros: RosHarness):
    """/vla/instruction is transient-local: a model node started later still gets it."""
    publisher = ros.node('operator').create_publisher(Instruction, '/vla/instruction', LATCHED)
    publisher.publish(Instruction(id='i-1', text='take the next exit'))
    received = []
    ros.node('late_model').create_subscription(
        Instruction, '/vla/instruction', received.append, LATCHED
    )
    assert ros.spin_until(lambda: bool(received), 10.0)
    assert received[0].text == 'take the next exit'


def test_reliable_subscriber_does_not_match_best_effort_publisher(ros: RosHarness):
    """The QoS trap the shared profiles exist for: this pairing silently delivers nothing."""
    talker, listener = ros.node('sensor'), ros.node('strict_listener')
    publisher = talker.create_publisher(Instruction, '/qos_trap', SENSOR_DATA)
    listener.create_subscription(Instruction, '/qos_trap', lambda _msg: None, RELIABLE)
    assert ros.spin_until(lambda: talker.count_subscribers('/qos_trap') == 1, 10.0)
    ros.spin_until(lambda: False, 1.0)
    assert publisher.get_subscription_count() == 0


def test_large_sensor_frame_crosses_processes_with_sensor_qos(ros: RosHarness):
    """A 2 MB six-camera frame from another process arrives intact, best-effort as on a car."""
    received = []
    ros.node('frame_listener').create_subscription(
        SensorFrame, '/vla/sensor_frame', received.append, SENSOR_DATA
    )
    talker = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name('sensor_frame_talker.py')),
            '/vla/sensor_frame',
        ]
    )
    try:
        assert ros.spin_until(lambda: bool(received), 30.0), 'no SensorFrame within 30 s'
    finally:
        talker.terminate()
        talker.wait(timeout=30)
    assert received[0] == large_frame()
