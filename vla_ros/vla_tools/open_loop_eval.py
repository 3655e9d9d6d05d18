"""`vla eval-bags BAGS --weights W --json PATH`: open-loop planning metrics on logged drives.

Every frame of a bag (read through the bag cache: the live sync core and the node's frame
conversion) is planned by `InferenceCore`, the runtime class, in log order with its temporal
state and resets; the selected trajectory is compared with what the vehicle did next.

Definitions, as the nuScenes planning benchmark is usually scored (ST-P3, UniAD):

- **L2 at t** (t = 1, 2, 3 s): distance between the planned and the logged base_link position
  t after the frame, both in base_link at the frame's stamp; metres, averaged over frames that
  have a logged future of 3 s. The value at t itself (UniAD), not the mean up to t (ST-P3).
- **Collision at t**: the ego footprint (`VehicleShape` without margin) placed at a planned pose
  at some plan step up to t overlaps a logged obstacle box at the same time (the ObstacleArray
  logged within 50 ms of it, in odom); percent of frames. The same check on the logged future
  itself is reported beside it: what the metric counts when the plan is perfect.

Bags are grouped by scenario: the name before `_seed<N>` (the recorder's naming), else the bag.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from tqdm import tqdm

from vla_model.artifacts import load_weights
from vla_model.backends import select_backend
from vla_model.bag_cache import BagCache, DatasetSettings, deserialized_messages, load_bag
from vla_model.bev_geometry import CameraGeometry
from vla_model.config import ModelConfig
from vla_model.instruction_encoder import InstructionEncoder
from vla_model.model_inputs import FrameInput
from vla_perception.rig import RigConfig
from vla_perception.synchronizer import stamp_to_ns, to_ns
from vla_planning.collision import Obstacles, VehicleShape, boxes_overlap
from vla_planning.inference_core import InferenceCore
from vla_ros.bag_types import make_typestore
from vla_ros.reports import markdown_table
from vla_ros.topics import OBSTACLES_TOPIC

HORIZONS_S = (1.0, 2.0, 3.0)
OBSTACLE_MATCH_NS = 50_000_000
EGO = VehicleShape(margin_m=0.0)


@dataclass
class FrameScores:
    """One frame's errors and collisions at each horizon."""

    l2_m: np.ndarray  # (horizons,)
    plan_collides: np.ndarray  # (horizons,) bool: a collision at or before the horizon
    log_collides: np.ndarray  # (horizons,) bool, the same for the logged future


def scenario_of(bag: Path) -> str:
    """Return the scenario a bag belongs to: its name without `_seed<N>`."""
    match = re.fullmatch(r'(.+)_seed\d+', bag.name)
    return match.group(1) if match else bag.name


def read_obstacles(bag: Path) -> dict[int, Obstacles]:
    """Return the bag's obstacle boxes by header stamp (odom frame only)."""
    typestore = make_typestore()
    found = {}
    with Reader(bag) as reader:
        for _, message, _ in deserialized_messages(reader, typestore, {OBSTACLES_TOPIC}):
            if message.header.frame_id == 'odom':
                found[stamp_to_ns(message.header.stamp)] = Obstacles.from_message(message)
    return found


def _obstacles_at(obstacles: dict[int, Obstacles], stamps: np.ndarray, stamp_ns: int):
    if not len(stamps):
        return None
    index = int(np.argmin(np.abs(stamps - stamp_ns)))
    nearest = int(stamps[index])
    return obstacles[nearest] if abs(nearest - stamp_ns) <= OBSTACLE_MATCH_NS else None


def collisions(
    poses_base: np.ndarray,
    frame_pose: np.ndarray,
    times_ns: np.ndarray,
    obstacles: dict[int, Obstacles],
    stamps: np.ndarray,
) -> np.ndarray:
    """Return, per plan step, whether the ego box at that pose overlaps a logged obstacle."""
    cos, sin = np.cos(frame_pose[2]), np.sin(frame_pose[2])
    hits = np.zeros(len(poses_base), bool)
    for k, (pose, stamp_ns) in enumerate(zip(poses_base, times_ns, strict=True)):
        present = _obstacles_at(obstacles, stamps, int(stamp_ns))
        if present is None or not len(present):
            continue
        yaw = frame_pose[2] + pose[2]
        rear_axle = frame_pose[:2] + np.array(
            [cos * pose[0] - sin * pose[1], sin * pose[0] + cos * pose[1]]
        )
        centre = rear_axle + EGO.centre_offset_m * np.array([np.cos(yaw), np.sin(yaw)])
        overlap = boxes_overlap(
            centre[None],
            np.array([yaw]),
            EGO.half_extent[None],
            present.centres,
            present.yaws,
            present.sizes / 2.0,
        )
        hits[k] = bool(overlap.any())
    return hits


