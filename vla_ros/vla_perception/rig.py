"""The camera rig: names, topics, transport, extrinsics and optional intrinsics, from config/.

Extrinsics come from the rig file rather than tf2, which not every user of this package has. A
camera's orientation is written as roll/pitch/yaw of its body frame (x forward, y left, z up,
REP 103) in base_link, which people can read; the optical frame (z forward, x right, y down) that
images and intrinsics refer to is derived from it.

Intrinsics in the rig file are what the simulator renders with; live sensor sync ignores them and
takes each camera's intrinsics from its CameraInfo, which is what the real images were taken with.
"""

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import yaml

from vla_ros.install_paths import vla_ros_file

# Orientation of a camera's optical frame (z forward, x right, y down) in its body frame
# (x forward, y left, z up): the columns are the optical axes in body coordinates (REP 103).
BODY_TO_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Return the rotation matrix of fixed-axis roll, then pitch, then yaw (REP 103)."""
    cr, sr, cp, sp, cy, sy = (
        np.cos(roll),
        np.sin(roll),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
    )
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def quaternion_from_matrix(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """Return the unit quaternion (x, y, z, w) of a rotation matrix, with w >= 0."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array(
            [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
        )
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.empty(4)
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
        q[3] = (m[k, j] - m[j, k]) / s
    q /= np.linalg.norm(q)
    return tuple(float(v) for v in (q if q[3] >= 0.0 else -q))


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of a rendered camera, in the CameraInfo (and OpenCV) convention.

    A point (X, Y, Z) of the optical frame projects to u = fx X / Z + cx, v = fy Y / Z + cy, with
    pixel centres at integer (u, v): the image spans [-0.5, width - 0.5] x [-0.5, height - 0.5].
    Invalid values are refused on construction, so a renderer never divides by a zero focal length.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for key in ('width', 'height'):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'intrinsics {key} must be a positive integer, got {value!r}')
        for key in ('fx', 'fy', 'cx', 'cy'):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f'intrinsics {key} must be a number, got {value!r}')
            if not math.isfinite(value):
                raise ValueError(f'intrinsics {key} must be finite, got {value!r}')
            object.__setattr__(self, key, float(value))
        if self.fx <= 0.0 or self.fy <= 0.0:
            raise ValueError(
                f'intrinsics focal lengths must be positive, got fx={self.fx}, fy={self.fy}'
            )
        if not (-0.5 <= self.cx <= self.width - 0.5 and -0.5 <= self.cy <= self.height - 0.5):
            raise ValueError(
                f'intrinsics principal point ({self.cx}, {self.cy}) is outside the '
                f'{self.width}x{self.height} image'
            )

    @classmethod
    def from_dict(cls, data: dict) -> 'CameraIntrinsics':
        """Build intrinsics from a rig-file mapping {width, height, fx, fy, cx, cy}."""
        keys = [field.name for field in fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(keys):
            given = sorted(data) if isinstance(data, dict) else data
            raise ValueError(f'intrinsics need exactly the keys {", ".join(keys)}, got {given}')
        return cls(**data)


@dataclass(frozen=True)
class CameraSpec:
    """One camera of the rig."""

    name: str
    topic: str  # namespace of image_raw[/compressed] and camera_info
    compressed: bool  # subscribe to image_raw/compressed instead of image_raw
    frame_id: str  # the optical frame images are stamped with
    translation: tuple[float, float, float]  # optical frame origin in base_link, m
    rotation: tuple[float, float, float, float]  # base_link -> optical frame, quaternion xyzw
    intrinsics: CameraIntrinsics | None = None  # for rendering; live cameras use CameraInfo

    @property
    def image_topic(self) -> str:
        """Topic of the camera's images for its transport."""
        return (
            f'{self.topic}/image_raw/compressed' if self.compressed else f'{self.topic}/image_raw'
        )

    @property
    def info_topic(self) -> str:
        """Topic of the camera's CameraInfo."""
        return f'{self.topic}/camera_info'


@dataclass(frozen=True)
class RigConfig:
    """The cameras of a rig, in the order frames carry them."""

    cameras: tuple[CameraSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Camera names in rig order."""
        return tuple(camera.name for camera in self.cameras)

    @classmethod
    def from_file(cls, path: str | Path) -> 'RigConfig':
        """Read a rig file; errors name the file and the offending camera or key."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'rig file {path} does not exist')
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'rig file {path}: {error}') from error

    @classmethod
    def from_dict(cls, data: dict) -> 'RigConfig':
        """Build a rig from the parsed rig-file structure (see config/rig_surround.yaml)."""
        if not isinstance(data, dict) or not data.get('cameras'):
            raise ValueError('a rig needs a non-empty "cameras" list')
        cameras = []
        for index, entry in enumerate(data['cameras']):
            name = entry.get('name') if isinstance(entry, dict) else None
            if not name:
                raise ValueError(f'camera #{index} has no name')
            transport = entry.get('transport', 'raw')
            if transport not in ('raw', 'compressed'):
                raise ValueError(
                    f'camera {name}: transport {transport!r} is not raw or compressed'
                )
            extrinsic = entry['extrinsic']
            xyz = [float(v) for v in extrinsic['xyz']]
            rpy = [float(v) for v in extrinsic['rpy']]
            if len(xyz) != 3 or len(rpy) != 3 or not np.all(np.isfinite(xyz + rpy)):
                raise ValueError(
                    f'camera {name}: extrinsic xyz and rpy need 3 finite numbers each'
                )
            rotation = rotation_from_rpy(*rpy) @ BODY_TO_OPTICAL
            intrinsics = None
            if 'intrinsics' in entry:
                try:
                    intrinsics = CameraIntrinsics.from_dict(entry['intrinsics'])
                except (TypeError, ValueError) as error:
                    raise ValueError(f'camera {name}: {error}') from error
            cameras.append(
                CameraSpec(
                    name=name,
                    topic=entry.get('topic', f'/sensing/camera/{name}'),
                    compressed=transport == 'compressed',
                    frame_id=entry.get('frame_id', f'camera_{name}_optical_frame'),
                    translation=(xyz[0], xyz[1], xyz[2]),
                    rotation=quaternion_from_matrix(rotation),
                    intrinsics=intrinsics,
                )
            )
        names = [camera.name for camera in cameras]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f'camera names must be unique: {", ".join(duplicates)} repeated')
        return cls(tuple(cameras))


def default_rig_path() -> Path:
    """Return the rig file installed with the package (config/rig_surround.yaml)."""
    return vla_ros_file('config/rig_surround.yaml')
