"""Publish the same large SensorFrame at 10 Hz from a process of its own, until killed.

Used by test_dds_round_trip.py to cross a process boundary with model-sized camera images.
"""

import contextlib
import sys

import numpy as np
import rclpy
from vla_msgs.msg import CameraFrame, SensorFrame

from vla_ros.qos import SENSOR_DATA

CAMERAS = 6
HEIGHT, WIDTH = 256, 448


def large_frame() -> SensorFrame:
    """Return a frame of six 448x256 rgb8 images (2 MB) with deterministic pixel values."""
    pixels = np.random.default_rng(42).integers(0, 256, (CAMERAS, HEIGHT, WIDTH * 3), np.uint8)
    frame = SensorFrame(sequence=123456789, epoch=3, complete=True)
    frame.header.frame_id = 'base_link'
    for index in range(CAMERAS):
        camera = CameraFrame()
        camera.status.name = f'camera_{index}'
        camera.image.height, camera.image.width = HEIGHT, WIDTH
        camera.image.encoding, camera.image.step = 'rgb8', WIDTH * 3
        camera.image.data = pixels[index].tobytes()
        frame.cameras.append(camera)
    return frame


def main() -> None:
    """Publish on the topic named by argv[1] until interrupted."""
    rclpy.init()
    node = rclpy.create_node('sensor_frame_talker')
    publisher = node.create_publisher(SensorFrame, sys.argv[1], SENSOR_DATA)
    frame = large_frame()
    node.create_timer(0.1, lambda: publisher.publish(frame))
    with contextlib.suppress(KeyboardInterrupt):
        rclpy.spin(node)


if __name__ == '__main__':
    main()
