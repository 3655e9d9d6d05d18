"""`vla student train CONFIG`: distil model v2's camera student from the privileged teacher.

Learning by Cheating's second stage, on rendered states (vla_model.camera_dataset). In a step,
each state's frame before runs without gradients to give the temporal fusion its previous BEV;
the state's own frame runs with them. The losses:
- **neural map**: binary cross-entropy of each mask class against the simulator's raster (a rare
  class's positive cells weighted up, `map_positive_weight`), and
  the vehicles' velocities (smooth L1 where there is a vehicle): dense labels on every frame;
- **depth**: the lift's depth bins, cross-entropy against each pixel's first hit in the raster
  (vla_model.depth_labels), on the cameras that have an image;
- **plan**: the teacher, on the true raster, answers the state's own instruction and the other
  instructions stored with it (ages included); the student's planner, on the student's own map,
  must give the same candidates (weighted by the teacher's probabilities), the same score
  distribution (KL) and the same rationale. Perception runs once for all of them;
- **expert**: where the expert drove, its own future under the own instruction (the winner's
  regression and kinematics), so the teacher's mistakes are not the student's ceiling.
The planner starts as the teacher and learns at its own (lower) rate; the map prior is given
for a share of the states and withheld for the rest, so one network drives mapped and map-free;
a camera is dropped from a share of the states, as the node drops one without an image.
Every batch and rate is a function of the step, so a stopped run resumes exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from vla_model.artifacts import ArtifactError, load_teacher, load_weights, save_weights
from vla_model.bev_geometry import build_view_lut, rig_cameras, view_weight
from vla_model.camera_dataset import (
    CAMERA_SOURCES,
    CameraDatasetSettings,
    CameraSamples,
    load_camera_samples,
)
from vla_model.checkpoint import resume
from vla_model.config import VELOCITY_CHANNELS, ModelConfig
from vla_model.depth_labels import DepthRays, depth_rays, depth_targets
from vla_model.losses import (
    mask_iou,
    neural_map_loss,
    plan_distillation_loss,
    planning_loss,
    velocity_loss,
)
from vla_model.privileged_dataset import DatasetError, instruction_table
from vla_model.run_files import (
    add_run_file_arguments,
    read_run_file,
    run_values,
    schedule_problems,
)
from vla_model.student_network import NEURAL_MAP_CLASSES, NeuralMapStudent, student_for
from vla_model.teacher_network import PrivilegedTeacher
from vla_model.teacher_training import noisy_embeddings
from vla_model.training_loop import (
    Distributed,
    StepBatches,
    StepLog,
    forget_metrics_after,
    learning_rate,
    plot_metrics,
    setup_distributed,
)
from vla_perception.rig import RigConfig, default_rig_path

STUDENT_WEIGHTS = 'student.safetensors'


@dataclass(frozen=True)
class StudentLossWeights:
    """Weights of the student's loss terms."""

    bev: float = 1.0
    velocity: float = 0.5
    trajectory: float = 1.0
    score: float = 1.0
    rationale: float = 0.2
    expert: float = 0.5
    depth: float = 0.5


