"""`vla student map-iou`: the v2 student's neural map against the simulator's truth, by distance.

On held-out camera states (`vla student record` with evaluation seeds), each state's frame
before runs first, as the inference core would have run it, then the state's own. A class is
predicted where its probability exceeds one half; intersections and unions are summed over all
states before dividing, per class and per band of distance from base_link, so a band where a
class is rare weighs by its cells, not by its frames. Mapped (the HD-map layers given) and
map-free are measured on the same states.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from vla_model.bev_geometry import build_view_lut, cell_centres, rig_cameras, view_weight
from vla_model.camera_dataset import CameraDatasetSettings, CameraSamples, load_camera_samples
from vla_model.student_network import NeuralMapStudent
from vla_model.teacher_network import TeacherConfig
from vla_perception.rig import RigConfig, default_rig_path
from vla_ros.reports import write_json

DISTANCE_BANDS_M = ((0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 60.0), (0.0, 30.0))
"""Bands of distance from base_link, metres; the last is the issue's goal's ("within 30 m")."""
MEASURED_CLASSES = ('drivable', 'lane_marking', 'vehicle', 'route_lanes')
"""The published map's classes, and the route's lanes: given by the map prior's third layer to a
student that takes it, read from the cameras and the instruction alone map-free."""


def band_masks(model: NeuralMapStudent) -> np.ndarray:
    """Return (bands, rows, cols) bool: the cells of each distance band."""
    distance = np.linalg.norm(cell_centres(model.config), axis=-1)
    return np.stack([(distance >= low) & (distance < high) for low, high in DISTANCE_BANDS_M])


@torch.inference_mode()
def neural_map_iou(
    model: NeuralMapStudent,
    samples: CameraSamples,
    rig: RigConfig,
    map_prior: bool,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Return class -> band name -> IoU over all states (see the module docstring)."""
    from tqdm import tqdm

    config = model.config
    channels = TeacherConfig().channels
    lut = build_view_lut(config, rig_cameras(rig, config))
    lut_index = torch.from_numpy(lut.index)
    weight = torch.from_numpy(view_weight(lut.cameras, np.ones(config.num_cameras, bool)))
    bands = torch.from_numpy(band_masks(model))
    classes = [config.bev_classes.index(name) for name in MEASURED_CLASSES]
    intersection = torch.zeros(len(classes), len(bands))
    union = torch.zeros(len(classes), len(bands))
    empty = torch.zeros((1, config.bev_channels, *config.bev_size))
    for start in tqdm(
        range(0, len(samples), batch_size), desc='neural map', unit='batch', disable=not progress
    ):
        index = np.arange(start, min(start + batch_size, len(samples)))
        rasters = torch.from_numpy(samples.rasters(index, channels))
        images = torch.from_numpy(np.stack([samples.images(i, config.num_cameras) for i in index]))
        layer = [channels.index(name) for name in config.map_prior_layers]
        present = torch.full((len(index), 1), float(map_prior))
        prior = rasters[:, layer] * present[:, :, None, None]
        previous = model.neural_map(
            images[:, 0],
            lut_index,
            weight,
            empty.expand(len(index), -1, -1, -1),
            torch.zeros(len(index), 3),
            prior,
            present,
        ).features
        logits = model.neural_map(
            images[:, 1],
            lut_index,
            weight,
            previous,
            torch.from_numpy(samples.ego_motion[index]),
            prior,
            present,
        ).logits
        predicted = logits[:, classes] > 0.0  # (B, classes, rows, cols)
        truth = rasters[:, [channels.index(config.bev_classes[c]) for c in classes]] > 0.5
        for b, band in enumerate(bands):
            intersection[:, b] += ((predicted & truth) & band).sum(dim=(0, 2, 3))
            union[:, b] += ((predicted | truth) & band).sum(dim=(0, 2, 3))
    iou = intersection / union.clamp(min=1)
    return {
        name: {
            _band_name(band): round(float(iou[c, b]), 4) for b, band in enumerate(DISTANCE_BANDS_M)
        }
        for c, name in enumerate(MEASURED_CLASSES)
    }


def _band_name(band: tuple[float, float]) -> str:
    return f'{band[0]:g}-{band[1]:g} m'


def iou_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Return a Markdown table: one row per class and mode, one column per band."""
    names = [_band_name(band) for band in DISTANCE_BANDS_M]
    lines = [
        '| class | map prior | ' + ' | '.join(names) + ' |',
        '|---|---|' + '---|' * len(names),
    ]
    for mode, by_class in results.items():
        for name, by_band in by_class.items():
            cells = ' | '.join(f'{by_band[band]:.3f}' for band in names)
            lines.append(f'| {name} | {mode} | {cells} |')
    return '\n'.join(lines)


def add_map_iou_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla student map-iou`'s arguments."""
    parser.add_argument('weights', type=Path, help='v2 student weights (safetensors)')
    parser.add_argument('data', type=Path, nargs='+', help='held-out camera data set folders')
    parser.add_argument('--json', type=Path, help='also write the IoUs here')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def measure_map_iou(weights: Path, data: list[Path], progress: bool = True) -> dict:
    """Return the states counted and the IoUs of `weights`' map on `data`, mapped and map-free.

    Raises ArtifactError for weights that are not a v2 student, DatasetError or ValueError for
    data of another grid or rig, FileNotFoundError for a missing file.
    """
    from vla_model.artifacts import ArtifactError, load_weights

    model = load_weights(weights)
    if not isinstance(model, NeuralMapStudent):
        raise ArtifactError(f'{weights} is not a v2 student (it has no neural map head)')
    rig = RigConfig.from_file(default_rig_path())
    samples = load_camera_samples(data, CameraDatasetSettings.of(TeacherConfig(), rig))
    results = {
        mode: neural_map_iou(model, samples, rig, mode == 'on', progress=progress)
        for mode in ('on', 'off')
    }
    return {'states': len(samples), 'iou': results}


def run_map_iou(args: argparse.Namespace) -> int:
    """Run `vla student map-iou`; bad input is one line on stderr and exit code 1."""
    from vla_model.artifacts import ArtifactError
    from vla_model.privileged_dataset import DatasetError

    try:
        measured = measure_map_iou(args.weights, list(args.data), not args.no_progress)
    except (FileNotFoundError, ValueError, DatasetError, ArtifactError) as error:
        print(f'vla student map-iou: {error}', file=sys.stderr)
        return 1
    print(f'{measured["states"]} states of {", ".join(map(str, args.data))}')
    print(iou_table(measured['iou']))
    if args.json is not None:
        write_json(args.json, measured)
    return 0
