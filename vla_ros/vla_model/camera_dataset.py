"""The camera student's training data: rendered frames beside what the teacher reads.

Learning by Cheating's second stage learns from the teacher, so a kept state stores the
teacher's input (the privileged raster, packed as in vla_model.privileged_dataset, the ego state
and the episode's instruction) and the student's: the cameras' images of that instant and of the
frame before it (what the temporal fusion reads), as JPEG, and the ego motion between the two.
JPEG at quality 90 keeps a six-camera frame of the simulator at about 90 KB instead of 2 MB raw
(mean error about 1 grey level), so tens of thousands of states fit in memory.

Teacher labels are not stored: the teacher answers at training time, under any instruction, in
about a millisecond, so a better teacher needs no re-rendering. The expert's own future is kept
where the expert drove (a label that no teacher error can move).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from vla_model.privileged_dataset import (
    DatasetError,
    DatasetSettings,
    TextTables,
    decode_rasters,
    prepare_dataset,
    read_shard,
    write_shard,
)
from vla_model.teacher_network import TeacherConfig
from vla_perception.rig import RigConfig

CAMERA_FORMAT_VERSION = 1
JPEG_QUALITY = 90
FRAMES_PER_STATE = 2
"""The frame before the state, then the state's own: the temporal fusion's clip."""
CAMERA_SOURCES = ('expert', 'teacher', 'student')
"""Who drove when the state was recorded: the expert's states carry its own future as a label."""


@dataclass(frozen=True)
class CameraDatasetSettings:
    """What every shard of a camera data set shares; fixed when the data set is created."""

    format_version: int
    teacher: DatasetSettings  # the raster, ego state and plan steps, as the teacher's data
    cameras: tuple[str, ...]
    image_width: int
    image_height: int
    rig_sha256: str  # of every camera's intrinsics and extrinsics: one rig per data set
    jpeg_quality: int

    @classmethod
    def of(cls, config: TeacherConfig, rig: RigConfig) -> CameraDatasetSettings:
        """Return the settings of data for a teacher of `config`, rendered on `rig`."""
        cameras = [
            {
                'name': camera.name,
                'intrinsics': asdict(camera.intrinsics) if camera.intrinsics else None,
                'translation': camera.translation,
                'rotation': camera.rotation,
            }
            for camera in rig.cameras
        ]
        sizes = {(c.intrinsics.width, c.intrinsics.height) for c in rig.cameras if c.intrinsics}
        if len(sizes) != 1 or any(c.intrinsics is None for c in rig.cameras):
            raise DatasetError('the rig must render every camera at one size (intrinsics)')
        (width, height), calibration = sizes.pop(), json.dumps(cameras, sort_keys=True)
        return cls(
            CAMERA_FORMAT_VERSION,
            DatasetSettings.of(config),
            rig.names,
            width,
            height,
            hashlib.sha256(calibration.encode()).hexdigest(),
            JPEG_QUALITY,
        )


