"""The vla_msgs/SensorFrame of a SyncedFrame, written straight to its serialized (CDR) bytes.

What sensor_sync_node publishes each frame. Building the 2 MB frame as rclpy messages, then
having rclpy convert and serialize it, took 1.7 ms of the node's frame on the (loaded)
development VM and copied each image three times; writing the bytes from the frame's own arrays
copies each image once. The bytes hold the fields of `sensor_frame_message(frame)` at the offsets
rclpy puts them (a test compares the two), so every subscriber reads the same message.
"""

from vla_perception.image_preprocessing import Intrinsics
from vla_perception.sensor_sync import CameraImage, SyncedFrame
from vla_perception.synchronizer import NS_PER_S
from vla_ros.raw_messages import CdrWriter

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
ZEROS_9, ZEROS_12, ZEROS_36 = (0.0,) * 9, (0.0,) * 12, (0.0,) * 36
NO_ROTATION = (0.0, 0.0, 0.0, 1.0)  # geometry_msgs/Quaternion's default


def _input_status(out: CdrWriter, name: str, health: int, stamp_ns: int, skew_ns: int) -> None:
    out.string(name)
    out.number('B', int(health))
    out.stamp(stamp_ns)
    out.number('f', skew_ns / NS_PER_S)


def _camera_info(out: CdrWriter, intrinsics: Intrinsics | None, stamp_ns: int, frame: str) -> None:
    if intrinsics is None:  # an empty CameraInfo
        out.header(0, '')
        out.numbers('I', (0, 0))
        out.string('')
        out.sequence('d', ())
        for values in (ZEROS_9, ZEROS_9, ZEROS_12):
            out.numbers('d', values)
    else:
        out.header(stamp_ns, frame)
        out.numbers('I', (intrinsics.height, intrinsics.width))
        out.string(intrinsics.distortion_model)
        out.sequence('d', intrinsics.d.tolist())
        out.numbers('d', intrinsics.k.ravel().tolist())
        out.numbers('d', IDENTITY)
        out.numbers('d', intrinsics.p.ravel().tolist())
    out.numbers('I', (0, 0, 0, 0, 0, 0))  # binning x, y; roi x_offset, y_offset, height, width
    out.number('?', False)  # roi.do_rectify


def _camera(out: CdrWriter, camera: CameraImage) -> None:
    spec = camera.spec
    _input_status(out, spec.name, camera.health, camera.stamp_ns, camera.skew_ns)
    out.header(camera.stamp_ns, spec.frame_id)
    if camera.image is None:
        out.numbers('I', (0, 0))
        out.string('')
        out.number('B', 0)
        out.number('I', 0)
        out.byte_sequence(b'')
    else:
        rgb = camera.image.rgb
        height, width = rgb.shape[:2]
        out.numbers('I', (height, width))
        out.string('rgb8')
        out.number('B', 0)  # is_bigendian
        out.number('I', width * 3)
        out.byte_sequence(rgb)
    _camera_info(out, camera.intrinsics, camera.stamp_ns, spec.frame_id)
    out.numbers('d', spec.translation)
    out.numbers('d', spec.rotation)


def sensor_frame_bytes(frame: SyncedFrame) -> bytes:
    """Return the serialized SensorFrame of a synchronised frame (sensor_frame_message's)."""
    out = CdrWriter()
    out.header(frame.stamp_ns, 'base_link')
    out.number('Q', frame.sequence)
    out.number('I', frame.epoch)
    out.number('?', frame.complete)
    out.number('I', len(frame.cameras))
    for camera in frame.cameras:
        _camera(out, camera)
    odometry = frame.odometry
    sample = odometry.sample
    sample_stamp = frame.stamp_ns + odometry.skew_ns if sample else 0
    _input_status(out, 'odometry', odometry.health, sample_stamp, odometry.skew_ns)
    out.header(frame.stamp_ns, frame.odometry_frame_id)
    out.string(frame.odometry_child_frame_id)
    if sample is None:
        pose = (0.0, 0.0, 0.0, *NO_ROTATION)
        twist = (0.0,) * 6
    else:
        pose = (*sample.position.tolist(), *sample.orientation.tolist())
        twist = (*sample.linear_velocity.tolist(), *sample.angular_velocity.tolist())
    for values in (pose, ZEROS_36, twist, ZEROS_36):
        out.numbers('d', values)
    return out.getvalue()
