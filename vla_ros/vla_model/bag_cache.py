"""Model-ready frames and labels from a rosbag2 bag, through the live sync core, cached on disk.

A bag is read twice with `rosbags` (MCAP or sqlite3, no ROS runtime). The first pass takes the
light topics: odometry (the trajectory labels need the future), instructions, and the
simulator's BEV grids, rationale texts and expert trajectories where the bag has them (a frame
with an expert trajectory takes it as its label instead of the logged future). The second pass
feeds cameras, CameraInfo and odometry to a `SensorSyncCore` exactly as `sensor_sync_node` would
(`OfflineSync`), and converts each frame with `synced_frame_input`, the conversion of
`vla_inference_node`: training sees the frames the running stack sees.

The result is written once per bag and settings to a cache folder: the images as one raw uint8
file read back by memory map (so a dataset larger than memory trains), and the small per-frame
arrays, calibration and instruction embeddings beside it. The cache key hashes the bag's files
(size and modification time), the settings and CACHE_VERSION; a changed bag or setting is
re-read, an unchanged one costs nothing. A cache is written under a temporary name and renamed
when complete, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from vla_model.config import ModelConfig
from vla_model.driving_labels import (
    PoseTrack,
    expert_trajectory,
    future_trajectory,
    occupancy_mask,
    rationale_index,
)
from vla_model.model_inputs import synced_frame_input
from vla_perception.odometry import OdometrySample
from vla_perception.offline_sync import OfflineCounts, OfflineSync
from vla_perception.rig import RigConfig
from vla_perception.sensor_sync import SensorSyncConfig, SensorSyncCore, SyncedFrame
from vla_perception.synchronizer import SyncConfig, stamp_to_ns
from vla_ros.bag_types import make_typestore
from vla_ros.topics import (
    EXPERT_TRAJECTORY_TOPIC,
    INSTRUCTION_TOPIC,
    ODOMETRY_TOPIC,
    RATIONALE_TOPIC,
    bev_topic,
    map_prior_topic,
)

CACHE_VERSION = 2
MODEL_FIELDS_CACHED = (
    'image_height',
    'image_width',
    'bev_x_range',
    'bev_y_range',
    'bev_cell_m',
    'horizon_steps',
    'step_s',
    'rationales',
    'bev_classes',
    'instruction_dim',
)
"""The model settings a cached bag depends on: a student and its teacher share one cache."""


class BagReadError(RuntimeError):
    """A bag that cannot be turned into training data; the message says which and why."""


@dataclass(frozen=True)
class DatasetSettings:
    """Everything a cached bag depends on besides the bag itself."""

    model: ModelConfig
    rig: RigConfig
    sync: SensorSyncConfig
    odometry_topic: str = ODOMETRY_TOPIC
    instruction_topic: str = INSTRUCTION_TOPIC

    @classmethod
    def defaults(cls, model: ModelConfig, rig: RigConfig) -> DatasetSettings:
        """Return the settings of a `sensor_sync_node` run with its default parameters."""
        sync = SensorSyncConfig(
            SyncConfig(rig.names),
            output_width=model.image_width,
            output_height=model.image_height,
            preprocess_threads=1,
        )
        return cls(model, rig, sync)

    def key(self) -> str:
        """Return a hash of everything that changes the cached frames."""
        model = {name: getattr(self.model, name) for name in MODEL_FIELDS_CACHED}
        text = json.dumps(
            {
                'version': CACHE_VERSION,
                'model': model,
                'rig': asdict(self.rig),
                'sync': asdict(self.sync),
                'topics': [self.odometry_topic, self.instruction_topic],
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class BagCache:
    """One bag's frames, read back from its cache folder (images memory-mapped)."""

    folder: Path
    meta: dict
    arrays: dict[str, np.ndarray]
    images: np.ndarray  # (frames, cameras, height, width, 3) uint8, memory-mapped

    @property
    def frames(self) -> int:
        """Frames in the bag."""
        return len(self.arrays['stamp_ns'])

    @property
    def calibration(self) -> dict[str, np.ndarray]:
        """Per camera: k (3, 3) of the model-ready image, rotation (3, 3), translation (3,)."""
        return {name: self.arrays[f'camera_{name}'] for name in ('k', 'rotation', 'translation')}

    @classmethod
    def open(cls, folder: Path) -> BagCache:
        """Open a complete cache folder."""
        meta = json.loads((folder / 'meta.json').read_text(encoding='utf-8'))
        with np.load(folder / 'frames.npz') as data:
            arrays = {name: data[name] for name in data.files}
        shape = (len(arrays['stamp_ns']), *meta['image_shape'])
        return cls(
            folder, meta, arrays, np.memmap(folder / 'images.u8', np.uint8, 'r', shape=shape)
        )


