"""`vla train CONFIG`: train the driving network on bags, on one process or many (torchrun).

Distributed with PyTorch's own engine: under `torchrun --nproc_per_node=N` each process takes
every N-th sample of the shuffled order and DistributedDataParallel averages the gradients
(NCCL on GPUs, gloo on CPUs). Every process runs exactly `steps` steps, whatever its share of a
pass, so no process waits at a pass boundary for another.

A step is a pure function of (weights, optimizer state, step number, seed): the samples, the
learning rate and the map-prior dropout of step s are computed from s. So a run resumed from a
checkpoint continues exactly as if it had never stopped (a test checks bit equality).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from vla_model.artifacts import load_weights, save_weights
from vla_model.bag_cache import DatasetSettings
from vla_model.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
)
from vla_model.config import ModelConfig, student, teacher
from vla_model.driving_dataset import DrivingDataset
from vla_model.losses import (
    LossWeights,
    bev_loss,
    planning_loss,
    rationale_loss,
)
from vla_model.network import OUTPUT_NAMES, VlaNet
from vla_model.run_files import (
    add_run_file_arguments,
    read_run_file,
    run_values,
    schedule_problems,
)
from vla_model.training_loop import (
    Distributed,
    StepBatches,
    StepLog,
    forget_metrics_after,
    learning_rate,
    plot_metrics,
    setup_distributed,
)

MODEL_SIZES = {'student': student, 'teacher': teacher}


@dataclass(frozen=True)
class TrainConfig:
    """A training run, as read from its YAML file (paths relative to that file)."""

    bags: tuple[str, ...]  # bag folders or glob patterns
    out_dir: str
    model: str = 'student'  # student | teacher
    cache_dir: str = ''  # empty: <out_dir>/cache
    rig_file: str = ''  # empty: the packaged config/rig_surround.yaml
    init_weights: str = ''  # start from these weights (fine-tuning, DAgger rounds)
    clip_length: int = 2
    batch_size: int = 4
    steps: int = 1000
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    map_prior_dropout: float = 0.5
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    num_workers: int = 0
    loss_weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        problems = []
        if self.model not in MODEL_SIZES:
            problems.append(f'model must be one of {", ".join(MODEL_SIZES)}, got {self.model!r}')
        if not self.bags:
            problems.append('bags must name at least one bag or pattern')
        problems += schedule_problems(
            self, ('clip_length', 'batch_size', 'steps', 'checkpoint_every', 'log_every')
        )
        if self.num_workers < 0:
            problems.append('num_workers must be >= 0')
        if not 0.0 <= self.map_prior_dropout <= 1.0:
            problems.append(f'map_prior_dropout must be in [0, 1], got {self.map_prior_dropout}')
        if problems:
            raise ValueError('; '.join(problems))

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        """Read a YAML run file; unknown keys and bad values are refused by name."""
        return read_run_file(path, cls.from_dict, 'training configuration')

    @classmethod
    def from_dict(cls, data: dict, base: Path) -> TrainConfig:
        """Build from a parsed mapping; relative paths are taken from `base`."""
        paths = ('out_dir', 'cache_dir', 'rig_file', 'init_weights')
        return cls(**run_values(cls, data, base, LossWeights, ('bags',), paths))

    def bag_paths(self) -> list[Path]:
        """Expand the bag patterns; a pattern that matches nothing is an error."""
        paths = []
        for pattern in self.bags:
            matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not matches or not all(Path(m).exists() for m in matches):
                raise FileNotFoundError(f'no bag at {pattern}')
            paths += [Path(m) for m in matches if not m.endswith('.partial')]
        return paths


@dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    weights: Path
    sha256: str
    steps: int
    samples: int
    clips: int
    frames: int
    wall_s: float
    final_losses: dict[str, float]


def forward_clip(
    model: nn.Module, batch: dict[str, Tensor], lut_index: Tensor
) -> list[dict[str, Tensor]]:
    """Run the clip's frames in order, each from the BEV of the one before (the first: zeros)."""
    images = batch['images']
    config: ModelConfig = _unwrap(model).config
    previous = torch.zeros(
        (images.shape[0], config.bev_channels, *config.bev_size), device=images.device
    )
    outputs = []
    for t in range(images.shape[1]):
        result = dict(
            zip(
                OUTPUT_NAMES,
                model(
                    images[:, t],
                    lut_index,
                    batch['lut_weight'][:, t, None],
                    previous,
                    batch['ego_motion'][:, t],
                    batch['ego_state'][:, t],
                    batch['instruction'][:, t],
                    batch['map_prior'][:, t],
                    batch['map_prior_present'][:, t],
                ),
                strict=True,
            )
        )
        outputs.append(result)
        previous = result['bev_features']
    return outputs


