"""`vla teacher train CONFIG`: fit the privileged teacher to recorded expert plans.

The data (vla_model.privileged_dataset) stays in memory, packed; a batch is unpacked per step.
A step is a pure function of (weights, optimizer state, step number, seed): the samples and the
learning rate of step s are computed from s (the student's `StepBatches` and schedule), so a run
resumed from its last checkpoint continues exactly. The losses are the student's plan losses
(winner-takes-all over the refined anchors, the winner's kinematics, the score cross-entropy)
and the rationale cross-entropy.
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

from vla_model.artifacts import ArtifactError, load_teacher, save_teacher
from vla_model.checkpoint import resume
from vla_model.losses import planning_loss, rationale_loss
from vla_model.privileged_dataset import (
    SOURCES,
    DatasetError,
    DatasetSettings,
    Samples,
    decode_rasters,
    instruction_table,
    load_samples,
)
from vla_model.run_files import (
    add_run_file_arguments,
    read_run_file,
    run_values,
    schedule_problems,
)
from vla_model.teacher_network import PrivilegedTeacher, TeacherConfig
from vla_model.training_loop import (
    Distributed,
    StepBatches,
    StepLog,
    forget_metrics_after,
    learning_rate,
    plot_metrics,
    setup_distributed,
)

TEACHER_WEIGHTS = 'teacher.safetensors'


@dataclass(frozen=True)
class TeacherLossWeights:
    """Weights of the teacher's loss terms."""

    trajectory: float = 1.0
    kinematics: float = 0.5
    score: float = 1.0
    rationale: float = 0.2


@dataclass(frozen=True)
class TeacherTrainConfig:
    """A teacher training run, as read from its YAML file (paths relative to that file)."""

    data: tuple[str, ...]  # data set folders (vla teacher record / dagger)
    out_dir: str
    init_weights: str = ''  # start from these teacher weights (a DAgger round)
    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    instruction_noise: float = 0.0  # up to this norm of Gaussian noise on each embedding
    # Read instructions through their intents' centroids (vla_model.instruction_grounding),
    # built from this run's training texts.
    ground_instructions: bool = False
    loss_weights: TeacherLossWeights = field(default_factory=TeacherLossWeights)

    def __post_init__(self) -> None:
        problems = [] if self.data else ['data must name at least one data set folder']
        if not 0.0 <= self.instruction_noise <= 2.0:
            problems.append(f'instruction_noise must be in [0, 2], got {self.instruction_noise}')
        problems += schedule_problems(
            self, ('steps', 'batch_size', 'checkpoint_every', 'log_every')
        )
        if problems:
            raise ValueError('; '.join(problems))

    @classmethod
    def from_file(cls, path: Path) -> TeacherTrainConfig:
        """Read a YAML run file; unknown keys and bad values are refused by name."""
        return read_run_file(path, cls.from_dict, 'teacher training configuration')

    @classmethod
    def from_dict(cls, data: dict, base: Path) -> TeacherTrainConfig:
        """Build from a parsed mapping; relative paths are taken from `base`."""
        paths = ('out_dir', 'init_weights')
        return cls(**run_values(cls, data, base, TeacherLossWeights, ('data',), paths))


@dataclass(frozen=True)
class TeacherTrainResult:
    """What a run produced."""

    weights: Path
    sha256: str
    steps: int
    samples: dict[str, int]  # per label source
    wall_s: float
    final_losses: dict[str, float]


def noisy_embeddings(instructions: Tensor, width: int, noise: float, seed: int) -> Tensor:
    """Move each row's first `width` values (a unit sentence embedding) by a random direction.

    The noise's norm is uniform in [0, `noise`], the result renormalised: wording the model never
    saw lands near, not on, the training paraphrases (cosine 0.6-0.95 for held-out ones), so the
    planner must not depend on the exact points. The slot features after `width` are kept.
    """
    generator = torch.Generator().manual_seed(seed)
    embedding = instructions[:, :width]
    direction = torch.randn(embedding.shape, generator=generator)
    direction = direction / direction.norm(dim=1, keepdim=True)
    norm = noise * torch.rand((len(embedding), 1), generator=generator)
    moved = embedding + norm * direction
    moved = moved / moved.norm(dim=1, keepdim=True)
    return torch.cat([moved, instructions[:, width:]], dim=1)