def bag_fingerprint(bag: Path) -> list[tuple[str, int, int]]:
    """Return (name, size, mtime ns) of each file of a bag folder (or of a single bag file)."""
    files = sorted(p for p in bag.iterdir() if p.is_file()) if bag.is_dir() else [bag]
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def cache_folder(bag: Path, cache_root: Path, settings: DatasetSettings) -> Path:
    """Return where the cache of `bag` under `settings` lives."""
    fingerprint = json.dumps([str(bag.resolve()), bag_fingerprint(bag), settings.key()])
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return cache_root / f'{bag.resolve().name}-{digest}'


def deserialized_messages(
    reader: Reader, typestore: Typestore, topics: set[str]
) -> Iterator[tuple[str, object, int]]:
    """Yield (topic, message, log time ns) of the topics in log order; BagReadError if corrupt."""
    connections = [c for c in reader.connections if c.topic in topics]
    for connection, log_time_ns, raw in reader.messages(connections=connections):
        try:
            message = typestore.deserialize_cdr(raw, connection.msgtype)
        except Exception as error:  # rosbags raises several types for corrupt CDR
            raise BagReadError(
                f'{reader.path}: a {connection.msgtype} message on {connection.topic} at '
                f'{log_time_ns} ns cannot be deserialised: {error}'
            ) from error
        yield connection.topic, message, log_time_ns


@dataclass
class _LightTopics:
    """What the first pass collects."""

    track: PoseTrack
    instructions: list[tuple[int, str]]  # (log time ns, text), in log order
    bev: dict[int, dict[str, np.ndarray]]  # frame stamp ns -> class -> mask
    map_prior: dict[int, dict[str, np.ndarray]]  # frame stamp ns -> layer -> mask
    rationale: dict[int, int]  # log time ns -> rationale class
    expert: dict[int, np.ndarray]  # frame stamp ns -> (T, 3) expert trajectory label


def _read_light_topics(
    reader: Reader, typestore: Typestore, settings: DatasetSettings
) -> _LightTopics:
    model = settings.model
    bev_topics = {bev_topic(name): name for name in model.bev_classes}
    map_topics = {map_prior_topic(name): name for name in model.map_prior_layers}
    odometry, instructions, bev, map_prior, rationale, expert = [], [], {}, {}, {}, {}
    topics = {
        settings.odometry_topic,
        settings.instruction_topic,
        RATIONALE_TOPIC,
        EXPERT_TRAJECTORY_TOPIC,
        *bev_topics,
        *map_topics,
    }
    for topic, message, log_time_ns in deserialized_messages(reader, typestore, topics):
        if topic == settings.odometry_topic:
            try:
                sample = OdometrySample.from_message(message)
            except ValueError:
                continue  # the sync core counts it too; the track just has a hole
            odometry.append((sample.stamp_ns, *sample.position[:2], sample.yaw))
        elif topic == settings.instruction_topic:
            instructions.append((log_time_ns, message.text))
        elif topic == RATIONALE_TOPIC:
            rationale[log_time_ns] = rationale_index(message.data, model)
        elif topic == EXPERT_TRAJECTORY_TOPIC:
            stamp_ns = stamp_to_ns(message.header.stamp)
            try:
                expert[stamp_ns] = expert_trajectory(message, model)
            except ValueError as error:
                raise BagReadError(f'{reader.path}: {topic} at {stamp_ns} ns: {error}') from None
        else:
            mask = occupancy_mask(message, model)
            if mask is None:
                continue  # another grid than the model's: no label
            stamp_ns = stamp_to_ns(message.header.stamp)
            if topic in bev_topics:
                bev.setdefault(stamp_ns, {})[bev_topics[topic]] = mask
            else:
                map_prior.setdefault(stamp_ns, {})[map_topics[topic]] = mask
    return _LightTopics(
        PoseTrack.from_samples(odometry), instructions, bev, map_prior, rationale, expert
    )


