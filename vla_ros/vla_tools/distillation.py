"""`vla distill CONFIG`: train the larger teacher, distil the student from it, compare the two.

The run file is the student's (`vla train`'s format). The teacher is trained first on the same
bags with the `teacher()` sizes into `<out_dir>/teacher`; the student then trains into
`<out_dir>/student` on the labels and on the teacher's candidates, scores and neural map
(`losses.distillation_loss`). Both are scored open-loop on the validation bags (`vla eval-bags`
definitions) and timed on both CPU backends (`vla bench model`), into `<out_dir>/distill.json`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from vla_model.training import TrainConfig, TrainResult, train
from vla_model.training_loop import Distributed
from vla_ros.reports import markdown_table


def _summary(result: TrainResult) -> dict:
    return {
        'weights': str(result.weights),
        'sha256': result.sha256,
        'steps': result.steps,
        'train_wall_s': round(result.wall_s, 1),
        'final_losses': result.final_losses,
    }


def distill(
    config: TrainConfig,
    teacher_steps: int | None = None,
    validation_bags: list[Path] | None = None,
    latency_repeats: int = 20,
    progress: bool = True,
) -> dict | None:
    """Train the teacher, then the student from it; return the comparison (main process only)."""
    from vla_model.config import student, teacher
    from vla_perception.rig import RigConfig
    from vla_ros.install_paths import vla_ros_file
    from vla_tools.model_benchmark import measure
    from vla_tools.open_loop_eval import evaluate_bags

    out_dir = Path(config.out_dir)
    cache_dir = config.cache_dir or str(out_dir / 'cache')
    teacher_run = replace(
        config,
        model='teacher',
        out_dir=str(out_dir / 'teacher'),
        cache_dir=cache_dir,
        teacher_weights='',
        steps=teacher_steps or config.steps,
    )
    teacher_result = train(teacher_run, progress)
    student_run = replace(
        config,
        model='student',
        out_dir=str(out_dir / 'student'),
        cache_dir=cache_dir,
        teacher_weights=str(teacher_result.weights),
    )
    student_result = train(student_run, progress)
    if not Distributed.from_environment().main:
        return None
    report = {'teacher': _summary(teacher_result), 'student': _summary(student_result)}
    rig = RigConfig.from_file(config.rig_file or vla_ros_file('config/rig_surround.yaml'))
    with tempfile.TemporaryDirectory() as workdir:
        for name, sizes in (('teacher', teacher()), ('student', student())):
            report[name]['latency'] = measure(sizes, latency_repeats, Path(workdir))
            if validation_bags:
                weights = Path(report[name]['weights'])
                result = evaluate_bags(validation_bags, weights, Path(cache_dir), rig, progress)
                report[name]['open_loop'] = result['map_free']['all']
    return report


def distill_table(report: dict) -> str:
    """Return a Markdown table comparing teacher and student."""
    header = ('model', 'parameters', 'GFLOPs', 'ORT p50', 'torch p50', 'L2 1s', 'L2 2s', 'L2 3s')
    rows = []
    for name in ('teacher', 'student'):
        latency, open_loop = report[name]['latency'], report[name].get('open_loop')
        l2 = (
            [f'{open_loop[f"l2_{h}s_m"]:.2f} m' for h in (1, 2, 3)]
            if open_loop and open_loop.get('frames')
            else ['–'] * 3
        )
        rows.append(
            (
                name,
                f'{latency["parameters"]:,}',
                latency['gflops'],
                f'{latency["onnxruntime"]["p50_ms"]} ms',
                f'{latency["pytorch"]["p50_ms"]} ms',
                *l2,
            )
        )
    return markdown_table(header, rows)


def add_distill_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla distill`'s arguments."""
    parser.add_argument('config', type=Path, help="the student's training run file (YAML)")
    parser.add_argument(
        '--teacher-steps', type=int, help="the teacher's steps (default: the run file's)"
    )
    parser.add_argument(
        '--validation-bags', type=Path, nargs='+', help='bags to score both models on'
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def run_distill(args: argparse.Namespace) -> int:
    """Run `vla distill`; bad input is one line on stderr and exit code 1."""
    from vla_model.artifacts import ArtifactError
    from vla_model.bag_cache import BagReadError
    from vla_ros.reports import write_json

    try:
        config = TrainConfig.from_file(args.config)
        report = distill(
            config, args.teacher_steps, args.validation_bags, progress=not args.no_progress
        )
    except (FileNotFoundError, ValueError, BagReadError, ArtifactError) as error:
        print(f'vla distill: {error}', file=sys.stderr)
        return 1
    if report is not None:
        print(distill_table(report))
        write_json(Path(config.out_dir) / 'distill.json', report)
    return 0
