"""Whole messages read from their CDR bytes: equal to rclpy's, and refused when malformed."""

import array
import struct

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vla_msgs.msg import CameraFrame, SensorFrame, Trajectory, TrajectoryPoint, VlaPlan

from vla_ros.raw_messages import MalformedMessage, read_message


def assert_same(read, message) -> None:
    """Every field of `read` equals the message's, at any depth."""
    for name in message.get_fields_and_field_types():
        ours, theirs = getattr(read, name), getattr(message, name)
        if hasattr(theirs, 'get_fields_and_field_types'):
            assert_same(ours, theirs)
        elif isinstance(theirs, list) and all(
            hasattr(m, 'get_fields_and_field_types') for m in theirs
        ):
            assert len(ours) == len(theirs), name
            for one, other in zip(ours, theirs, strict=True):
                assert_same(one, other)
        elif isinstance(theirs, (array.array, np.ndarray, bytes)):
            assert np.array_equal(np.asarray(ours), np.asarray(theirs)), name
        else:
            assert ours == theirs, name


def image(width: int, height: int, encoding: str = 'rgb8', frame_id: str = 'cam') -> Image:
    message = Image(width=width, height=height, encoding=encoding, step=width * 3)
    message.header.stamp, message.header.frame_id = Time(sec=12, nanosec=345), frame_id
    data = np.arange(width * height * 3, dtype=np.uint32).astype(np.uint8)
    message.data = array.array('B', data.tobytes())
    return message


def sensor_frame() -> SensorFrame:
    message = SensorFrame(sequence=2**40 + 3, epoch=7, complete=False)
    message.header.stamp, message.header.frame_id = Time(sec=1, nanosec=2), 'base_link'
    cameras = []
    for index, name in enumerate(['front', 'front_left', 'back']):
        camera = CameraFrame()
        camera.status.name, camera.status.health, camera.status.skew_s = name, index, 0.25
        if index != 1:  # a camera without an image: an empty data array
            camera.image = image(6 + index, 4, frame_id=name)
        camera.camera_info.distortion_model = 'plumb_bob'
        camera.camera_info.d = [0.1, -0.2, 0.0, 0.0, 0.3][: 5 - index]
        camera.camera_info.k = [float(i + index) for i in range(9)]
        camera.extrinsic.translation.x, camera.extrinsic.rotation.w = 1.5, 1.0
        cameras.append(camera)
    message.cameras = cameras
    message.odometry.child_frame_id = 'base_link'
    message.odometry.pose.pose.position.x = 3.25
    message.odometry.pose.covariance[7] = 0.5
    message.odometry.twist.twist.linear.x = 10.0
    return message


# Frame ids and odd sizes put strings, arrays and the doubles after them at every alignment.
@pytest.mark.parametrize('frame_id', ['', 'a', 'ab', 'abc', 'camera_front'])
@pytest.mark.parametrize('size', [(5, 3), (448, 256)])
def test_an_image_reads_as_rclpy_deserializes_it(frame_id: str, size: tuple[int, int]):
    message = image(*size, frame_id=frame_id)
    raw = serialize_message(message)
    assert_same(read_message(raw, Image), deserialize_message(raw, Image))


@pytest.mark.parametrize(
    'message',
    [
        sensor_frame(),
        CameraInfo(distortion_model='rational_polynomial', d=[0.5] * 8, k=[2.0] * 9),
        Odometry(child_frame_id='x'),
        CompressedImage(format='jpeg', data=array.array('B', b'\xff\xd8\xff')),
    ],
    ids=['SensorFrame', 'CameraInfo', 'Odometry', 'CompressedImage'],
)
def test_nested_messages_read_as_rclpy_deserializes_them(message):
    raw = serialize_message(message)
    assert_same(read_message(raw, type(message)), deserialize_message(raw, type(message)))


def test_byte_arrays_are_read_only_views_of_the_received_bytes():
    raw = serialize_message(image(448, 256))
    data = read_message(raw, Image).data
    assert data.dtype == np.uint8 and data.size == 448 * 256 * 3
    assert np.shares_memory(data, np.frombuffer(raw, np.uint8))
    assert not data.flags.writeable


def test_native_types_come_back_as_messages():
    frame = read_message(serialize_message(sensor_frame()), SensorFrame, native={Header})
    assert isinstance(frame.header, Header) and isinstance(frame.header.stamp, Time)
    assert frame.header == sensor_frame().header
    assert not isinstance(frame.cameras[0].image, Image)


def test_big_endian_cdr_is_read_too():
    frame_id = b'cam\x00'
    body = struct.pack('>iII', 12, 345, len(frame_id)) + frame_id  # header
    body += struct.pack('>II', 2, 1)  # height, width
    body += struct.pack('>I', 6) + b'mono8\x00'  # encoding
    body += bytes([1]) + bytes(-(len(body) + 1) % 4)  # is_bigendian, then align step
    body += struct.pack('>I', 1) + struct.pack('>I', 2) + b'\x07\x09'  # step, data
    read = read_message(b'\x00\x00\x00\x00' + body, Image)
    assert (read.header.stamp.sec, read.header.stamp.nanosec) == (12, 345)
    assert (read.height, read.width, read.encoding, read.step) == (2, 1, 'mono8', 1)
    assert read.data.tolist() == [7, 9]