def _instruction_at(instructions: list[tuple[int, str]], stamp_ns: int) -> str:
    text = ''
    for log_time_ns, candidate in instructions:
        if log_time_ns > stamp_ns:
            break
        text = candidate
    return text


class _CalibrationCheck:
    """The bag's calibration per camera, from the first frame each camera is usable in."""

    def __init__(self, bag: Path, names: tuple[str, ...]) -> None:
        self.bag = bag
        self.names = names
        self.k: list[np.ndarray | None] = [None] * len(names)
        self.rotation: list[np.ndarray | None] = [None] * len(names)
        self.translation: list[np.ndarray | None] = [None] * len(names)

    def add(self, frame_input) -> None:
        for index, (camera, valid) in enumerate(
            zip(frame_input.cameras, frame_input.camera_valid, strict=True)
        ):
            if not valid:
                continue
            if self.k[index] is None:
                self.k[index] = camera.k
                self.rotation[index] = camera.rotation
                self.translation[index] = camera.translation
            elif not np.allclose(self.k[index], camera.k):
                raise BagReadError(
                    f'{self.bag}: the intrinsics of camera {self.names[index]} change at '
                    f'{frame_input.stamp_ns} ns; split the bag where the calibration changes'
                )

    def arrays(self) -> dict[str, np.ndarray]:
        missing = [name for name, k in zip(self.names, self.k, strict=True) if k is None]
        if missing:
            raise BagReadError(
                f'{self.bag}: camera(s) {", ".join(missing)} never have a usable image '
                '(no CameraInfo, or images of another size or encoding)'
            )
        return {
            'camera_k': np.stack(self.k),
            'camera_rotation': np.stack(self.rotation),
            'camera_translation': np.stack(self.translation),
        }


