"""What every trainer of vla_model shares: process group, step schedule, logs and checkpoints.

The torchrun process group, each step's samples and learning rate as functions of the step
number, and what each step logs and checkpoints.

It imports no ROS package and no rosbag reader, so the privileged teacher's training runs where
only PyTorch is installed (a GPU machine; the `ros-free-teacher-training` contract of setup.cfg).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from vla_model.checkpoint import checkpoint_path, save_checkpoint


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int
    world: int
    local_rank: int

    @classmethod
    def from_environment(cls) -> Distributed:
        """Read RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them."""
        return cls(
            int(os.environ.get('RANK', 0)),
            int(os.environ.get('WORLD_SIZE', 1)),
            int(os.environ.get('LOCAL_RANK', 0)),
        )

    @property
    def main(self) -> bool:
        """Whether this process writes logs, checkpoints and the final weights."""
        return self.rank == 0


def learning_rate(peak: float, warmup_steps: int, steps: int, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak at the last step."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return peak * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


class StepBatches:
    """The sample indices of each step on one process: shuffled passes, every world-th sample."""

    def __init__(self, samples: int, batch: int, seed: int, dist: Distributed, steps: range):
        if samples < dist.world:
            raise ValueError(
                f'{samples} training clips cannot be shared by {dist.world} processes'
            )
        self.samples = samples
        self.batch = batch
        self.seed = seed
        self.dist = dist
        self.steps = steps
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.steps:
            yield self.indices(step)

    def indices(self, step: int) -> list[int]:
        """Return the batch of `step`: positions step*batch .. of this process's endless order."""
        per_pass = len(range(self.dist.rank, self.samples, self.dist.world))
        positions = range(step * self.batch, (step + 1) * self.batch)
        return [self._order(p // per_pass)[p % per_pass] for p in positions]

    def _order(self, epoch: int) -> list[int]:
        """Return this process's share of pass `epoch`'s shuffled order (one order for all)."""
        if epoch not in self._orders:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.samples, generator=generator)
            self._orders = {epoch: order[self.dist.rank :: self.dist.world].tolist()}
        return self._orders[epoch]


def setup_distributed(dist: Distributed) -> torch.device:
    """Pick this process's device and threads; join the process group under torchrun."""
    if torch.cuda.is_available():
        device = torch.device('cuda', dist.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device('cpu')
        local_world = int(os.environ.get('LOCAL_WORLD_SIZE', dist.world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if dist.world > 1:
        torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return device


def forget_metrics_after(path: Path, step: int) -> None:
    """Drop logged rows past the checkpoint a run resumes from: they will be logged again."""
    if path.is_file():
        rows = [line for line in path.read_text(encoding='utf-8').splitlines() if line]
        kept = [line for line in rows if json.loads(line)['step'] <= step]
        path.write_text(''.join(f'{line}\n' for line in kept), encoding='utf-8')


def write_metrics(path: Path, row: dict) -> None:
    """Append one row of logged metrics (JSON lines)."""
    with path.open('a', encoding='utf-8') as handle:
        handle.write(json.dumps(row) + '\n')


class StepLog:
    """What a training loop writes after each step, on the main process only.

    Window means of the losses to metrics.jsonl every `log_every` steps, a checkpoint every
    `checkpoint_every`, both at the last step.
    """

    def __init__(
        self,
        out_dir: Path,
        log_every: int,
        checkpoint_every: int,
        last_step: int,
        metadata: dict[str, str],
        bar,
        main: bool = True,
    ) -> None:
        self.metrics_path = out_dir / 'metrics.jsonl'
        self.checkpoints = out_dir / 'checkpoints'
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        self.last_step, self.metadata, self.bar, self.main = last_step, metadata, bar, main
        self._reset()

    def _reset(self) -> None:
        self._start, self._samples, self._steps = time.perf_counter(), 0, 0
        self._losses: Counter = Counter()

    def after(
        self,
        done: int,
        terms: dict[str, Tensor],
        samples: int,
        rate: float,
        gradient_norm: Tensor,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        measures: dict[str, Tensor] | None = None,
    ) -> None:
        """Account for the step that brought the run to `done` steps.

        `measures`: quality figures that are not losses (a batch's IoU), averaged like them and
        written under their own names.
        """
        self._samples += samples
        self._losses.update({f'loss_{name}': value.item() for name, value in terms.items()})
        self._losses.update({name: value.item() for name, value in (measures or {}).items()})
        self._steps += 1
        self.bar.update()
        if not self.main:
            return
        if done % self.log_every == 0 or done == self.last_step:
            elapsed = time.perf_counter() - self._start
            row = {
                'step': done,
                'learning_rate': rate,
                'gradient_norm': float(gradient_norm),
                'samples_per_s': self._samples / max(elapsed, 1e-9),
                **{name: total / self._steps for name, total in self._losses.items()},
            }
            write_metrics(self.metrics_path, row)
            self.bar.set_postfix(loss=f'{row["loss_total"]:.3f}')
            self._reset()
        if done % self.checkpoint_every == 0 or done == self.last_step:
            path = checkpoint_path(self.checkpoints, done)
            save_checkpoint(path, network, optimizer, done, self.metadata)


def plot_metrics(metrics_path: Path, out_path: Path) -> None:
    """Plot every loss term, the quality measures (if any) and the learning rate over steps."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot

    rows = [json.loads(line) for line in metrics_path.read_text(encoding='utf-8').splitlines()]
    if not rows:
        return
    steps = [row['step'] for row in rows]
    names = [name for name in rows[-1] if name.startswith('loss_')]
    measures = [name for name in rows[-1] if name.startswith('iou_')]
    panels = 3 if measures else 2
    figure, axes = pyplot.subplots(panels, 1, figsize=(8, 3.5 * panels), sharex=True)
    losses, rate = axes[0], axes[-1]
    for name in names:
        losses.plot(steps, [row.get(name, np.nan) for row in rows], label=name[5:])
    losses.set_yscale('log')
    losses.set_ylabel('loss')
    losses.legend(fontsize=8)
    losses.grid(alpha=0.3)
    if measures:
        for name in measures:
            axes[1].plot(steps, [row.get(name, np.nan) for row in rows], label=name)
        axes[1].set_ylabel('batch IoU')
        axes[1].legend(fontsize=8)
        axes[1].grid(alpha=0.3)
    rate.plot(steps, [row['learning_rate'] for row in rows])
    rate.set_xlabel('step')
    rate.set_ylabel('learning rate')
    rate.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out_path, dpi=100)
    pyplot.close(figure)
