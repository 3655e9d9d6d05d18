"""The simulator's data as ROS messages, and control commands back: pure functions, no node.

The bridge node and the bag recorder both publish a `SimulationCore` frame through these
functions, so a live simulation and a recorded bag carry byte-identical messages. Frames follow
REP 103/105: the world is `odom`, the ego's base_link is its rear axle; BEV grids are in
base_link. Defaults of the simulator's topics are here too, for the same reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from geometry_msgs.msg import Quaternion
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from vla_msgs.msg import ControlCommand, Instruction, Obstacle, ObstacleArray

from vla_model.config import MAP_PRIOR_LAYERS
from vla_perception.rig import CameraSpec, RigConfig
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.stamps import to_time
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
from vla_sim.bev_ground_truth import BevGrid
from vla_sim.instructions import InstructionSample
from vla_sim.world import EgoState, VehicleCommand

if TYPE_CHECKING:  # the simulation module pulls in the renderer, which the conversions never need
    from vla_sim.simulation import ObstacleTruth, SimFrame

WORLD_FRAME = 'odom'
BASE_FRAME = 'base_link'


# Ground truth is exact, but a zero covariance reads as "unknown" to some consumers and cannot be
# inverted: report 1 cm / 1 mrad (pose) and 1 cm/s / 1 mrad/s (twist) one-sigma instead.
POSE_VARIANCES = (1e-4, 1e-4, 1e-4, 1e-6, 1e-6, 1e-6)  # x, y, z, roll, pitch, yaw
TWIST_VARIANCES = (1e-4, 1e-4, 1e-4, 1e-6, 1e-6, 1e-6)


def _header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=to_time(stamp_ns), frame_id=frame_id)


def _yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def _diagonal(variances: tuple[float, ...]) -> list[float]:
    return np.diag(variances).ravel().tolist()


def image_message(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """Return an (H, W, 3) uint8 RGB image as sensor_msgs/Image, encoding rgb8."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'an rgb8 image must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
    height, width = rgb.shape[:2]
    return Image(
        header=_header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding='rgb8',
        is_bigendian=0,
        step=3 * width,
        data=np.ascontiguousarray(rgb).tobytes(),
    )


def camera_info_message(spec: CameraSpec, stamp_ns: int) -> CameraInfo:
    """Return the pinhole CameraInfo the simulator renders `spec` with (no distortion)."""
    intrinsics = spec.intrinsics
    if intrinsics is None:
        raise ValueError(f'camera {spec.name} has no intrinsics in the rig file: cannot render')
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    return CameraInfo(
        header=_header(stamp_ns, spec.frame_id),
        height=intrinsics.height,
        width=intrinsics.width,
        distortion_model='plumb_bob',
        d=[0.0] * 5,
        k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    )


def odometry_message(ego: EgoState, stamp_ns: int) -> Odometry:
    """Return the ego state as nav_msgs/Odometry: pose in odom, twist in base_link."""
    message = Odometry(header=_header(stamp_ns, WORLD_FRAME), child_frame_id=BASE_FRAME)
    pose = message.pose.pose
    pose.position.x, pose.position.y = ego.pose.x, ego.pose.y
    pose.orientation = _yaw_quaternion(ego.pose.yaw)
    message.pose.covariance = _diagonal(POSE_VARIANCES)
    message.twist.twist.linear.x = ego.speed_mps
    message.twist.twist.angular.z = ego.yaw_rate_rps
    message.twist.covariance = _diagonal(TWIST_VARIANCES)
    return message


def obstacle_message(obstacle: ObstacleTruth) -> Obstacle:
    """Return one simulated radar obstacle (world frame) as vla_msgs/Obstacle."""
    message = Obstacle(
        id=obstacle.obstacle_id,
        classification=obstacle.classification,
        existence_probability=1.0,
        position_stddev_m=obstacle.position_stddev_m,
        velocity_stddev_mps=obstacle.velocity_stddev_mps,
    )
    message.pose.position.x, message.pose.position.y = obstacle.x, obstacle.y
    message.pose.position.z = obstacle.height_m / 2.0  # box centre: the boxes stand on the road
    message.pose.orientation = _yaw_quaternion(obstacle.yaw)
    message.dimensions.x = obstacle.length_m
    message.dimensions.y = obstacle.width_m
    message.dimensions.z = obstacle.height_m
    message.velocity.x, message.velocity.y = obstacle.vx, obstacle.vy
    return message


def obstacles_message(obstacles: tuple[ObstacleTruth, ...], stamp_ns: int) -> ObstacleArray:
    """Return the simulated radar's obstacles as an ObstacleArray in odom."""
    return ObstacleArray(
        header=_header(stamp_ns, WORLD_FRAME),
        source=ObstacleArray.SOURCE_SIMULATION,
        obstacles=[obstacle_message(obstacle) for obstacle in obstacles],
    )


