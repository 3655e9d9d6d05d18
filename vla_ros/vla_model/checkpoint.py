"""Training checkpoints as safetensors: weights, optimizer state and the step, never pickle.

A checkpoint restores a run exactly: the data order, learning rate and map-prior dropout of a
step are functions of the step and seed (`vla_model.training`), so weights, optimizer moments
and the step number are the whole state.
"""

import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

CHECKPOINT_PATTERN = 'step-*.safetensors'


def checkpoint_path(folder: Path, step: int) -> Path:
    """Return the file of the checkpoint taken after `step` steps."""
    return folder / f'step-{step:07d}.safetensors'


def latest_checkpoint(folder: Path) -> Path | None:
    """Return the checkpoint with the most steps in `folder`, or None."""
    found = sorted(folder.glob(CHECKPOINT_PATTERN))
    return found[-1] if found else None


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    metadata: dict[str, str],
) -> None:
    """Write model and optimizer state after `step` steps (atomically: temporary, then rename)."""
    tensors = {f'model.{name}': t.detach().cpu() for name, t in model.state_dict().items()}
    state = optimizer.state_dict()
    for index, values in state['state'].items():
        for key, value in values.items():
            tensors[f'optimizer.{index}.{key}'] = torch.as_tensor(value).detach().cpu()
    groups = [{k: v for k, v in group.items() if k != 'params'} for group in state['param_groups']]
    meta = {
        **metadata,
        'step': str(step),
        'param_groups': json.dumps(groups),
        'group_params': json.dumps([group['params'] for group in state['param_groups']]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix('.partial')
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(partial), metadata=meta)
    partial.rename(path)


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> tuple[int, dict[str, str]]:
    """Restore model (and optimizer) state from a checkpoint; return its step and metadata."""
    model_state, optimizer_state = {}, {}
    with safe_open(str(path), framework='pt') as handle:
        metadata = handle.metadata() or {}
        for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            kind, rest = name.split('.', 1)
            if kind == 'model':
                model_state[rest] = handle.get_tensor(name)
            else:
                index, key = rest.split('.', 1)
                optimizer_state.setdefault(int(index), {})[key] = handle.get_tensor(name)
    model.load_state_dict(model_state)
    if optimizer is not None:
        groups = json.loads(metadata['param_groups'])
        for group, params in zip(groups, json.loads(metadata['group_params']), strict=True):
            group['params'] = params
        optimizer.load_state_dict({'state': optimizer_state, 'param_groups': groups})
    return int(metadata['step']), metadata


def resume(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    metadata: dict[str, str],
    parse_config: Callable[[str], object],
    what: str,
) -> int:
    """Restore the run from its latest checkpoint in `folder`; return its step (0: none yet).

    Configurations are compared as `parse_config` reads them, not as text, so a field added
    since (with its default) does not orphan a run. A checkpoint of another configuration, or
    one this version cannot read, belongs to another network: it is refused before any state
    is loaded (ValueError naming it), never overwritten.
    """
    found_path = latest_checkpoint(folder)
    if found_path is None:
        return 0
    with safe_open(str(found_path), framework='pt') as handle:
        found_config = (handle.metadata() or {}).get('config', '')
    try:
        same = parse_config(found_config) == parse_config(metadata['config'])
    except (ValueError, TypeError):  # unreadable JSON, or keys this version does not know
        same = False
    if not same:
        raise ValueError(
            f'checkpoint {found_path} is of another {what} configuration: give this run another '
            'out_dir'
        )
    step, _ = load_checkpoint(found_path, model, optimizer)
    print(f'resuming from {found_path} (step {step})', file=sys.stderr)
    return step
