"""Training clips from cached bags: consecutive frames, network inputs and labels.

A sample is a clip of `clip_length` consecutive frames of one bag, so the temporal fusion
trains as it runs: the first frame starts from an empty previous BEV (what the inference core
does after a reset), each later one from the BEV of the frame before it. Clips never span a
time jump (a new sync epoch) or a gap the inference core would reset on, and every frame of a
clip has a trajectory label. Inputs are built exactly as `InferenceCore` builds them: ego motion
by `relative_motion`, per-frame view weights by `view_weight`, so a camera without an image
reads as unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vla_model.bag_cache import BagCache, DatasetSettings, load_bag
from vla_model.bev_geometry import CameraGeometry, build_view_lut, view_weight
from vla_model.model_inputs import relative_motion
from vla_perception.synchronizer import to_ns

DEFAULT_MAX_FRAME_GAP_S = 0.5  # vla_inference_node's max_frame_gap_s default


class DrivingDataset(Dataset):
    """Clips of consecutive labelled frames from one or more bags of the same rig."""

    def __init__(
        self,
        bags: Sequence[Path],
        cache_root: Path,
        settings: DatasetSettings,
        encode: Callable[[str], np.ndarray],
        clip_length: int = 2,
        max_frame_gap_s: float = DEFAULT_MAX_FRAME_GAP_S,
        progress: bool = True,
    ) -> None:
        if clip_length < 1:
            raise ValueError(f'clip_length must be >= 1, got {clip_length}')
        if not bags:
            raise ValueError('no bags given')
        self.settings = settings
        self.clip_length = clip_length
        self.bags: list[BagCache] = [
            load_bag(Path(bag), cache_root, settings, encode, progress) for bag in bags
        ]
        model = settings.model
        self.lut = build_view_lut(model, self._cameras())
        max_gap_ns = to_ns(max_frame_gap_s)
        self.clips: list[tuple[int, int]] = []
        for index, bag in enumerate(self.bags):
            self.clips += [(index, start) for start in _clip_starts(bag, clip_length, max_gap_ns)]

    def __len__(self) -> int:
        """Return the number of clips."""
        return len(self.clips)

    @property
    def frames(self) -> int:
        """Return the number of frames in all bags."""
        return sum(bag.frames for bag in self.bags)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Return one clip: network inputs and labels, each with a leading clip dimension."""
        bag_index, start = self.clips[index]
        bag = self.bags[bag_index]
        span = slice(start, start + self.clip_length)
        arrays = {name: bag.arrays[name][span] for name in bag.arrays if not _per_bag(name)}
        poses = arrays['pose']
        motion = [np.zeros(3, np.float32)]  # the first frame starts from an empty BEV
        motion += [relative_motion(tuple(a), tuple(b)) for a, b in pairwise(poses)]
        sample = {
            'images': np.array(bag.images[span]),
            'lut_weight': np.stack(
                [view_weight(self.lut.cameras, valid) for valid in arrays['camera_valid']]
            ),
            'ego_motion': np.stack(motion),
            'ego_state': arrays['ego_state'],
            'instruction': bag.arrays['instruction_embedding'][arrays['instruction']],
            'map_prior': arrays['map_prior'].astype(np.float32),
            'map_prior_present': arrays['map_prior_valid'][:, None].astype(np.float32),
            'trajectory': arrays['trajectory'],
            'bev': arrays['bev'].astype(np.float32),
            'bev_valid': arrays['bev_valid'],
            'rationale': arrays['rationale'],
        }
        return {
            name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in sample.items()
        }

    def _cameras(self) -> list[CameraGeometry]:
        """Return the rig calibration, which every bag must share (one view LUT for all)."""
        first = self.bags[0].calibration
        for bag in self.bags[1:]:
            other = bag.calibration
            if not all(np.allclose(first[key], other[key]) for key in first):
                raise ValueError(
                    f'{bag.meta["bag"]} has another camera calibration than '
                    f'{self.bags[0].meta["bag"]}; train on bags of one rig'
                )
        return [
            CameraGeometry(k, rotation, translation)
            for k, rotation, translation in zip(
                first['k'], first['rotation'], first['translation'], strict=True
            )
        ]


def _per_bag(name: str) -> bool:
    return name == 'instruction_embedding' or name.startswith('camera_') and name != 'camera_valid'


def _clip_starts(bag: BagCache, length: int, max_gap_ns: int) -> list[int]:
    """Return the first frame of every clip: labelled frames, one epoch, no reset-sized gap."""
    stamps, epochs = bag.arrays['stamp_ns'], bag.arrays['epoch']
    labelled = bag.arrays['trajectory_valid']
    starts = []
    for start in range(bag.frames - length + 1):
        span = slice(start, start + length)
        gaps = np.diff(stamps[span])
        if (
            labelled[span].all()
            and (epochs[span] == epochs[start]).all()
            and ((gaps > 0) & (gaps <= max_gap_ns)).all()
        ):
            starts.append(start)
    return starts