@dataclass(frozen=True)
class StudentTrainConfig:
    """A student training run, as read from its YAML file (paths relative to that file)."""

    data: tuple[str, ...]  # camera data set folders (vla student record)
    teacher_weights: str  # the privileged teacher: the labeller, and the planner's start
    out_dir: str
    init_weights: str = ''  # start from these student weights (a later round)
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 1e-3
    planner_learning_rate: float = 1e-4  # the planner starts trained: it moves more slowly
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    instruction_noise: float = 0.6  # as the teacher's: wording never seen lands near, not on
    map_prior_share: float = 0.5  # states given the map prior; the rest drive map-free
    camera_dropout: float = 0.1  # states with one camera's image missing
    # map class -> weight of its positive cells in the map's cross-entropy (losses.
    # neural_map_loss); a class not named weighs 1
    map_positive_weight: dict[str, float] = field(default_factory=dict)
    loss_weights: StudentLossWeights = field(default_factory=StudentLossWeights)

    def __post_init__(self) -> None:
        problems = [] if self.data else ['data must name at least one camera data set folder']
        if not self.teacher_weights:
            problems.append('teacher_weights must name the teacher that labels the states')
        for name in ('map_prior_share', 'camera_dropout'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f'{name} must be in [0, 1], got {getattr(self, name)}')
        if not 0.0 <= self.instruction_noise <= 2.0:
            problems.append(f'instruction_noise must be in [0, 2], got {self.instruction_noise}')
        if not self.planner_learning_rate > 0:
            problems.append('planner_learning_rate must be > 0')
        for name, weight in self.map_positive_weight.items():
            if name not in NEURAL_MAP_CLASSES:
                problems.append(
                    f'map_positive_weight: {name!r} is not a map class '
                    f'({", ".join(NEURAL_MAP_CLASSES)})'
                )
            elif not 1.0 <= weight <= 100.0:
                problems.append(f'map_positive_weight.{name} must be in [1, 100], got {weight}')
        problems += schedule_problems(
            self, ('steps', 'batch_size', 'checkpoint_every', 'log_every')
        )
        if problems:
            raise ValueError('; '.join(problems))

    @classmethod
    def from_file(cls, path: Path) -> StudentTrainConfig:
        """Read a YAML run file; unknown keys and bad values are refused by name."""
        return read_run_file(path, cls.from_dict, 'student training configuration')

    @classmethod
    def from_dict(cls, data: dict, base: Path) -> StudentTrainConfig:
        """Build from a parsed mapping; relative paths are taken from `base`."""
        paths = ('out_dir', 'init_weights', 'teacher_weights')
        return cls(**run_values(cls, data, base, StudentLossWeights, ('data',), paths))


@dataclass(frozen=True)
class StudentTrainResult:
    """What a run produced."""

    weights: Path
    sha256: str
    steps: int
    states: dict[str, int]  # per driver
    wall_s: float
    final_losses: dict[str, float]


class StudentBatches:
    """Decodes the batches of the in-memory states: images, rasters, instructions."""

    def __init__(
        self,
        samples: CameraSamples,
        instructions: np.ndarray,
        config: ModelConfig,
        channels: tuple[str, ...],
        lut_cameras: np.ndarray,
        run: StudentTrainConfig,
    ) -> None:
        self.samples = samples
        self.instructions = torch.from_numpy(instructions)
        self.config = config
        self.channels = channels
        self.lut_cameras = lut_cameras  # ViewLut.cameras: each sample's camera
        self.run = run

    def batch(self, indices: list[int], seed: int) -> dict[str, Tensor]:
        """Return the tensors of the states at `indices`; `seed` draws the augmentations."""
        s, index, config = self.samples, np.asarray(indices), self.config
        rng = np.random.default_rng(seed)
        rasters = s.rasters(index, self.channels)
        cameras = config.num_cameras
        images = np.stack([s.images(i, cameras) for i in index])
        valid = np.ones((len(index), cameras), bool)
        dropped = rng.random(len(index)) < self.run.camera_dropout
        valid[np.flatnonzero(dropped), rng.integers(0, cameras, int(dropped.sum()))] = False
        images[~valid[:, None, :].repeat(2, 1)] = 0
        weights = np.stack([view_weight(self.lut_cameras, v) for v in valid])
        layer = {name: i for i, name in enumerate(self.channels)}
        prior = rasters[:, [layer[name] for name in config.map_prior_layers]]
        present = (rng.random(len(index)) < self.run.map_prior_share).astype(np.float32)
        own = s.text_index[index][:, None]
        texts = np.concatenate([own, s.counterfactual_index[index]], axis=1)
        own_age = s.ego_state[index][:, -1:]
        ages = np.concatenate([own_age, s.counterfactual_age[index]], axis=1)
        return {
            'images': torch.from_numpy(images),
            'camera_valid': torch.from_numpy(valid),
            'lut_weight': torch.from_numpy(weights),
            'raster': torch.from_numpy(rasters),
            'bev': torch.from_numpy(rasters[:, [layer[n] for n in config.bev_classes]]),
            'velocity': torch.from_numpy(rasters[:, [layer[n] for n in VELOCITY_CHANNELS]]),
            'vehicle': torch.from_numpy(rasters[:, [layer['vehicle']]]),
            'map_prior': torch.from_numpy(prior * present[:, None, None, None]),
            'map_prior_present': torch.from_numpy(present[:, None]),
            'ego_motion': torch.from_numpy(s.ego_motion[index]),
            'ego_state': torch.from_numpy(s.ego_state[index]),
            'texts': torch.from_numpy(texts.astype(np.int64)),
            'ages': torch.from_numpy(ages.astype(np.float32)),
            'trajectory': torch.from_numpy(s.trajectory[index]),
            'trajectory_valid': torch.from_numpy(s.trajectory_valid[index]),
        }


