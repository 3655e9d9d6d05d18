"""A list's length read, and a header's stamp written, in serialized messages left unread."""

import struct

import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from vla_msgs.msg import Obstacle, ObstacleArray

from vla_ros.cdr import header_stamp_ns, restamped, sequence_length_after_header


def obstacle_array(count: int, frame_id: str) -> ObstacleArray:
    message = ObstacleArray(source=ObstacleArray.SOURCE_LIDAR)
    message.header.stamp, message.header.frame_id = Time(sec=3, nanosec=4), frame_id
    message.obstacles = [Obstacle(id=i) for i in range(count)]
    return message


# frame_id lengths 0-3 and longer put the list's length at each of the four alignments.
@pytest.mark.parametrize('frame_id', ['', 'a', 'ab', 'abc', 'base_link', 'odom'])
@pytest.mark.parametrize('count', [0, 1, 1001])
def test_the_obstacle_count_is_read_from_the_bytes(frame_id: str, count: int):
    raw = serialize_message(obstacle_array(count, frame_id))
    assert sequence_length_after_header(raw, byte_fields=1) == count


def test_big_endian_cdr_is_read_too():
    frame = b'odom\x00'
    body = struct.pack('>iII', 3, 4, len(frame)) + frame + bytes([2])  # stamp, frame_id, source
    body += bytes(-len(body) % 4) + struct.pack('>I', 20000)
    assert sequence_length_after_header(b'\x00\x00\x00\x00' + body, byte_fields=1) == 20000


def test_bytes_that_are_not_plain_cdr_are_left_to_the_deserializer():
    raw = serialize_message(obstacle_array(5, 'odom'))
    assert sequence_length_after_header(b'\x00\x07' + raw[2:], byte_fields=1) is None  # XCDR2
    assert sequence_length_after_header(raw[:10], byte_fields=1) is None
    assert sequence_length_after_header(raw[:20], byte_fields=1) is None  # cut before the count


def test_a_restamped_message_differs_only_in_its_stamp():
    message = obstacle_array(3, 'base_link')
    raw = restamped(serialize_message(message), 7_000_000_042)
    copy = deserialize_message(raw, ObstacleArray)
    assert copy.header.stamp == Time(sec=7, nanosec=42)
    copy.header.stamp = message.header.stamp
    assert copy == message
    with pytest.raises(ValueError, match='not a plain CDR message'):
        restamped(b'\x00\x07' + raw[2:], 0)


def test_the_stamp_is_read_from_the_bytes_in_either_byte_order():
    raw = serialize_message(obstacle_array(2, 'odom'))
    assert header_stamp_ns(raw) == 3_000_000_004
    assert header_stamp_ns(restamped(raw, 9_000_000_001)) == 9_000_000_001
    big = b'\x00\x00\x00\x00' + struct.pack('>iI', 5, 6)
    assert header_stamp_ns(big) == 5_000_000_006
    assert header_stamp_ns(b'\x00\x07' + raw[2:]) is None  # XCDR2: not read here
    assert header_stamp_ns(raw[:11]) is None  # cut inside the stamp