def encode_images(images: list[np.ndarray], quality: int = JPEG_QUALITY) -> list[bytes]:
    """Return each (H, W, 3) uint8 RGB image as JPEG bytes."""
    encoded = []
    for image in images:
        ok, buffer = cv2.imencode(
            '.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise ValueError(f'an image of shape {image.shape} cannot be encoded as JPEG')
        encoded.append(buffer.tobytes())
    return encoded


def decode_image(data: np.ndarray) -> np.ndarray:
    """Return the (H, W, 3) uint8 RGB image of one JPEG buffer."""
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError('a stored image is not a readable JPEG')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_camera_shard(
    path: Path,
    rasters: np.ndarray,
    jpeg: list[list[bytes]],
    channels: tuple[str, ...],
    **arrays,
) -> None:
    """Write one shard atomically: the packed rasters, the JPEG frames, and `arrays`.

    `jpeg[i]` holds state i's FRAMES_PER_STATE x cameras images, frame-major; `arrays` as
    CameraSamples' (ARRAY_FIELDS but the raster's) plus texts and intents.
    """
    flat = [image for state in jpeg for image in state]
    offsets = np.cumsum([0] + [len(image) for image in flat], dtype=np.int64)
    buffer = np.frombuffer(b''.join(flat), np.uint8)
    write_shard(
        path,
        rasters,
        channels,
        jpeg=buffer,
        jpeg_offsets=offsets,
        images_per_state=np.int32(len(jpeg[0]) if jpeg else 0),
        **arrays,
    )


@dataclass
class CameraSamples:
    """Kept states in memory, as arrays over the state axis; texts are shared by index."""

    masks: np.ndarray  # (N, mask channels, packed bytes) uint8
    velocity: np.ndarray  # (N, 2, rows, cols) int8
    ego_state: np.ndarray  # (N, ego_state_dim) float32, the own instruction's age last
    ego_motion: np.ndarray  # (N, 3) dx, dy, dyaw of the state's base_link in the frame before
    text_index: np.ndarray  # (N,) int32 into texts: the episode's instruction
    counterfactual_index: np.ndarray  # (N, C) int32 into texts: other instructions; -1: none
    counterfactual_age: np.ndarray  # (N, C) float32: their ages, s
    trajectory: np.ndarray  # (N, T, 3) float32 in base_link: the expert's own future
    trajectory_valid: np.ndarray  # (N,) bool: the expert drove and its future is known
    rationale: np.ndarray  # (N,) int8, the expert's; -1: none
    source: np.ndarray  # (N,) uint8 into CAMERA_SOURCES
    jpeg: list[np.ndarray]  # per state, its images' JPEG buffers, frame-major
    texts: list[str]
    intents: list[str]

    def __len__(self) -> int:
        return len(self.text_index)

    def rasters(self, index: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
        """Return (len(index), channels, rows, cols) float32: the states' privileged rasters."""
        return decode_rasters(self.masks[index], self.velocity[index], channels)

    def images(self, state: int, cameras: int) -> np.ndarray:
        """Return (FRAMES_PER_STATE, cameras, H, W, 3) uint8: the state's two frames."""
        frames = [decode_image(buffer) for buffer in self.jpeg[state]]
        return np.stack(frames).reshape(FRAMES_PER_STATE, cameras, *frames[0].shape)


ARRAY_FIELDS = (
    'masks',
    'velocity',
    'ego_state',
    'ego_motion',
    'text_index',
    'counterfactual_index',
    'counterfactual_age',
    'trajectory',
    'trajectory_valid',
    'rationale',
    'source',
)


def load_camera_samples(folders: list[Path], settings: CameraDatasetSettings) -> CameraSamples:
    """Read every shard of the camera data sets into memory, texts merged into one table."""
    parts, jpeg, tables = [], [], TextTables()
    for folder in folders:
        if not (folder / 'dataset.json').is_file():
            raise DatasetError(f'{folder} is not a camera data set (no dataset.json)')
        prepare_dataset(folder, settings)
        for shard in sorted(folder.glob('*.npz')):
            part = read_shard(shard)
            remap = tables.remap(part)
            part['text_index'] = remap[part['text_index']]
            part['counterfactual_index'] = remap[part['counterfactual_index']]
            per_state = int(part['images_per_state'])
            offsets, buffer = part['jpeg_offsets'], part['jpeg']
            for first in range(0, len(offsets) - 1, per_state):
                jpeg.append(
                    [buffer[offsets[i] : offsets[i + 1]] for i in range(first, first + per_state)]
                )
            parts.append(part)
    if not parts:
        raise DatasetError(f'no shards (*.npz) in {", ".join(map(str, folders))}')
    return CameraSamples(
        **{name: np.concatenate([p[name] for p in parts]) for name in ARRAY_FIELDS},
        jpeg=jpeg,
        texts=tables.texts,
        intents=tables.intents,
    )