class TeacherBatches:
    """Unpacks the batches of the in-memory samples, with each text's instruction input."""

    def __init__(
        self,
        samples: Samples,
        instructions: np.ndarray,
        config: TeacherConfig,
        instruction_noise: float = 0.0,
    ):
        self.samples = samples
        self.instructions = torch.from_numpy(instructions)
        self.config = config
        self.instruction_noise = instruction_noise

    def batch(self, indices: list[int], seed: int = 0) -> dict[str, Tensor]:
        """Return the tensors of the samples at `indices` (`seed`: of the instruction noise)."""
        s, index = self.samples, np.asarray(indices)
        rasters = decode_rasters(s.masks[index], s.velocity[index], self.config.channels)
        instructions = self.instructions[torch.from_numpy(s.text_index[index]).long()]
        if self.instruction_noise > 0.0:
            width = self.config.plan.instruction_dim
            instructions = noisy_embeddings(instructions, width, self.instruction_noise, seed)
        return {
            'raster': torch.from_numpy(rasters),
            'ego_state': torch.from_numpy(s.ego_state[index]),
            'instruction': instructions,
            'trajectory': torch.from_numpy(s.trajectory[index]),
            'rationale': torch.from_numpy(s.rationale[index].astype(np.int64)),
        }


def teacher_losses(
    model: torch.nn.Module,
    batch: dict[str, Tensor],
    weights: TeacherLossWeights,
    step_s: float,
) -> dict[str, Tensor]:
    """Return the loss terms of one batch and their weighted total."""
    trajectories, scores, rationale = model(
        batch['raster'], batch['ego_state'], batch['instruction']
    )
    regression, kinematics, score = planning_loss(
        trajectories, scores, batch['trajectory'], step_s
    )
    terms = {
        'trajectory': regression,
        'kinematics': kinematics,
        'score': score,
        'rationale': rationale_loss(rationale, batch['rationale']),
    }
    terms['total'] = sum(getattr(weights, name) * value for name, value in terms.items())
    return terms


def _ungrounded(config: TeacherConfig) -> TeacherConfig:
    return replace(config, grounding_texts=0, grounding_intents=0)


def _initial_teacher(
    config: TeacherTrainConfig, teacher_config: TeacherConfig, samples: Samples, table: np.ndarray
) -> PrivilegedTeacher:
    """Build the teacher to train: from init weights if given, grounded in `samples`' texts.

    A grounded run takes any init teacher of the same shape, grounded or not: its grounding is
    built anew from this run's texts (a new round may bring other ones). An ungrounded run
    refuses a grounded init (its planner reads centroids, not embeddings), and every other
    difference of configuration.
    """
    network = PrivilegedTeacher(teacher_config)
    if config.init_weights:
        initial, _ = load_teacher(Path(config.init_weights))
        if _ungrounded(initial.config) != _ungrounded(teacher_config) or (
            initial.grounding is not None and network.grounding is None
        ):
            raise ArtifactError(
                f'{config.init_weights} is a teacher of another configuration; this run '
                'trains the default TeacherConfig'
            )
        state = {
            name: tensor
            for name, tensor in initial.state_dict().items()
            if not name.startswith('grounding.')
        }
        missing, unexpected = network.load_state_dict(state, strict=False)
        if unexpected or any(not name.startswith('grounding.') for name in missing):
            raise ArtifactError(f"{config.init_weights} does not hold this teacher's weights")
    if network.grounding is not None:
        width = teacher_config.plan.instruction_dim
        network.grounding.fit(table[:, :width], list(samples.intents))
    return network


