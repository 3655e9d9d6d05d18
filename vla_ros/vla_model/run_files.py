"""Training run files (YAML): read, check keys and values, resolve paths, refuse by name.

`vla train` and `vla teacher train` read their runs the same way, so a typo in either is
refused the same way: unknown keys and bad values name themselves and the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import yaml

Run = TypeVar('Run')


def read_run_file(path: Path, build: Callable[[dict, Path], Run], what: str) -> Run:
    """Read a YAML run file with `build(mapping, its folder)`; errors name `what` and the file."""
    if not path.is_file():
        raise FileNotFoundError(f'{what} {path} does not exist')
    data = yaml.safe_load(path.read_text(encoding='utf-8')) or {}
    try:
        return build(data, path.parent)
    except (TypeError, ValueError) as error:
        raise ValueError(f'{what} {path}: {error}') from None


def run_values(
    cls: type,
    data: dict,
    base: Path,
    loss_weights: type,
    path_lists: tuple[str, ...],
    paths: tuple[str, ...],
) -> dict:
    """Check a run mapping's keys against `cls`; resolve its paths against `base`.

    `path_lists` name keys holding a path or a list of them (made tuples), `paths` keys holding
    one path (empty stays empty); `loss_weights` is the dataclass of the `loss_weights` mapping.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f'unknown key(s) {", ".join(unknown)}; known: {", ".join(sorted(known))}')
    values = dict(data)
    weights = values.get('loss_weights', {})
    unknown = sorted(set(weights) - {f.name for f in fields(loss_weights)})
    if unknown:
        raise ValueError(f'unknown loss weight(s) {", ".join(unknown)}')
    values['loss_weights'] = loss_weights(**weights)
    for name in path_lists:
        items = values.get(name, ())
        items = [items] if isinstance(items, str) else items
        values[name] = tuple(str(base / item) for item in items)
    for name in paths:
        if values.get(name):
            values[name] = str(base / values[name])
    return values


def schedule_problems(run: object, at_least_one: tuple[str, ...]) -> list[str]:
    """Return what is wrong with a run's counts, warm-up, learning rate and weight decay."""
    problems = [
        f'{name} must be >= 1, got {getattr(run, name)}'
        for name in at_least_one
        if getattr(run, name) < 1
    ]
    if run.warmup_steps < 0:
        problems.append('warmup_steps must be >= 0')
    if not run.learning_rate > 0 or not run.weight_decay >= 0:
        problems.append('learning_rate must be > 0 and weight_decay >= 0')
    return problems


def add_run_file_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """Add a training command's arguments: the run file, --steps and --no-progress."""
    parser.add_argument('config', type=Path, help=f'training run file (YAML), see {example}')
    parser.add_argument('--steps', type=int, help="override the run file's steps")
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
