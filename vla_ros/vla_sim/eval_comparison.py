"""Drivers side by side on the same episodes: the tables of the model card (`vla sim compare`).

Each `vla sim eval --json` file holds one driver's episodes. Comparing them is only fair on the
same (scenario, seed) pairs and the same instruction wording, so episodes are matched by
scenario and seed and a file from another split is refused. Route progress is given as a share
of the expert's on the matched episodes (the sum of the driver's over the sum of the expert's,
so a short episode does not weigh as much as a long one), and every rate carries its 95 %
Wilson interval: with 20 episodes a scenario, 75 % is [53, 89] %, which is what a change must
clear before it is called one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vla_ros.reports import markdown_table

WILSON_Z = 1.96
"""The normal quantile of a two-sided 95 % interval."""
RATES = ('collision', 'off_road', 'instruction_success')


class ComparisonError(ValueError):
    """Evaluation files that cannot be compared; the message names the file and why."""


@dataclass(frozen=True)
class Evaluation:
    """One `vla sim eval --json` file: its driver's label and its episodes by (scenario, seed)."""

    label: str
    split: str | None  # None: written before the split was recorded
    episodes: dict[tuple[str, int], dict]

    @classmethod
    def from_file(cls, path: Path, label: str | None = None) -> Evaluation:
        """Read an evaluation; a file that is not one is refused by name."""
        try:
            data = json.loads(Path(path).read_text(encoding='utf-8'))
            episodes = {(e['scenario'], int(e['seed'])): e for e in data['episodes']}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ComparisonError(f'{path}: not a `vla sim eval --json` file ({error})') from None
        return cls(label or data.get('driver', Path(path).stem), data.get('split'), episodes)


@dataclass(frozen=True)
class GroupFigures:
    """A driver's figures over one group of matched episodes."""

    episodes: int
    rates: dict[str, tuple[float, float, float]]  # name: (rate, low, high), 95 % Wilson
    progress_vs_expert: float | None  # None when the expert drove none of them


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial rate (Wilson 1927), as fractions."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1.0 + z**2 / trials
    centre = (rate + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / denominator
    return max(centre - half, 0.0), min(centre + half, 1.0)


def group_figures(
    episodes: list[dict], expert: dict[tuple[str, int], dict] | None
) -> GroupFigures:
    """Return the rates (with intervals) and the progress share of one group of episodes."""
    rates = {}
    for name in RATES:
        count = sum(bool(e[name]) for e in episodes)
        rates[name] = (count / max(len(episodes), 1), *wilson_interval(count, len(episodes)))
    share = None
    if expert is not None:
        reference = [expert.get((e['scenario'], int(e['seed']))) for e in episodes]
        expert_m = sum(r['progress_m'] for r in reference if r is not None)
        own_m = sum(e['progress_m'] for e, r in zip(episodes, reference, strict=True) if r)
        share = own_m / expert_m if expert_m > 0.0 else None
    return GroupFigures(len(episodes), rates, share)


def _matched(evaluations: list[Evaluation]) -> list[tuple[str, int]]:
    """Return the (scenario, seed) pairs every evaluation drove; refuse mixed splits."""
    splits = {e.split for e in evaluations if e.split is not None}
    if len(splits) > 1:
        named = ', '.join(f'{e.label}: {e.split}' for e in evaluations)
        raise ComparisonError(f'evaluations of different instruction splits ({named})')
    keys = set.intersection(*(set(e.episodes) for e in evaluations))
    if not keys:
        raise ComparisonError('the evaluations share no (scenario, seed) episode')
    return sorted(keys)


def compare(
    evaluations: list[Evaluation], expert_label: str = 'expert'
) -> tuple[list[tuple[str, int]], dict[str, dict[str, dict[str, GroupFigures]]]]:
    """Return the matched episodes and the figures on them of each driver.

    The figures are keyed by grouping ('scenario', 'intent'), group (the scenarios end with
    'all'), driver label.
    """
    keys = _matched(evaluations)
    expert = next((e.episodes for e in evaluations if e.label == expert_label), None)
    tables: dict[str, dict[str, dict[str, GroupFigures]]] = {}
    for grouping in ('scenario', 'intent'):
        names = sorted({e.episodes[k][grouping] for e in evaluations for k in keys})
        if grouping == 'scenario':
            names.append('all')
        tables[grouping] = {
            name: {
                evaluation.label: group_figures(
                    [
                        evaluation.episodes[k]
                        for k in keys
                        if name == 'all' or evaluation.episodes[k][grouping] == name
                    ],
                    expert,
                )
                for evaluation in evaluations
            }
            for name in names
        }
    return keys, tables


def _cell(figures: GroupFigures) -> str:
    rates = figures.rates
    success, low, high = rates['instruction_success']
    progress = '-' if figures.progress_vs_expert is None else f'{figures.progress_vs_expert:.0%}'
    return (
        f'{rates["collision"][0]:.0%} / {rates["off_road"][0]:.0%} / '
        f'{success:.0%} [{low:.0%}, {high:.0%}] / {progress}'
    )


def comparison_markdown(
    tables: dict[str, dict[str, dict[str, GroupFigures]]], labels: Iterable[str]
) -> str:
    """Return one Markdown table per grouping: a row per group, a column per driver."""
    labels = list(labels)
    parts = [
        'Cells: collision / off-road / instruction success [95 % Wilson interval] / route '
        "progress as a share of the expert's on the same episodes.\n"
    ]
    for grouping, groups in tables.items():
        rows = [
            # the same matched episodes for every driver
            [name, by_driver[labels[0]].episodes, *(_cell(by_driver[label]) for label in labels)]
            for name, by_driver in groups.items()
        ]
        parts.append(markdown_table([grouping, 'episodes', *labels], rows) + '\n')
    return '\n'.join(parts)


def plot_comparison(
    tables: dict[str, dict[str, dict[str, GroupFigures]]], labels: list[str], path: Path
) -> None:
    """Bar charts of instruction success (with intervals) and off-road per scenario and driver."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    groups = tables['scenario']
    names = list(groups)
    x = np.arange(len(names))
    width = 0.8 / len(labels)
    figure, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.1 * len(names)), 6.5), sharex=True)
    for index, label in enumerate(labels):
        offset = x - 0.4 + width * (index + 0.5)
        success = [groups[n][label].rates['instruction_success'] for n in names]
        values = np.array([s[0] for s in success])
        errors = np.array([[s[0] - s[1] for s in success], [s[2] - s[0] for s in success]])
        axes[0].bar(offset, values, width, yerr=errors, capsize=2, label=label)
        axes[1].bar(offset, [groups[n][label].rates['off_road'][0] for n in names], width)
    axes[0].set_ylabel('instruction success')
    axes[1].set_ylabel('off-road')
    for axis in axes:
        axis.set_ylim(0.0, 1.05)
        axis.grid(axis='y', alpha=0.3)
    axes[1].set_xticks(x, names, rotation=30, ha='right')
    axes[0].legend(ncol=len(labels), fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
