"""The privileged teacher's training data: BEV rasters, ego state, instruction, expert plan.

Hundreds of thousands of frames have to fit in memory on a 24 GB machine, so a raster is stored
as bits for its masks and int8 for its two velocity layers (0.25 m/s steps): 3.5 KB a frame
instead of 98 KB as float32. A data set is a folder of shards (`*.npz`, one per recorded episode
or labelling batch, written whole or not at all) and a `dataset.json` that says on which grid,
channels and plan steps they were made; a shard from other settings is refused by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vla_model.config import VELOCITY_CHANNELS, VELOCITY_SCALE_MPS
from vla_model.instruction_features import instruction_input
from vla_model.teacher_network import TeacherConfig

FORMAT_VERSION = 1
MANIFEST = 'dataset.json'
VELOCITY_QUANTUM = 0.25 / VELOCITY_SCALE_MPS
"""One int8 step of a stored velocity layer, in the raster's scaled units (0.25 m/s)."""
SOURCES = ('expert', 'counterfactual', 'on_policy')
"""Where a sample's label came from: the expert's own drive, the expert told another
instruction from that state, or the expert labelling a state the learner drove into."""


class DatasetError(ValueError):
    """A data set or shard that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class DatasetSettings:
    """What every shard of a data set shares; fixed when the data set is created."""

    format_version: int
    channels: tuple[str, ...]
    bev_x_range: tuple[float, float]
    bev_y_range: tuple[float, float]
    bev_cell_m: float
    horizon_steps: int
    step_s: float
    ego_state_dim: int

    @classmethod
    def of(cls, config: TeacherConfig) -> DatasetSettings:
        """Return the settings a teacher of `config` trains on."""
        plan = config.plan
        return cls(
            FORMAT_VERSION,
            config.channels,
            plan.bev_x_range,
            plan.bev_y_range,
            plan.bev_cell_m,
            plan.horizon_steps,
            plan.step_s,
            plan.ego_state_dim,
        )


def prepare_dataset(folder: Path, settings: object, manifest_name: str = MANIFEST) -> None:
    """Create `folder` with its manifest, or check an existing one was made with `settings`.

    `settings`: a dataclass (DatasetSettings, or a data set kind's own that nests it).
    `manifest_name`: another file for settings the readers do not check (who drove, say), so
    that data sets of either kind are read together.
    """
    manifest = folder / manifest_name
    wanted = json.loads(json.dumps(asdict(settings)))
    if manifest.is_file():
        found = json.loads(manifest.read_text(encoding='utf-8'))
        if found != wanted:
            changed = sorted(
                k for k in wanted.keys() | found.keys() if found.get(k) != wanted.get(k)
            )
            raise DatasetError(
                f'{manifest} was made with other settings ({", ".join(changed)} differ): use '
                'another folder, or delete this one to regenerate it'
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted, indent=1) + '\n', encoding='utf-8')


def _mask_and_velocity_indices(channels: tuple[str, ...]) -> tuple[list[int], list[int]]:
    velocity = [channels.index(name) for name in VELOCITY_CHANNELS]
    masks = [i for i in range(len(channels)) if i not in velocity]
    return masks, velocity


def encode_rasters(rasters: np.ndarray, channels: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Pack (N, channels, rows, cols) float rasters: masks as bits, velocities as int8."""
    masks, velocity = _mask_and_velocity_indices(channels)
    count = len(rasters)
    bits = np.packbits(rasters[:, masks].reshape(count, len(masks), -1) > 0.5, axis=-1)
    steps = np.clip(np.rint(rasters[:, velocity] / VELOCITY_QUANTUM), -127, 127)
    return {'masks': bits, 'velocity': steps.astype(np.int8)}


def decode_rasters(
    masks: np.ndarray, velocity: np.ndarray, channels: tuple[str, ...]
) -> np.ndarray:
    """Inverse of encode_rasters: (N, channels, rows, cols) float32."""
    mask_index, velocity_index = _mask_and_velocity_indices(channels)
    count, rows, cols = len(masks), velocity.shape[2], velocity.shape[3]
    rasters = np.empty((count, len(channels), rows, cols), np.float32)
    unpacked = np.unpackbits(masks, axis=-1, count=rows * cols)
    rasters[:, mask_index] = unpacked.reshape(count, len(mask_index), rows, cols)
    rasters[:, velocity_index] = velocity.astype(np.float32) * VELOCITY_QUANTUM
    return rasters


@dataclass
class Samples:
    """Samples in memory, as arrays over the sample axis; texts are shared by index."""

    masks: np.ndarray  # (N, mask channels, packed bytes) uint8
    velocity: np.ndarray  # (N, 2, rows, cols) int8
    ego_state: np.ndarray  # (N, ego_state_dim) float32
    text_index: np.ndarray  # (N,) int32 into texts
    trajectory: np.ndarray  # (N, T, 3) float32, base_link
    rationale: np.ndarray  # (N,) int8, -1: none
    source: np.ndarray  # (N,) uint8 index into SOURCES
    texts: list[str]
    intents: list[str]  # per text: the Intent value it was given with

    def __len__(self) -> int:
        return len(self.text_index)


def write_shard(path: Path, rasters: np.ndarray, channels: tuple[str, ...], **arrays) -> None:
    """Write one shard atomically (a temporary name, then a rename): a stopped run leaves none.

    `arrays`: ego_state, text_index, trajectory, rationale, source (as Samples) and texts,
    intents (lists of str).
    """
    tensors = {
        **encode_rasters(rasters, channels),
        **{k: np.asarray(v) for k, v in arrays.items() if k not in ('texts', 'intents')},
    }
    partial = path.with_name(f'{path.stem}.{os.getpid()}.partial.npz')
    np.savez_compressed(
        partial,
        texts=np.array(arrays['texts'], dtype=str),
        intents=np.array(arrays['intents'], dtype=str),
        **tensors,
    )
    partial.replace(path)


def _shards(folders: list[Path], settings: DatasetSettings) -> list[Path]:
    shards = []
    for folder in folders:
        if not (folder / MANIFEST).is_file():
            raise DatasetError(f'{folder} is not a teacher data set (no {MANIFEST})')
        prepare_dataset(folder, settings)
        shards += sorted(folder.glob('*.npz'))
    if not shards:
        raise DatasetError(f'no shards (*.npz) in {", ".join(map(str, folders))}')
    return shards


def read_shard(shard: Path) -> dict[str, np.ndarray]:
    """Return a shard's arrays; one that cannot be read is refused by name."""
    try:
        with np.load(shard) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, KeyError) as error:
        raise DatasetError(f'shard {shard} cannot be read: {error}') from None


