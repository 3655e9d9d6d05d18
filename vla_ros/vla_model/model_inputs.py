"""What the model reads from one synchronised frame, as arrays, and the ego motion between frames.

Shared by everything that feeds the network: the inference node and core (vla_planning), the
training data and the bag cache (vla_model), the simulator's recorders and replay. Offline users
of the sync core convert its frames here exactly as the node converts the SensorFrame message.
"""

from dataclasses import dataclass

import numpy as np

from vla_model.bev_geometry import CameraGeometry, rotation_from_quaternion
from vla_perception.health import Health
from vla_perception.sensor_sync import SyncedFrame

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class FrameInput:
    """What the model needs from one SensorFrame, as arrays."""

    stamp_ns: int
    epoch: int
    images: np.ndarray  # (N, H, W, 3) uint8 RGB; anything for cameras that are not valid
    camera_valid: np.ndarray  # (N,) bool: the camera has an image this frame
    cameras: tuple[CameraGeometry, ...]  # intrinsics of the model-ready images, extrinsics
    pose: tuple[float, float, float]  # x, y (m), yaw (rad) of base_link in odom
    ego_state: tuple[float, float, float]  # speed m/s, yaw rate rad/s, acceleration m/s^2


USABLE_HEALTH = (Health.OK, Health.STALE)
"""A camera whose image is fresh or a little late is used; others read as unseen."""


def ego_acceleration(speed: float, stamp_ns: int, previous: tuple[int, float] | None) -> float:
    """Return the speed's change since `previous` (stamp ns, speed) per second; 0 without one."""
    if previous is None or stamp_ns <= previous[0]:
        return 0.0
    return (speed - previous[1]) / ((stamp_ns - previous[0]) / NS_PER_S)


def synced_frame_input(
    frame: SyncedFrame, image_size: tuple[int, int], previous: tuple[int, float] | None
) -> FrameInput:
    """Convert a synchronised frame for a model taking `image_size` (height, width) images.

    What `vla_inference_node` makes of the SensorFrame message of the same frame: offline
    users of the sync core (training data, replay) feed the model exactly what the node would.
    `previous` is (stamp ns, speed m/s) of the frame converted before it, or None.
    """
    height, width = image_size
    images, valid, cameras = [], [], []
    for camera in frame.cameras:
        image, intrinsics = camera.image, camera.intrinsics
        usable = (
            camera.health in USABLE_HEALTH
            and image is not None
            and image.rgb.shape == (height, width, 3)
            and intrinsics is not None
            and intrinsics.k[2, 2] == 1.0
        )
        images.append(image.rgb if usable else np.zeros((height, width, 3), np.uint8))
        valid.append(usable)
        cameras.append(
            CameraGeometry(
                np.array(intrinsics.k, np.float64) if usable else np.diag([1.0, 1.0, 1.0]),
                rotation_from_quaternion(camera.spec.rotation),
                np.array(camera.spec.translation, np.float64),
            )
        )
    sample = frame.odometry.sample
    if sample is None:
        pose, speed, yaw_rate = (0.0, 0.0, 0.0), 0.0, 0.0
    else:
        pose = (float(sample.position[0]), float(sample.position[1]), sample.yaw)
        speed, yaw_rate = float(sample.linear_velocity[0]), float(sample.angular_velocity[2])
    return FrameInput(
        stamp_ns=frame.stamp_ns,
        epoch=frame.epoch,
        images=np.stack(images),
        camera_valid=np.array(valid),
        cameras=tuple(cameras),
        pose=pose,
        ego_state=(speed, yaw_rate, ego_acceleration(speed, frame.stamp_ns, previous)),
    )


def relative_motion(
    before: tuple[float, float, float], after: tuple[float, float, float]
) -> np.ndarray:
    """Return (dx, dy, dyaw) of the pose `after` expressed in the frame of `before`."""
    x0, y0, yaw0 = before
    x1, y1, yaw1 = after
    cos, sin = np.cos(yaw0), np.sin(yaw0)
    dx, dy = x1 - x0, y1 - y0
    dyaw = np.arctan2(np.sin(yaw1 - yaw0), np.cos(yaw1 - yaw0))
    return np.array([cos * dx + sin * dy, -sin * dx + cos * dy, dyaw], dtype=np.float32)
