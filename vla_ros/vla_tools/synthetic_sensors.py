"""A vehicle's inputs to the pipeline, synthesised: for benchmarks and fault injection.

`SyntheticSensors` publishes what a vehicle's drivers would, on the pipeline's default topics:
the rig's cameras (rgb8 test cards at a chosen size, stamped when published, 10 Hz), their
CameraInfo (latched), odometry of a car driving straight at constant speed (50 Hz), an empty
obstacle list (10 Hz) and an instruction (latched). Odometry goes out before the cameras of the
same instant, as a real driver stack's would. Run as a process (`python -m
vla_tools.synthetic_sensors --width 1280 --height 720`) it can write the stamps of the camera
rounds it published, so a benchmark can count frames the pipeline dropped.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from vla_msgs.msg import Instruction, ObstacleArray

from vla_perception.rig import CameraIntrinsics, CameraSpec, RigConfig, default_rig_path
from vla_perception.test_card import test_card
from vla_ros.node_main import run_node
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.stamps import to_time
from vla_ros.topics import INSTRUCTION_TOPIC, OBSTACLES_TOPIC, ODOMETRY_TOPIC
from vla_sim.scene import Pose2D
from vla_sim.sim_messages import camera_info_message, image_message, odometry_message
from vla_sim.world import EgoState

CAMERA_RATE_HZ = 10.0
ODOMETRY_RATE_HZ = 50.0
SPEED_MPS = 10.0
INSTRUCTION = 'keep the lane and follow the road'


def scaled_camera(spec: CameraSpec, width: int, height: int) -> CameraSpec:
    """Return the camera with its rig intrinsics scaled to a `width` x `height` image."""
    if spec.intrinsics is None:
        raise ValueError(f'camera {spec.name} has no intrinsics in the rig file')
    intrinsics = spec.intrinsics
    sx, sy = width / intrinsics.width, height / intrinsics.height
    return replace(
        spec,
        intrinsics=CameraIntrinsics(
            width,
            height,
            intrinsics.fx * sx,
            intrinsics.fy * sy,
            intrinsics.cx * sx,
            intrinsics.cy * sy,
        ),
    )


def malformed_image(kind: str, good: Image) -> Image:
    """Return a broken copy of an image, of one kind of the faults drivers show.

    'size': data shorter than the header says; 'encoding': an encoding no one can read;
    'giant': 100000 x 100000 px claimed; 'empty': no pixels at all.
    """
    broken = Image(
        header=good.header,
        height=good.height,
        width=good.width,
        encoding=good.encoding,
        step=good.step,
        data=good.data,
    )
    if kind == 'size':
        broken.data = bytes(good.data)[: len(good.data) // 2]
    elif kind == 'encoding':
        broken.encoding = 'yuv_unheard_of'
    elif kind == 'giant':
        broken.height = broken.width = 100_000
        broken.step = 300_000
    elif kind == 'empty':
        broken.height = broken.width = broken.step = 0
        broken.data = b''
    else:
        raise ValueError(f'unknown malformed image kind {kind!r}')
    return broken


class SyntheticSensors(Node):
    """Publish cameras, CameraInfo, odometry, obstacles and an instruction, as a vehicle would.

    Attributes change the inputs at run time, for fault injection: `silent` holds the inputs
    switched off (camera names, 'odometry', 'obstacles'), `frozen` the cameras that repeat their
    last image and stamp, `malformed` maps a camera to a malformed_image kind, `stamp_offset_ns`
    shifts every stamp (a sensor clock jump), `copies` publishes each image that many times and
    `nan_odometry` sends odometry whose pose and twist are NaN (a failed state estimator).
    `rounds` holds the stamps of the camera rounds published.
    """

    def __init__(self, rig: RigConfig, width: int, height: int, **kwargs) -> None:
        super().__init__('synthetic_sensors', **kwargs)
        self.cameras = [scaled_camera(spec, width, height) for spec in rig.cameras]
        # One message per camera, built once and restamped each round: a driver's cost is the
        # publishing, and the benchmark's sensors should take as little of the CPU as they can.
        self.images = [
            image_message(test_card(index, width, height), 0, spec.frame_id)
            for index, spec in enumerate(self.cameras)
        ]
        self.silent: set[str] = set()
        self.frozen: set[str] = set()
        self.malformed: dict[str, str] = {}
        self.stamp_offset_ns = 0
        self.copies = 1
        self.nan_odometry = False
        self.rounds: list[int] = []
        self._last_stamps: dict[str, int] = {}
        self._start_ns = self.get_clock().now().nanoseconds
        self.image_publishers = [
            self.create_publisher(Image, spec.image_topic, SENSOR_DATA) for spec in self.cameras
        ]
        for spec in self.cameras:
            self.create_publisher(CameraInfo, spec.info_topic, LATCHED).publish(
                camera_info_message(spec, self._start_ns)
            )
        self.odometry_publisher = self.create_publisher(Odometry, ODOMETRY_TOPIC, SENSOR_DATA)
        self.obstacle_publisher = self.create_publisher(ObstacleArray, OBSTACLES_TOPIC, RELIABLE)
        instruction = Instruction(
            id='synthetic', text=INSTRUCTION, source=Instruction.SOURCE_OPERATOR
        )
        instruction.header.stamp = to_time(self._start_ns)
        self.create_publisher(Instruction, INSTRUCTION_TOPIC, LATCHED).publish(instruction)
        self.create_timer(1.0 / ODOMETRY_RATE_HZ, self._publish_odometry)
        self.create_timer(1.0 / CAMERA_RATE_HZ, self._publish_round)

    def _ego(self, stamp_ns: int) -> EgoState:
        x = SPEED_MPS * (stamp_ns - self._start_ns) * 1e-9
        return EgoState(Pose2D(x, 0.0, 0.0), SPEED_MPS, 0.0, 0.0, ('', '', 0))

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds + self.stamp_offset_ns

    def _publish_odometry(self, stamp_ns: int | None = None) -> None:
        if 'odometry' in self.silent:
            return
        if stamp_ns is None:
            stamp_ns = self._now_ns()
        message = odometry_message(self._ego(stamp_ns), stamp_ns)
        if self.nan_odometry:
            message.pose.pose.position.x = message.twist.twist.linear.x = math.nan
        self.odometry_publisher.publish(message)

    def _image(self, spec: CameraSpec, image: Image, stamp_ns: int) -> Image:
        """Restamp the camera's message; a frozen camera keeps its last stamp."""
        if spec.name in self.frozen:
            stamp_ns = self._last_stamps.get(spec.name, stamp_ns)
        self._last_stamps[spec.name] = stamp_ns
        image.header.stamp = to_time(stamp_ns)
        if spec.name in self.malformed:
            return malformed_image(self.malformed[spec.name], image)
        return image

    def _publish_round(self) -> None:
        """Publish odometry, then every camera, all stamped now, then the obstacle list."""
        stamp_ns = self._now_ns()
        self._publish_odometry(stamp_ns)
        published = False
        for spec, message, publisher in zip(
            self.cameras, self.images, self.image_publishers, strict=True
        ):
            if spec.name not in self.silent:
                image = self._image(spec, message, stamp_ns)
                for _ in range(self.copies):
                    publisher.publish(image)
                published = True
        if published:
            self.rounds.append(stamp_ns)
        if 'obstacles' not in self.silent:
            obstacles = ObstacleArray(source=ObstacleArray.SOURCE_FUSION)
            obstacles.header.stamp, obstacles.header.frame_id = to_time(stamp_ns), 'base_link'
            self.obstacle_publisher.publish(obstacles)


def main(args: list[str] | None = None) -> None:
    """Run the sensors as a process; on exit write the published camera stamps if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=int, default=448, help='image width, px')
    parser.add_argument('--height', type=int, default=256, help='image height, px')
    parser.add_argument('--rig', type=Path, default=default_rig_path(), help='rig file')
    parser.add_argument('--rounds-out', type=Path, help='write the camera stamps here (JSON)')
    options, ros_args = parser.parse_known_args(args)
    created: list[SyntheticSensors] = []

    def make_node() -> SyntheticSensors:
        created.append(
            SyntheticSensors(RigConfig.from_file(options.rig), options.width, options.height)
        )
        return created[0]

    run_node(make_node, 'synthetic_sensors', ros_args)
    if options.rounds_out is not None and created:
        options.rounds_out.write_text(json.dumps(created[0].rounds), encoding='utf-8')


if __name__ == '__main__':
    main()