def student_losses(
    model: NeuralMapStudent,
    teacher: PrivilegedTeacher,
    batch: dict[str, Tensor],
    lut_index: Tensor,
    instructions: Tensor,
    run: StudentTrainConfig,
    seed: int,
    rays: DepthRays | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Return the loss terms of one batch with their weighted total, and the map's IoU.

    `rays`: the rig's depth rays (depth_labels.depth_rays) for a student with depth bins.
    """
    config = model.config
    images, weights = batch['images'], batch['lut_weight'][:, None]
    prior, present = batch['map_prior'], batch['map_prior_present']
    with torch.no_grad():
        empty = torch.zeros((len(images), config.bev_channels, *config.bev_size))
        standing = torch.zeros_like(batch['ego_motion'])
        previous = model.neural_map(
            images[:, 0], lut_index, weights, empty, standing, prior, present
        ).features
    logits, velocity, _, depth = model.neural_map(
        images[:, 1], lut_index, weights, previous, batch['ego_motion'], prior, present
    )
    # Every (state, instruction) pair that exists: the own one first, then the stored others.
    state, slot = torch.nonzero(batch['texts'] >= 0, as_tuple=True)
    text = batch['texts'][state, slot]
    ego_state = batch['ego_state'][state].clone()
    ego_state[:, -1] = batch['ages'][state, slot]
    clean = instructions[text]
    with torch.no_grad():
        taught = teacher(batch['raster'][state], ego_state, clean)
    noisy = clean
    if run.instruction_noise > 0.0:
        noisy = noisy_embeddings(clean, config.instruction_dim, run.instruction_noise, seed)
    trajectories, scores, rationale = model.planner(
        model.planner_raster(logits, velocity, prior, present)[state], ego_state, noisy
    )
    trajectory, score = plan_distillation_loss(
        trajectories, scores, taught[0], taught[1], weighted=True
    )
    terms = {
        'bev': neural_map_loss(logits, batch['bev'], positive_weight(run, config)),
        'velocity': velocity_loss(velocity, batch['velocity'], batch['vehicle']),
        'trajectory': trajectory,
        'score': score,
        'rationale': functional.cross_entropy(rationale, taught[2].argmax(-1)),
        'expert': _expert_term(trajectories, scores, batch, state, slot, config.step_s),
    }
    if depth is not None:
        if rays is None:
            raise ValueError(f'{config.name} has depth bins: its depth loss needs the rig rays')
        terms['depth'] = _depth_term(
            depth, rays, batch, run.map_positive_weight.get('vehicle', 1.0)
        )
    weights_of = run.loss_weights
    terms['total'] = sum(getattr(weights_of, name) * value for name, value in terms.items())
    with torch.no_grad():
        measures = {
            f'iou_{name}': mask_iou(logits[:, channel], batch['bev'][:, channel])
            for channel, name in enumerate(config.bev_classes)
            if name in ('drivable', 'lane_marking', 'vehicle')
        }
    return terms, measures


def _depth_term(
    depth: Tensor, rays: DepthRays, batch: dict[str, Tensor], vehicle_weight: float
) -> Tensor:
    """Cross-entropy of the lift's depth bins against each pixel's first hit in the raster.

    A pixel whose first hit is a vehicle counts `vehicle_weight` times: they are 1.6 % of the
    labelled pixels (60 held-out states), and a ground pixel's depth follows from its row.
    """
    batch_size, cameras = batch['camera_valid'].shape
    bins = depth.shape[1]
    logits = depth.reshape(batch_size, cameras, bins, -1).permute(0, 1, 3, 2)
    target, on_vehicle = depth_targets(rays, batch['vehicle'][:, 0])
    target = torch.where(
        batch['camera_valid'][:, :, None], target.reshape(batch_size, cameras, -1), -1
    )
    losses = functional.cross_entropy(
        logits.reshape(-1, bins), target.reshape(-1), ignore_index=-1, reduction='none'
    )
    weight = torch.where(on_vehicle.reshape(-1), vehicle_weight, 1.0) * (target.reshape(-1) >= 0)
    return (losses * weight).sum() / weight.sum().clamp(min=1.0)


def positive_weight(run: StudentTrainConfig, config: ModelConfig) -> Tensor:
    """Return the map loss's weight of positive cells per class of `config`, (classes,)."""
    return torch.tensor([run.map_positive_weight.get(name, 1.0) for name in config.bev_classes])


def _expert_term(
    trajectories: Tensor,
    scores: Tensor,
    batch: dict[str, Tensor],
    state: Tensor,
    slot: Tensor,
    step_s: float,
) -> Tensor:
    """Return the winner's regression and kinematics toward the expert's own future."""
    rows = (slot == 0) & batch['trajectory_valid'][state]
    if not rows.any():
        return trajectories.sum() * 0.0
    target = batch['trajectory'][state[rows]]
    regression, kinematics, _ = planning_loss(trajectories[rows], scores[rows], target, step_s)
    return regression + 0.5 * kinematics


def _initial_student(run: StudentTrainConfig, teacher: PrivilegedTeacher) -> NeuralMapStudent:
    """Return the student to start from: given weights, or a new one planning as the teacher."""
    config = student_for(teacher.config)
    if run.init_weights:
        network = load_weights(Path(run.init_weights))
        if not isinstance(network, NeuralMapStudent) or network.config != config:
            raise ArtifactError(
                f'{run.init_weights} is not a student of this configuration ({config.name})'
            )
        return network.train()
    network = NeuralMapStudent(config)
    network.planner.load_state_dict(teacher.state_dict())
    return network.train()


def _teacher(run: StudentTrainConfig) -> PrivilegedTeacher:
    teacher, _ = load_teacher(Path(run.teacher_weights))
    try:
        student_for(teacher.config)
    except ValueError:
        raise ArtifactError(
            f'{run.teacher_weights} is a teacher of another configuration than the one that '
            'plans for the student'
        ) from None
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def train_student(
    run: StudentTrainConfig, progress: bool = True, stop_after: int | None = None
) -> StudentTrainResult:
    """Run (or resume) a student training run; return where the final weights are.

    `stop_after` ends the call after that many steps, leaving a checkpoint (an interrupted run,
    in tests); the final weights are written only at `run.steps`. A checkpoint of another
    configuration is refused, never overwritten.
    """
    from tqdm import tqdm

    from vla_model.instruction_encoder import InstructionEncoder

    start_time = time.perf_counter()
    dist = Distributed(0, 1, 0)
    setup_distributed(dist)
    teacher = _teacher(run)
    rig = RigConfig.from_file(default_rig_path())
    settings = CameraDatasetSettings.of(teacher.config, rig)
    samples = load_camera_samples([Path(p) for p in run.data], settings)
    config = student_for(teacher.config)
    encoder = InstructionEncoder(cache_size=len(samples.texts) + 1)
    instructions = instruction_table(samples.texts, encoder.encode, config.speed_slot)
    cameras = rig_cameras(rig, config)
    lut = build_view_lut(config, cameras)
    rays = depth_rays(config, cameras) if config.depth_bins else None
    data = StudentBatches(samples, instructions, config, teacher.config.channels, lut.cameras, run)
    lut_index = torch.from_numpy(lut.index)

    torch.manual_seed(run.seed)
    network = _initial_student(run, teacher)
    planner = {id(p) for p in network.planner.parameters()}
    optimizer = torch.optim.AdamW(
        [
            {'params': [p for p in network.parameters() if id(p) not in planner], 'scale': 1.0},
            {
                'params': list(network.planner.parameters()),
                'scale': run.planner_learning_rate / run.learning_rate,
            },
        ],
        lr=run.learning_rate,
        weight_decay=run.weight_decay,
    )
    out_dir = Path(run.out_dir)
    metadata = {'train_config': json.dumps(asdict(run)), 'config': config.to_json()}
    first_step = resume(
        out_dir / 'checkpoints', network, optimizer, metadata, ModelConfig.from_json, 'student'
    )
    last_step = run.steps if stop_after is None else min(run.steps, first_step + stop_after)
    batches = StepBatches(
        len(samples), run.batch_size, run.seed, dist, range(first_step, last_step)
    )
    metrics_path = out_dir / 'metrics.jsonl'
    out_dir.mkdir(parents=True, exist_ok=True)
    forget_metrics_after(metrics_path, first_step)
    by_driver = Counter(CAMERA_SOURCES[i] for i in samples.source.tolist())
    print(
        f'training {config.name} on {len(samples)} states ({dict(by_driver)}, '
        f'{len(samples.texts)} instruction texts), steps {first_step}..{last_step} of {run.steps}',
        file=sys.stderr,
    )
    bar = tqdm(total=last_step - first_step, desc='student', unit='step', disable=not progress)
    log = StepLog(out_dir, run.log_every, run.checkpoint_every, last_step, metadata, bar)
    terms: dict[str, Tensor] = {}
    for step, indices in zip(range(first_step, last_step), batches, strict=True):
        rate = learning_rate(run.learning_rate, run.warmup_steps, run.steps, step)
        for group in optimizer.param_groups:
            group['lr'] = rate * group['scale']
        seed = run.seed * 1_000_003 + step
        terms, measures = student_losses(
            network,
            teacher,
            data.batch(indices, seed),
            lut_index,
            data.instructions,
            run,
            seed,
            rays,
        )
        optimizer.zero_grad(set_to_none=True)
        terms['total'].backward()
        gradient_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
        optimizer.step()
        log.after(step + 1, terms, len(indices), rate, gradient_norm, network, optimizer, measures)
    bar.close()
    weights = out_dir / STUDENT_WEIGHTS
    sha = ''
    if last_step == run.steps:
        sha = save_weights(network.eval(), weights)
        plot_metrics(metrics_path, out_dir / 'training.png')
    return StudentTrainResult(
        weights=weights,
        sha256=sha,
        steps=last_step,
        states=dict(by_driver),
        wall_s=time.perf_counter() - start_time,
        final_losses={name: value.item() for name, value in terms.items()},
    )


def add_student_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla student train`'s arguments."""
    add_run_file_arguments(parser, 'config/train_student_v2.yaml')


def run_student_train(args: argparse.Namespace) -> int:
    """Run `vla student train`; a bad run file or data set is one line on stderr, exit 1."""
    try:
        run = StudentTrainConfig.from_file(args.config)
        if args.steps is not None:
            run = replace(run, steps=args.steps)
        result = train_student(run, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, DatasetError, ArtifactError) as error:
        print(f'vla student train: {error}', file=sys.stderr)
        return 1
    if result.sha256:
        print(
            f'trained {result.steps} steps on {sum(result.states.values())} states in '
            f'{result.wall_s:.0f} s: {result.weights} (sha256 {result.sha256})'
        )
    return 0