def grid_messages(
    masks: dict[str, np.ndarray], grid: BevGrid, stamp_ns: int
) -> dict[str, OccupancyGrid]:
    """Return layer -> OccupancyGrid in base_link: 100 where the mask is set, else 0.

    For the BEV ground-truth classes and the map-prior layers alike. The layout is
    vla_inference_node's neural map: info.width counts rows (along x), info.height columns
    (along y), so cell (row, col) is data[col * width + row] (mask.T).
    """
    rows, cols = grid.shape
    messages = {}
    for name, mask in masks.items():
        if mask.shape != (rows, cols):
            raise ValueError(
                f'grid layer {name}: mask shape {mask.shape} is not the grid {rows, cols}'
            )
        message = OccupancyGrid(header=_header(stamp_ns, BASE_FRAME))
        info = message.info
        info.map_load_time = message.header.stamp
        info.resolution = grid.cell_m
        info.width, info.height = rows, cols
        info.origin.position.x, info.origin.position.y = grid.x_range[0], grid.y_range[0]
        info.origin.orientation.w = 1.0
        message.data = (np.asarray(mask, bool).T.astype(np.int8) * 100).ravel().tolist()
        messages[name] = message
    return messages


def instruction_message(
    sample: InstructionSample, stamp_ns: int, seed: int | None = None
) -> Instruction:
    """Return an episode's instruction; its id is the paraphrase id, with the seed if given."""
    instruction_id = sample.paraphrase_id if seed is None else f'{sample.paraphrase_id}@{seed}'
    return Instruction(
        header=_header(stamp_ns, ''),
        id=instruction_id,
        text=sample.text,
        source=Instruction.SOURCE_SCENARIO,
    )


def clock_message(stamp_ns: int) -> Clock:
    """Return the simulated time as rosgraph_msgs/Clock (what use_sim_time nodes follow)."""
    return Clock(clock=to_time(stamp_ns))


def command_from_message(message: ControlCommand) -> VehicleCommand:
    """Return the actuator command a ControlCommand carries; refuse unusable values by name.

    The acceleration counts only when `longitudinal.is_defined_acceleration` says so (the
    message's contract); the simulated ego has no speed controller to follow `velocity` instead.
    """
    if not message.longitudinal.is_defined_acceleration:
        raise ValueError('control command longitudinal.acceleration is not defined')
    steering = float(message.lateral.steering_tire_angle)
    acceleration = float(message.longitudinal.acceleration)
    for name, value in (
        ('lateral.steering_tire_angle', steering),
        ('longitudinal.acceleration', acceleration),
    ):
        if not math.isfinite(value):
            raise ValueError(f'control command {name} is not finite: {value}')
    return VehicleCommand(steering_tire_angle_rad=steering, acceleration_mps2=acceleration)


def frame_topics(rig: RigConfig, bev_classes: Iterable[str]) -> dict[str, tuple[type, QoSProfile]]:
    """Every topic a simulator frame is published (or recorded) on, with its type and QoS.

    Cameras are sensor data; CameraInfo and the instruction are latched so late joiners and bag
    replay get them; the rest is reliable. The bridge creates its publishers from this table and
    the recorder stores it as each connection's offered QoS, so the two never drift apart.
    """
    return {
        **{spec.image_topic: (Image, SENSOR_DATA) for spec in rig.cameras},
        **{spec.info_topic: (CameraInfo, LATCHED) for spec in rig.cameras},
        INSTRUCTION_TOPIC: (Instruction, LATCHED),
        ODOMETRY_TOPIC: (Odometry, RELIABLE),
        OBSTACLES_TOPIC: (ObstacleArray, RELIABLE),
        **{bev_topic(name): (OccupancyGrid, RELIABLE) for name in bev_classes},
        **{map_prior_topic(name): (OccupancyGrid, RELIABLE) for name in MAP_PRIOR_LAYERS},
        RATIONALE_TOPIC: (String, RELIABLE),
        CONTROL_COMMAND_TOPIC: (ControlCommand, RELIABLE),
        CLOCK_TOPIC: (Clock, RELIABLE),
    }


def frame_messages(
    frame: SimFrame, rig: RigConfig, grid: BevGrid, rationale: str, stamp_ns: int, bev: bool = True
) -> list[tuple[str, object]]:
    """Return the messages of one frame, in publication order: odometry first, /clock last.

    The sync node emits a frame on its last image and reads the ego state and intrinsics then.
    So odometry comes before the cameras, as on a vehicle (100 Hz and a few ms of latency,
    against tens of ms for an image), or the frame would carry the previous step's ego state;
    and each camera's CameraInfo precedes its image, or the first frame would lack the last
    camera's intrinsics. /clock comes last so that a node on sim time never sees the new time
    before the data of that time was sent.
    """
    messages: list[tuple[str, object]] = [(ODOMETRY_TOPIC, odometry_message(frame.ego, stamp_ns))]
    for spec in rig.cameras:
        if spec.name in frame.images:
            messages.append((spec.info_topic, camera_info_message(spec, stamp_ns)))
            messages.append(
                (spec.image_topic, image_message(frame.images[spec.name], stamp_ns, spec.frame_id))
            )
    messages.append((OBSTACLES_TOPIC, obstacles_message(frame.obstacles, stamp_ns)))
    if bev:
        messages.extend(
            (bev_topic(name), grid_message)
            for name, grid_message in grid_messages(frame.bev, grid, stamp_ns).items()
        )
    messages.extend(
        (map_prior_topic(name), grid_message)
        for name, grid_message in grid_messages(frame.map_prior, grid, stamp_ns).items()
    )
    messages.append((RATIONALE_TOPIC, String(data=rationale)))
    messages.append((CLOCK_TOPIC, clock_message(stamp_ns)))
    return messages