class _CacheWriter:
    """Append a bag's frames to a cache folder: images to the raw file, the rest to rows."""

    FIELDS = (
        'stamp_ns',
        'epoch',
        'camera_valid',
        'pose',
        'ego_state',
        'instruction',
        'trajectory',
        'trajectory_valid',
        'bev',
        'bev_valid',
        'map_prior',
        'map_prior_valid',
        'rationale',
    )

    def __init__(self, bag: Path, folder: Path, settings: DatasetSettings, light: _LightTopics):
        self.folder = folder
        self.settings = settings
        self.light = light
        self.rows: dict[str, list] = {name: [] for name in self.FIELDS}
        self.texts: dict[str, int] = {}
        self.calibration = _CalibrationCheck(bag, settings.rig.names)
        model = settings.model
        self.empty_trajectory = np.zeros((model.horizon_steps, 3), np.float32)
        self.previous: tuple[int, float] | None = None
        self.images = open(folder / 'images.u8', 'wb')  # noqa: SIM115 (closed in finish)

    def add(self, frames: list[SyncedFrame]) -> None:
        """Convert frames as vla_inference_node would, label them, and append them."""
        model, light, rows = self.settings.model, self.light, self.rows
        for frame in frames:
            frame_input = synced_frame_input(
                frame, (model.image_height, model.image_width), self.previous
            )
            self.previous = (frame_input.stamp_ns, frame_input.ego_state[0])
            self.calibration.add(frame_input)
            self.images.write(np.ascontiguousarray(frame_input.images).tobytes())
            trajectory = light.expert.get(frame.stamp_ns)
            if trajectory is None:
                trajectory = future_trajectory(light.track, frame.stamp_ns, model)
            text = _instruction_at(light.instructions, frame.stamp_ns)
            rows['stamp_ns'].append(frame.stamp_ns)
            rows['epoch'].append(frame.epoch)
            rows['camera_valid'].append(frame_input.camera_valid)
            rows['pose'].append(frame_input.pose)
            rows['ego_state'].append(frame_input.ego_state)
            rows['instruction'].append(self.texts.setdefault(text, len(self.texts)))
            rows['trajectory'].append(self.empty_trajectory if trajectory is None else trajectory)
            rows['trajectory_valid'].append(trajectory is not None)
            for name, layers, by_stamp in (
                ('bev', model.bev_classes, light.bev),
                ('map_prior', model.map_prior_layers, light.map_prior),
            ):
                masks = by_stamp.get(frame.stamp_ns, {})
                complete = all(layer in masks for layer in layers)
                rows[name].append(
                    np.stack([masks[layer] for layer in layers])
                    if complete
                    else np.zeros((len(layers), *model.bev_size), bool)
                )
                rows[f'{name}_valid'].append(complete)
            rows['rationale'].append(light.rationale.get(frame.stamp_ns, -1))

    def finish(self, encode: Callable[[str], np.ndarray], rejected: OfflineCounts) -> None:
        """Write the per-frame arrays, calibration, instruction embeddings and metadata."""
        self.images.close()
        model, rig = self.settings.model, self.settings.rig
        frames = len(self.rows['stamp_ns'])
        if not frames:
            raise BagReadError(
                f'{self.calibration.bag}: no frame could be synchronised (the bag has no images '
                f'on the rig topics {", ".join(s.image_topic for s in rig.cameras)}?)'
            )
        arrays = {name: np.asarray(values) for name, values in self.rows.items()}
        arrays['ego_state'] = arrays['ego_state'].astype(np.float32)
        texts = sorted(self.texts, key=self.texts.get)
        arrays['instruction_embedding'] = np.stack([encode(t) for t in texts]).astype(np.float32)
        arrays.update(self.calibration.arrays())
        np.savez(self.folder / 'frames.npz', **arrays)
        meta = {
            'bag': str(self.calibration.bag.resolve()),
            'fingerprint': bag_fingerprint(self.calibration.bag),
            'settings_key': self.settings.key(),
            'image_shape': [len(rig.names), model.image_height, model.image_width, 3],
            'instructions': texts,
            'rejected': asdict(rejected),
        }
        (self.folder / 'meta.json').write_text(json.dumps(meta, indent=1), encoding='utf-8')


def _write_cache(
    bag: Path,
    folder: Path,
    settings: DatasetSettings,
    encode: Callable[[str], np.ndarray],
    progress: bool,
) -> None:
    typestore = make_typestore()
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as error:  # rosbags raises its own error types for unreadable bags
        raise BagReadError(f'{bag}: not a readable rosbag2 bag: {error}') from error
    core = SensorSyncCore(settings.rig, settings.sync)
    try:
        writer = _CacheWriter(
            bag, folder, settings, _read_light_topics(reader, typestore, settings)
        )
        offline = OfflineSync(core, settings.odometry_topic)
        total = sum(c.msgcount for c in reader.connections if c.topic in offline.topics)
        with tqdm(
            total=total, desc=f'reading {bag.name}', unit='msg', disable=not progress, leave=False
        ) as bar:
            for topic, message, log_time_ns in deserialized_messages(
                reader, typestore, offline.topics
            ):
                writer.add(offline.feed(topic, message, log_time_ns))
                bar.update()
        writer.add(offline.finish())
        writer.finish(encode, offline.rejected)
    finally:
        core.close()
        reader.close()


def load_bag(
    bag: Path,
    cache_root: Path,
    settings: DatasetSettings,
    encode: Callable[[str], np.ndarray],
    progress: bool = True,
) -> BagCache:
    """Return the cached frames of a bag, reading it first if its cache is missing or stale.

    Raises FileNotFoundError for a missing bag and BagReadError for one that cannot be read.
    """
    if not bag.exists():
        raise FileNotFoundError(f'bag {bag} does not exist')
    folder = cache_folder(bag, cache_root, settings)
    if (folder / 'meta.json').is_file():
        return BagCache.open(folder)
    partial = folder.with_name(f'{folder.name}.partial-{os.getpid()}')
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _write_cache(bag, partial, settings, encode, progress)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return BagCache.open(folder)