def train_teacher(
    config: TeacherTrainConfig,
    progress: bool = True,
    stop_after: int | None = None,
    teacher_config: TeacherConfig | None = None,
) -> TeacherTrainResult:
    """Run (or resume) a teacher training run; return where the final weights are.

    `stop_after` ends the call after that many steps, leaving a checkpoint (an interrupted run,
    in tests); the final weights are written only at `config.steps`. A checkpoint of another
    teacher configuration is refused, never overwritten.
    """
    from tqdm import tqdm

    from vla_model.instruction_encoder import InstructionEncoder

    start_time = time.perf_counter()
    dist = Distributed(0, 1, 0)
    setup_distributed(dist)
    teacher_config = teacher_config or TeacherConfig()
    out_dir = Path(config.out_dir)
    samples = load_samples([Path(p) for p in config.data], DatasetSettings.of(teacher_config))
    encoder = InstructionEncoder(cache_size=len(samples.texts) + 1)
    instructions = instruction_table(samples.texts, encoder.encode, teacher_config.plan.speed_slot)
    data = TeacherBatches(samples, instructions, teacher_config, config.instruction_noise)
    if config.ground_instructions:
        teacher_config = replace(
            teacher_config,
            grounding_texts=len(samples.texts),
            grounding_intents=len(set(samples.intents)),
        )

    torch.manual_seed(config.seed)
    network = _initial_teacher(config, teacher_config, samples, instructions).train()
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    metadata = {'train_config': json.dumps(asdict(config)), 'config': teacher_config.to_json()}
    first_step = resume(
        out_dir / 'checkpoints', network, optimizer, metadata, TeacherConfig.from_json, 'teacher'
    )
    last_step = config.steps if stop_after is None else min(config.steps, first_step + stop_after)
    batches = StepBatches(
        len(samples), config.batch_size, config.seed, dist, range(first_step, last_step)
    )
    metrics_path = out_dir / 'metrics.jsonl'
    out_dir.mkdir(parents=True, exist_ok=True)
    forget_metrics_after(metrics_path, first_step)
    by_source = Counter(SOURCES[i] for i in samples.source.tolist())
    print(
        f'training {teacher_config.name} on {len(samples)} samples ({dict(by_source)}, '
        f'{len(samples.texts)} instruction texts), steps {first_step}..{last_step} of '
        f'{config.steps}',
        file=sys.stderr,
    )
    bar = tqdm(total=last_step - first_step, desc='teacher', unit='step', disable=not progress)
    log = StepLog(out_dir, config.log_every, config.checkpoint_every, last_step, metadata, bar)
    terms: dict[str, Tensor] = {}
    for step, indices in zip(range(first_step, last_step), batches, strict=True):
        rate = learning_rate(config.learning_rate, config.warmup_steps, config.steps, step)
        for group in optimizer.param_groups:
            group['lr'] = rate
        terms = teacher_losses(
            network,
            data.batch(indices, config.seed * 1_000_003 + step),
            config.loss_weights,
            teacher_config.plan.step_s,
        )
        optimizer.zero_grad(set_to_none=True)
        terms['total'].backward()
        gradient_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
        optimizer.step()
        log.after(step + 1, terms, len(indices), rate, gradient_norm, network, optimizer)
    bar.close()
    weights = out_dir / TEACHER_WEIGHTS
    sha = ''
    if last_step == config.steps:
        sha = save_teacher(network.eval(), weights)
        plot_metrics(metrics_path, out_dir / 'training.png')
    return TeacherTrainResult(
        weights=weights,
        sha256=sha,
        steps=last_step,
        samples=dict(by_source),
        wall_s=time.perf_counter() - start_time,
        final_losses={name: value.item() for name, value in terms.items()},
    )


def add_teacher_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla teacher train`'s arguments."""
    add_run_file_arguments(parser, 'config/train_teacher.yaml')


def run_teacher_train(args: argparse.Namespace) -> int:
    """Run `vla teacher train`; a bad run file or data set is one line on stderr, exit 1."""
    try:
        config = TeacherTrainConfig.from_file(args.config)
        if args.steps is not None:
            config = replace(config, steps=args.steps)
        result = train_teacher(config, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, DatasetError, ArtifactError) as error:
        print(f'vla teacher train: {error}', file=sys.stderr)
        return 1
    if result.sha256:
        print(
            f'trained {result.steps} steps on {sum(result.samples.values())} samples in '
            f'{result.wall_s:.0f} s: {result.weights} (sha256 {result.sha256})'
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m vla_model.teacher_training RUN`: `vla teacher train` where ROS is not installed.

    The `vla` command line builds every sub-command's parser, and some of them need ROS; this
    needs PyTorch alone, as on a GPU machine (docs/TRAINING.md, "Model v2, stage 1").
    """
    parser = argparse.ArgumentParser(
        prog='python -m vla_model.teacher_training',
        description='train the privileged teacher on recorded data (vla teacher train)',
    )
    add_teacher_train_arguments(parser)
    return run_teacher_train(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