def frame_input(bag: BagCache, index: int, cameras: tuple[CameraGeometry, ...]) -> FrameInput:
    """Rebuild the FrameInput of a cached frame (what the node handed its core)."""
    valid = bag.arrays['camera_valid'][index]
    return FrameInput(
        stamp_ns=int(bag.arrays['stamp_ns'][index]),
        epoch=int(bag.arrays['epoch'][index]),
        images=np.array(bag.images[index]),  # a writable copy of the memory-mapped frame
        camera_valid=valid,
        cameras=tuple(
            camera if ok else CameraGeometry(np.eye(3), camera.rotation, camera.translation)
            for camera, ok in zip(cameras, valid, strict=True)
        ),
        pose=tuple(bag.arrays['pose'][index]),
        ego_state=tuple(float(v) for v in bag.arrays['ego_state'][index]),
    )


def evaluate_bag(
    bag: BagCache,
    core: InferenceCore,
    obstacles: dict[int, Obstacles],
    map_prior: bool = False,
    bar=None,
) -> list[FrameScores]:
    """Plan every frame of a cached bag in order; return the scores of the labelled ones.

    `map_prior`: give the model the bag's map layers where it has them (else map-free).
    """
    config = core.config
    calibration = bag.calibration
    cameras = tuple(
        CameraGeometry(k, r, t)
        for k, r, t in zip(
            calibration['k'], calibration['rotation'], calibration['translation'], strict=True
        )
    )
    texts = bag.meta['instructions']
    stamps = np.array(sorted(obstacles), dtype=np.int64)
    scores = []
    for index in range(bag.frames):
        core.set_instruction(texts[bag.arrays['instruction'][index]])
        prior = None
        if map_prior and bag.arrays['map_prior_valid'][index]:
            prior = bag.arrays['map_prior'][index].astype(np.float32)
        plan = core.step(frame_input(bag, index, cameras), prior)
        if bar is not None:
            bar.update()
        if not bag.arrays['trajectory_valid'][index]:
            continue
        scores.append(
            score_frame(
                plan.trajectory,
                bag.arrays['trajectory'][index],
                bag.arrays['pose'][index],
                int(bag.arrays['stamp_ns'][index]),
                config,
                obstacles,
                stamps,
            )
        )
    return scores


def score_frame(
    planned: np.ndarray,
    truth: np.ndarray,
    pose: np.ndarray,
    stamp_ns: int,
    config: ModelConfig,
    obstacles: dict[int, Obstacles],
    stamps: np.ndarray,
) -> FrameScores:
    """Score one plan against the logged future (both (T, 3) in base_link at `stamp_ns`).

    `pose` is base_link in odom at the frame; `stamps` the sorted keys of `obstacles`.
    """
    steps = [round(h / config.step_s) - 1 for h in HORIZONS_S]
    times_ns = stamp_ns + to_ns(config.step_s) * np.arange(1, config.horizon_steps + 1)
    plan_hits = np.cumsum(collisions(planned, pose, times_ns, obstacles, stamps)) > 0
    log_hits = np.cumsum(collisions(truth, pose, times_ns, obstacles, stamps)) > 0
    l2 = np.linalg.norm(planned[:, :2] - truth[:, :2], axis=1)
    return FrameScores(l2[steps], plan_hits[steps], log_hits[steps])


def summarise(scores: list[FrameScores]) -> dict[str, float | int]:
    """Return mean L2 and collision percentages at each horizon."""
    result: dict[str, float | int] = {'frames': len(scores)}
    if not scores:
        return result
    l2 = np.stack([s.l2_m for s in scores])
    plan = np.stack([s.plan_collides for s in scores])
    log = np.stack([s.log_collides for s in scores])
    for i, horizon in enumerate(HORIZONS_S):
        label = f'{horizon:.0f}s'
        result[f'l2_{label}_m'] = float(l2[:, i].mean())
        result[f'collision_{label}_pct'] = float(100.0 * plan[:, i].mean())
        result[f'log_collision_{label}_pct'] = float(100.0 * log[:, i].mean())
    result['l2_avg_m'] = float(l2.mean())
    return result