class TextTables:
    """Merges the shards' instruction tables into one, each (text, intent) once."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.intents: list[str] = []
        self._index: dict[tuple[str, str], int] = {}

    def remap(self, part: dict[str, np.ndarray]) -> np.ndarray:
        """Return the shard's text indices in the merged table (index -1 stays -1)."""
        remap = []
        for key in zip(part['texts'].tolist(), part['intents'].tolist(), strict=True):
            if key not in self._index:
                self._index[key] = len(self.texts)
                self.texts.append(key[0])
                self.intents.append(key[1])
            remap.append(self._index[key])
        return np.asarray(remap + [-1], np.int32)


def load_samples(folders: list[Path], settings: DatasetSettings) -> Samples:
    """Read every shard of the data sets into memory, texts merged into one table."""
    parts, tables = [], TextTables()
    for shard in _shards(folders, settings):
        part = read_shard(shard)
        part['text_index'] = tables.remap(part)[part['text_index']]
        parts.append(part)
    fields = ('masks', 'velocity', 'ego_state', 'text_index', 'trajectory', 'rationale', 'source')
    return Samples(
        **{name: np.concatenate([p[name] for p in parts]) for name in fields},
        texts=tables.texts,
        intents=tables.intents,
    )


def instruction_table(
    texts: list[str], encode: Callable[[str], np.ndarray], speed_slot: bool
) -> np.ndarray:
    """Return (len(texts), width) float32: each text's instruction input, encoded once."""
    return np.stack([instruction_input(encode(text), text, speed_slot) for text in texts])