def clip_losses(
    outputs: list[dict[str, Tensor]],
    batch: dict[str, Tensor],
    weights: LossWeights,
    step_s: float,
) -> dict[str, Tensor]:
    """Return every loss term averaged over the clip's frames, and their weighted total.

    `step_s` is the model's plan step (the trajectories' point spacing in time).
    """
    terms: dict[str, Tensor] = {}

    def add(name: str, value: Tensor) -> None:
        terms[name] = terms.get(name, 0.0) + value / len(outputs)

    for t, output in enumerate(outputs):
        regression, kinematics, score = planning_loss(
            output['trajectories'], output['scores'], batch['trajectory'][:, t], step_s
        )
        add('trajectory', regression)
        add('kinematics', kinematics)
        add('score', score)
        add('bev', bev_loss(output['bev_semantics'], batch['bev'][:, t], batch['bev_valid'][:, t]))
        add('rationale', rationale_loss(output['rationale'], batch['rationale'][:, t]))
    terms['total'] = sum(getattr(weights, name) * value for name, value in terms.items())
    return terms


def drop_map_prior(batch: dict[str, Tensor], rate: float, seed: int, step: int, rank: int):
    """Hide the map prior from a `rate` share of the samples, so one model serves both cases."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + step) * 1024 + rank)
    keep = torch.rand(batch['map_prior_present'].shape[0], generator=generator) >= rate
    batch['map_prior_present'] = batch['map_prior_present'] * keep[:, None, None].float()


def _unwrap(model: nn.Module) -> VlaNet:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _dataset(config: TrainConfig, model_config: ModelConfig, dist: Distributed, progress: bool):
    """Build the dataset; the main process reads uncached bags first, the others then load."""
    from vla_model.instruction_encoder import InstructionEncoder
    from vla_perception.rig import RigConfig
    from vla_ros.install_paths import vla_ros_file

    rig = RigConfig.from_file(config.rig_file or vla_ros_file('config/rig_surround.yaml'))
    settings = DatasetSettings.defaults(model_config, rig)
    cache = Path(config.cache_dir or Path(config.out_dir) / 'cache')
    encoder = InstructionEncoder()

    def build(show: bool) -> DrivingDataset:
        return DrivingDataset(
            config.bag_paths(), cache, settings, encoder.encode, config.clip_length, progress=show
        )

    if dist.world == 1:
        return build(progress)
    dataset = build(progress) if dist.main else None
    torch.distributed.barrier()
    return dataset if dataset is not None else build(False)


def train(
    config: TrainConfig, progress: bool = True, stop_after: int | None = None
) -> TrainResult:
    """Run (or resume) a training run; return where the final weights are.

    `stop_after` ends the run after that many steps of this call and leaves a checkpoint
    (an interrupted run, in tests); the final weights are written only at `config.steps`.
    """
    from tqdm import tqdm

    start_time = time.perf_counter()
    dist = Distributed.from_environment()
    device = setup_distributed(dist)
    out_dir = Path(config.out_dir)
    checkpoints = out_dir / 'checkpoints'
    model_config = MODEL_SIZES[config.model]()
    dataset = _dataset(config, model_config, dist, progress and dist.main)

    torch.manual_seed(config.seed)
    network = VlaNet(model_config)
    if config.init_weights:
        network.load_state_dict(load_weights(Path(config.init_weights)).state_dict())
    network.to(device).train()
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    first_step = 0
    resume_from = latest_checkpoint(checkpoints)
    if resume_from is not None:
        first_step, _ = load_checkpoint(resume_from, network, optimizer)
        if dist.main:
            print(f'resuming from {resume_from} (step {first_step})', file=sys.stderr)
    model: nn.Module = (
        DistributedDataParallel(
            network, device_ids=[device.index] if device.type == 'cuda' else None
        )
        if dist.world > 1
        else network
    )
    last_step = config.steps if stop_after is None else min(config.steps, first_step + stop_after)
    batches = StepBatches(
        len(dataset), config.batch_size, config.seed, dist, range(first_step, last_step)
    )
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers)
    lut_index = torch.from_numpy(dataset.lut.index).to(device)
    metrics_path = out_dir / 'metrics.jsonl'
    metadata = {'train_config': json.dumps(asdict(config)), 'config': model_config.to_json()}
    if dist.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        forget_metrics_after(metrics_path, first_step)
        print(
            f'training {model_config.name} on {len(dataset)} clips ({dataset.frames} frames, '
            f'{len(dataset.bags)} bags), {dist.world} process(es) on {device.type}, '
            f'steps {first_step}..{last_step} of {config.steps}',
            file=sys.stderr,
        )
    bar = tqdm(
        total=last_step - first_step,
        desc='training',
        unit='step',
        disable=not (progress and dist.main),
    )
    log = StepLog(
        out_dir,
        config.log_every,
        config.checkpoint_every,
        last_step,
        metadata,
        bar,
        dist.main,
    )
    terms: dict[str, Tensor] = {}
    step = first_step
    for step, batch in enumerate(loader, start=first_step):
        batch = {name: value.to(device) for name, value in batch.items()}
        drop_map_prior(batch, config.map_prior_dropout, config.seed, step, dist.rank)
        rate = learning_rate(config.learning_rate, config.warmup_steps, config.steps, step)
        for group in optimizer.param_groups:
            group['lr'] = rate
        outputs = forward_clip(model, batch, lut_index)
        terms = clip_losses(outputs, batch, config.loss_weights, model_config.step_s)
        optimizer.zero_grad(set_to_none=True)
        terms['total'].backward()
        gradient_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        samples = len(batch['images']) * dist.world
        log.after(step + 1, terms, samples, rate, gradient_norm, network, optimizer)
    bar.close()
    weights = out_dir / f'{model_config.name}.safetensors'
    sha = ''
    if dist.main and last_step == config.steps:
        network.eval()
        sha = save_weights(network.cpu(), weights)
        plot_metrics(metrics_path, out_dir / 'training.png')
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return TrainResult(
        weights=weights,
        sha256=sha,
        steps=last_step,
        samples=(last_step - first_step) * config.batch_size * dist.world,
        clips=len(dataset),
        frames=dataset.frames,
        wall_s=time.perf_counter() - start_time,
        final_losses={name: value.item() for name, value in terms.items()},
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla train`'s arguments."""
    add_run_file_arguments(parser, 'config/train_student.yaml')


def run_train(args: argparse.Namespace) -> int:
    """Run `vla train`; a bad run file or bag is one line on stderr and exit code 1."""
    from vla_model.bag_cache import BagReadError

    try:
        config = TrainConfig.from_file(args.config)
        if args.steps is not None:
            config = replace(config, steps=args.steps)
        result = train(config, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, BagReadError) as error:
        print(f'vla train: {error}', file=sys.stderr)
        return 1
    if result.sha256:
        print(
            f'trained {result.steps} steps on {result.clips} clips ({result.frames} frames) in '
            f'{result.wall_s:.0f} s: {result.weights} (sha256 {result.sha256})'
        )
    return 0