def evaluate_bags(
    bags: list[Path], weights: Path, cache_root: Path, rig: RigConfig, progress: bool = True
) -> dict:
    """Evaluate the model in `weights` on every bag, map-free and, where bags have one, mapped.

    Returns {'map_free': results, 'with_map_prior': results or None, ...}, each results being
    {'scenarios': {name: metrics}, 'all': metrics}.
    """
    model = load_weights(weights)
    settings = DatasetSettings.defaults(model.config, rig)
    encoder = InstructionEncoder()
    caches = [load_bag(bag, cache_root, settings, encoder.encode, progress) for bag in bags]
    obstacles = [read_obstacles(bag) for bag in bags]
    mapped = any(cache.arrays['map_prior_valid'].any() for cache in caches)
    modes = {'map_free': False, **({'with_map_prior': True} if mapped else {})}
    bar = tqdm(
        total=len(modes) * sum(c.frames for c in caches),
        desc='planning',
        unit='frame',
        disable=not progress,
    )
    results = {}
    for mode, use_prior in modes.items():
        per_scenario: dict[str, list[FrameScores]] = defaultdict(list)
        for bag, cache, logged in zip(bags, caches, obstacles, strict=True):
            core = InferenceCore(
                model.config, select_backend('torch', model, None), encoder.encode
            )
            per_scenario[scenario_of(bag)] += evaluate_bag(cache, core, logged, use_prior, bar)
        every = [score for scores in per_scenario.values() for score in scores]
        results[mode] = {
            'scenarios': {
                name: summarise(scores) for name, scores in sorted(per_scenario.items())
            },
            'all': summarise(every),
        }
    bar.close()
    return {
        'model': model.config.name,
        'weights': str(weights),
        'bags': len(bags),
        'map_free': results['map_free'],
        'with_map_prior': results.get('with_map_prior'),
    }


def metrics_table(result: dict) -> str:
    """Return a Markdown table of per-scenario metrics (one results entry of evaluate_bags)."""
    header = ['scenario', 'frames', 'L2 1s', 'L2 2s', 'L2 3s', 'coll. 1s', 'coll. 2s', 'coll. 3s']
    rows = []
    for name, metrics in [*result['scenarios'].items(), ('all', result['all'])]:
        if not metrics['frames']:
            rows.append([name, 0, *['–'] * 6])
            continue
        cells = [f'{metrics[f"l2_{h}s_m"]:.2f} m' for h in (1, 2, 3)]
        cells += [
            f'{metrics[f"collision_{h}s_pct"]:.1f} % ({metrics[f"log_collision_{h}s_pct"]:.1f})'
            for h in (1, 2, 3)
        ]
        rows.append([name, metrics['frames'], *cells])
    return markdown_table(header, rows)


def add_eval_bags_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla eval-bags`'s arguments."""
    parser.add_argument('bags', type=Path, nargs='+', help='bag folders (MCAP or sqlite3)')
    parser.add_argument('--weights', type=Path, required=True, help='model weights (safetensors)')
    parser.add_argument('--json', type=Path, help='write the metrics here')
    parser.add_argument(
        '--cache',
        type=Path,
        default=Path('.vla_cache'),
        help='bag cache folder (default .vla_cache)',
    )
    parser.add_argument('--rig', type=Path, help='camera rig file (default: the packaged one)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_eval_bags(args: argparse.Namespace) -> int:
    """Run `vla eval-bags`: print the table, write JSON; bad input is one line and exit 1."""
    from vla_model.artifacts import ArtifactError
    from vla_model.bag_cache import BagReadError
    from vla_ros.install_paths import vla_ros_file
    from vla_ros.reports import write_json

    try:
        rig = RigConfig.from_file(args.rig or vla_ros_file('config/rig_surround.yaml'))
        result = evaluate_bags(
            list(args.bags),
            args.weights,
            args.cache,
            rig,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError, BagReadError, ArtifactError) as error:
        print(f'vla eval-bags: {error}', file=sys.stderr)
        return 1
    for mode in ('map_free', 'with_map_prior'):
        if result[mode] is not None:
            print(f'{mode.replace("_", " ")}:')
            print(metrics_table(result[mode]))
    if result['with_map_prior'] is None:
        print('(the bags carry no map prior: map-free only)')
    print('collision: percent of frames (the same check on the logged future in brackets)')
    if args.json:
        write_json(args.json, result)
    return 0
