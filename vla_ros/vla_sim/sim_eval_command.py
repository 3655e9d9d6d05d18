"""`vla sim eval` drives seeded episodes in lockstep; `vla sim compare` compares drivers."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vla_perception.rig import default_rig_path
from vla_sim.driver_options import add_pipeline_arguments

if TYPE_CHECKING:
    from vla_perception.rig import RigConfig
    from vla_sim.evaluation import Driver


def add_sim_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla sim eval`'s arguments."""
    parser.add_argument(
        '--driver',
        choices=('expert', 'pipeline', 'teacher'),
        default='expert',
        help='the privileged expert, the pipeline cores (sync, model, monitor, controller), or '
        'the privileged BEV teacher (--weights) through the same monitor and controller',
    )
    add_pipeline_arguments(parser)
    parser.add_argument(
        '--scenarios',
        nargs='+',
        default=['nominal'],
        help='scenario names, "nominal" (default) or "all"',
    )
    parser.add_argument('--episodes', type=int, default=5, help='seeded episodes per scenario')
    parser.add_argument('--seed-start', type=int, default=0, help='first seed')
    parser.add_argument(
        '--split',
        choices=('train', 'validation', 'test'),
        default='test',
        help='instruction paraphrases to draw from (default: held-out test)',
    )
    parser.add_argument('--rig', type=Path, help='rig file (default: config/rig_surround.yaml)')
    parser.add_argument('--json', type=Path, help='write the per-scenario summary here')
    parser.add_argument('--report', type=Path, help='write metrics, plots and GIFs here')
    parser.add_argument('--films', type=int, default=1, help='GIFs per scenario in the report')
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='processes sharing the episodes, each with its own driver (same results; the step '
        "wall times then include the other workers' load)",
    )


def driver_factory(args: argparse.Namespace, rig: RigConfig) -> Callable[[], Driver]:
    """Return what builds the driver the options ask for, in whichever process drives."""
    from vla_sim.evaluation import ExpertDriver

    if args.driver == 'pipeline':
        from vla_sim.driver_options import pipeline_driver

        return functools.partial(pipeline_driver, args, rig)
    if args.driver == 'teacher':
        from vla_sim.teacher_driver import TeacherDriver

        return functools.partial(
            TeacherDriver, args.weights, args.sha256, enforce=args.monitor == 'enforce'
        )
    return ExpertDriver


def run_sim_eval(args: argparse.Namespace, prog: str = 'vla sim eval') -> int:
    """Drive the episodes, print the metrics table; write the report and JSON if asked."""
    from tqdm import tqdm

    from vla_model.artifacts import ArtifactError
    from vla_perception.rig import RigConfig
    from vla_ros.reports import write_json
    from vla_sim.bev_ground_truth import BevGrid
    from vla_sim.evaluation import evaluate, summary
    from vla_sim.instructions import Split
    from vla_sim.report import metrics_table, write_report
    from vla_sim.scenarios import NOMINAL, SCENARIOS, get_scenario

    names = NOMINAL if args.scenarios == ['nominal'] else args.scenarios
    names = list(SCENARIOS) if names == ['all'] else names
    try:
        for name in names:
            get_scenario(name)
    except KeyError as error:
        print(f'{prog}: {error.args[0]}', file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f'{prog}: --workers must be >= 1', file=sys.stderr)
        return 2
    if args.driver == 'teacher' and args.weights is None:
        print(f'{prog}: --driver teacher needs --weights (teacher.safetensors)', file=sys.stderr)
        return 1
    rig = RigConfig.from_file(args.rig or default_rig_path())
    episodes = evaluate(
        names,
        args.episodes,
        driver_factory(args, rig),
        rig,
        seed_start=args.seed_start,
        films_per_scenario=args.films if args.report else 0,
        split=Split(args.split),
        render=args.driver == 'pipeline',
        workers=args.workers,
    )
    try:
        results = list(tqdm(episodes, total=len(names) * args.episodes, unit='episode'))
    except (FileNotFoundError, ArtifactError) as error:
        print(f'{prog}: {error}', file=sys.stderr)
        return 1
    if args.report:
        from vla_model.config import ModelConfig

        written = write_report(results, args.report, BevGrid.from_model(ModelConfig()))
        print(f'report in {args.report} ({len(written["gifs"])} GIFs)')
    aggregate, by_intent = summary(results), summary(results, 'intent')
    print(metrics_table(aggregate), end='')
    print(metrics_table(by_intent, 'intent'), end='')
    if args.json:
        write_json(
            args.json,
            {
                'driver': args.driver,
                'split': args.split,
                'monitor': args.monitor,
                'weights': None if args.weights is None else str(args.weights),
                'summary': aggregate,
                'by_intent': by_intent,
                'episodes': [result.metrics.as_dict() for result in results],
            },
        )
    return 0


def add_sim_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla sim compare`'s arguments."""
    parser.add_argument(
        'evaluations',
        nargs='+',
        metavar='[LABEL=]FILE',
        help='`vla sim eval --json` files, one per driver, on the same seeds and split; the '
        "column is LABEL or the file's driver. The expert's (label 'expert') is the progress "
        'reference',
    )
    parser.add_argument('--markdown', type=Path, help='also write the tables here')
    parser.add_argument('--plot', type=Path, help='bar charts of success and off-road (PNG)')


def run_sim_compare(args: argparse.Namespace, prog: str = 'vla sim compare') -> int:
    """Print the drivers' figures side by side on their common episodes."""
    from vla_sim.eval_comparison import (
        ComparisonError,
        Evaluation,
        compare,
        comparison_markdown,
        plot_comparison,
    )

    try:
        evaluations = []
        for given in args.evaluations:
            label, _, path = given.rpartition('=')
            evaluations.append(Evaluation.from_file(Path(path), label or None))
        labels = [e.label for e in evaluations]
        if len(set(labels)) < len(labels):
            raise ComparisonError(
                f'two evaluations are both labelled {sorted(labels)}: name them LABEL=FILE'
            )
        keys, tables = compare(evaluations)
    except ComparisonError as error:
        print(f'{prog}: {error}', file=sys.stderr)
        return 1
    unmatched = sum(len(e.episodes) - len(keys) for e in evaluations)
    text = comparison_markdown(tables, labels)
    print(text, end='')
    print(f'{len(keys)} episodes matched by (scenario, seed); {unmatched} left out')
    if args.markdown:
        args.markdown.write_text(text, encoding='utf-8')
    if args.plot:
        plot_comparison(tables, labels, args.plot)
        print(f'plot in {args.plot}')
    return 0