@pytest.mark.parametrize('flag', [b'\x00\x02', b'\x00\x07', b'\x01\x01'])
def test_any_representation_but_plain_cdr_is_refused(flag: bytes):
    raw = serialize_message(image(4, 2))
    with pytest.raises(MalformedMessage, match=f'not plain CDR: encapsulation .{flag.hex()}'):
        read_message(flag + raw[2:], Image)


def test_every_truncation_is_refused_with_where_it_ends():
    raw = serialize_message(sensor_frame())
    for end in [*range(0, 200), len(raw) // 2, len(raw) - 9]:
        with pytest.raises(MalformedMessage, match='truncated|claims|not plain CDR'):
            read_message(raw[:end], SensorFrame)


def test_a_length_field_that_lies_is_refused_before_anything_is_allocated():
    raw = bytearray(serialize_message(image(4, 2, frame_id='ab')))
    data_length_at = len(raw) - 4 * 2 * 3 - 4
    assert struct.unpack_from('<I', raw, data_length_at)[0] == 24
    struct.pack_into('<I', raw, data_length_at, 2**32 - 1)
    with pytest.raises(
        MalformedMessage, match='Image.data claims 4294967295 elements of 1 bytes, only 24'
    ):
        read_message(bytes(raw), Image)
    struct.pack_into('<I', raw, 4 + 8, 10**6)  # the header's frame_id length
    with pytest.raises(MalformedMessage, match='Header.frame_id claims 1000000 elements'):
        read_message(bytes(raw), Image)


def test_a_string_without_its_nul_is_refused():
    raw = bytearray(serialize_message(image(4, 2, frame_id='abc')))
    raw[4 + 12 + 3] = ord('x')  # frame_id's terminating NUL
    with pytest.raises(MalformedMessage, match='Header.frame_id: string not NUL-terminated'):
        read_message(bytes(raw), Image)


def plan_with_candidates(frame_id: str) -> VlaPlan:
    """Return a plan whose frame id puts its points at either alignment of their doubles."""
    plan = VlaPlan(confidence=0.75, selected_index=1, candidate_scores=[0.25, 0.75])
    plan.header.stamp, plan.header.frame_id = Time(sec=3, nanosec=4), frame_id
    for index in range(3):
        trajectory = Trajectory(origin=index)
        trajectory.header.frame_id = frame_id[:index]
        for step in range(index + 2):
            point = TrajectoryPoint(longitudinal_velocity_mps=float(step), acceleration_mps2=-1.5)
            point.time_from_start.nanosec = 100 * step
            point.pose.position.x, point.pose.orientation.w = 2.0 * step + index, 1.0
            trajectory.points.append(point)
        if index == 0:
            plan.trajectory = trajectory
        else:
            plan.candidates.append(trajectory)
    plan.rationale, plan.model_id = 'keep lane', 'm'
    return plan


@pytest.mark.parametrize('frame_id', ['', 'a', 'ab', 'abc', 'abcd', 'base_link'])
def test_named_fields_read_as_the_whole_message_and_the_others_are_left_out(frame_id: str):
    raw = serialize_message(plan_with_candidates(frame_id))
    whole = read_message(raw, VlaPlan)
    read = read_message(raw, VlaPlan, fields=('header', 'trajectory', 'confidence'))
    assert sorted(vars(read)) == ['confidence', 'header', 'trajectory']
    assert (read.header, read.trajectory, read.confidence) == (
        whole.header,
        whole.trajectory,
        whole.confidence,
    )
    assert_same(read.trajectory, plan_with_candidates(frame_id).trajectory)


def test_bytes_of_fields_left_out_are_checked_as_the_whole_message_is():
    raw = serialize_message(plan_with_candidates('abc'))
    for end in range(len(raw)):
        try:
            read_message(raw[:end], VlaPlan)
        except MalformedMessage:
            with pytest.raises(MalformedMessage, match='truncated|claims|not plain CDR'):
                read_message(raw[:end], VlaPlan, fields=['confidence'])
        else:
            read_message(raw[:end], VlaPlan, fields=['confidence'])


def test_a_lying_length_in_a_field_left_out_is_refused_before_it_is_stepped_over():
    plan = plan_with_candidates('abc')
    raw = bytearray(serialize_message(plan))
    last = plan.candidates[-1]
    # The last candidate's point count: after its header (stamp 8, frame id 'ab': 4 + 3 bytes).
    at = raw.find(struct.pack('<I', len(last.points)), raw.find(b'ab\x00') + 3)
    struct.pack_into('<I', raw, at, 2**31)
    with pytest.raises(
        MalformedMessage, match='Trajectory.points claims 2147483648 elements of 88'
    ):
        read_message(bytes(raw), VlaPlan, fields=['confidence'])


def test_a_field_the_message_does_not_have_is_a_programming_error():
    with pytest.raises(TypeError, match='VlaPlan: cannot read only'):
        read_message(serialize_message(VlaPlan()), VlaPlan, fields=['speed'])
