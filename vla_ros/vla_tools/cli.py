"""The `vla` command-line tool: one entry point, one sub-command per job."""

import argparse
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vla_tools.doctor import run_checks


def _doctor(_args: argparse.Namespace) -> int:
    results = run_checks()
    width = max(len(result.name) for result in results)
    for result in results:
        mark = 'ok  ' if result.ok else 'FAIL'
        print(f'{mark} {result.name:<{width}}  {result.detail}')
    failed = [result.name for result in results if not result.ok]
    if failed:
        print(
            f'{len(failed)} check(s) failed: {", ".join(failed)}. Run `make setup`, or on a '
            'full ROS 2 install build the workspace and source install/setup.bash.'
        )
        return 1
    print('environment ready')
    return 0


def _bench_sync(args: argparse.Namespace) -> int:
    from vla_tools.sync_benchmark import run

    run(args.duration, args.json)
    return 0


def _bench_model(args: argparse.Namespace) -> int:
    from vla_tools.model_benchmark import run

    run(args.repeats, args.json, args.teacher)
    return 0


def _bench_safety(args: argparse.Namespace) -> int:
    from vla_tools.safety_benchmark import run

    run(args.cycles, args.json)
    return 0


def _bench_pipeline(args: argparse.Namespace) -> int:
    from vla_tools.pipeline_benchmark import run

    try:
        run(args.duration, args.json, args.case or None)
    except (RuntimeError, ValueError) as error:
        print(f'vla bench pipeline: {error}', file=sys.stderr)
        return 1
    return 0


def _faults(args: argparse.Namespace) -> int:
    from vla_tools.fault_campaign import run

    try:
        results = run(args.only, args.json)
    except (RuntimeError, ValueError) as error:
        print(f'vla faults: {error}', file=sys.stderr)
        return 1
    return 0 if all(result.passed for result in results) else 1


def _export(args: argparse.Namespace) -> int:
    from vla_model.artifacts import ArtifactError, load_weights, sha256_file
    from vla_model.export import export_onnx

    try:
        model = load_weights(args.weights, args.sha256)
    except ArtifactError as error:
        print(f'vla export: {error}', file=sys.stderr)
        return 1
    onnx_path = export_onnx(model, args.onnx)
    print(
        f'exported {model.config.name} to {onnx_path}\n'
        'vla_inference_node parameters:\n'
        f'  weights_path: {args.weights.resolve()}\n'
        f'  weights_sha256: {sha256_file(args.weights)}\n'
        f'  onnx_path: {onnx_path.resolve()}\n'
        f'  onnx_sha256: {sha256_file(onnx_path)}'
    )
    return 0


def _bench_render(args: argparse.Namespace) -> int:
    from vla_perception.rig import default_rig_path
    from vla_ros.reports import write_json
    from vla_tools.render_benchmark import run_render_benchmark

    result = run_render_benchmark(args.rig or default_rig_path(), steps=args.steps)
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)
    return 0


def _module_command(
    commands: argparse._SubParsersAction,
    name: str,
    help_text: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
) -> None:
    """Add a sub-command whose arguments and handler live in its own module."""
    command = commands.add_parser(name, help=help_text)
    add_arguments(command)
    command.set_defaults(handler=handler)


ModuleCommand = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]
"""A sub-command whose arguments and handler live in its own module: name, help, adder, handler."""


def _command_group(
    commands: argparse._SubParsersAction,
    name: str,
    help_text: str,
    members: tuple[ModuleCommand, ...],
) -> None:
    """Add `vla NAME SUBCOMMAND`: a command whose sub-commands each live in their own module."""
    group = commands.add_parser(name, help=help_text)
    sub = group.add_subparsers(
        dest=f'{name}_command', metavar=f'{name.upper()}_COMMAND', required=True
    )
    for member in members:
        _module_command(sub, *member)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `vla` with every sub-command."""
    from vla_model.neural_map_eval import add_map_iou_arguments, run_map_iou
    from vla_model.student_training import add_student_train_arguments, run_student_train
    from vla_model.teacher_training import add_teacher_train_arguments, run_teacher_train
    from vla_model.training import add_train_arguments, run_train
    from vla_sim.camera_data import add_student_record_arguments, run_student_record
    from vla_sim.recorder import add_record_arguments, run_record
    from vla_sim.sim_eval_command import (
        add_sim_compare_arguments,
        add_sim_eval_arguments,
        run_sim_compare,
        run_sim_eval,
    )
    from vla_sim.teacher_data import add_teacher_record_arguments, run_teacher_record
    from vla_tools.bringup_runner import add_run_arguments, run_bringup
    from vla_tools.demo import add_demo_arguments, run_demo
    from vla_tools.distillation import add_distill_arguments, run_distill
    from vla_tools.open_loop_eval import add_eval_bags_arguments, run_eval_bags
    from vla_tools.replay_command import add_replay_arguments, run_replay
    from vla_tools.replay_regression import add_replay_test_arguments, run_replay_test
    from vla_tools.soak import add_soak_arguments, run_soak

    parser = argparse.ArgumentParser(
        prog='vla', description='vla_ros: run, replay, evaluate and train the VLA driving stack.'
    )
    parser.add_argument(
        '--version', action='version', version=f'%(prog)s {importlib.metadata.version("vla_ros")}'
    )
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    doctor = commands.add_parser(
        'doctor', help='check that this environment can run vla_ros and say what to fix'
    )
    doctor.set_defaults(handler=_doctor)
    for name, help_text, add_arguments, handler in (
        (
            'run',
            'start a bring-up (pipeline, sim) without ros2 launch; Ctrl-C stops it',
            add_run_arguments,
            run_bringup,
        ),
        (
            'replay',
            'run the pipeline on a bag: deterministic offline, or --live over DDS',
            add_replay_arguments,
            run_replay,
        ),
        (
            'replay-test',
            'the replay regression net: replay the committed bags, diff with the references',
            add_replay_test_arguments,
            run_replay_test,
        ),
        (
            'demo',
            'the main job: the shipped model drives the simulator; writes a report',
            add_demo_arguments,
            run_demo,
        ),
    ):
        _module_command(commands, name, help_text, add_arguments, handler)
    export = commands.add_parser(
        'export', help='export safetensors weights to ONNX and print the hashes to pin'
    )
    export.add_argument('weights', type=Path, help='the safetensors weights')
    export.add_argument('--onnx', type=Path, required=True, help='where to write the ONNX file')
    export.add_argument('--sha256', help='refuse the weights unless they have this SHA-256')
    export.set_defaults(handler=_export)
    faults = commands.add_parser(
        'faults', help='inject faults into the running pipeline; measure the safe responses'
    )
    faults.add_argument(
        '--only',
        action='append',
        metavar='FAULT',
        help='run only this fault (repeatable), e.g. "odometry lost"; default: every fault',
    )
    faults.add_argument('--json', type=Path, help='also write the results to this JSON file')
    faults.set_defaults(handler=_faults)
    bench = commands.add_parser('bench', help='measure latency and cost; print numbers')
    benchmarks = bench.add_subparsers(dest='benchmark', metavar='BENCHMARK', required=True)
    sync = benchmarks.add_parser(
        'sync', help='sensor_sync_node on six 1280x720 cameras at 10 Hz (raw and JPEG)'
    )
    sync.add_argument(
        '--duration', type=float, default=10.0, help='seconds measured per transport (default 10)'
    )
    sync.add_argument('--json', type=Path, help='also write the results to this JSON file')
    sync.set_defaults(handler=_bench_sync)
    model = benchmarks.add_parser(
        'model', help='the driving network per backend: latency, parameters, GFLOPs'
    )
    model.add_argument('--repeats', type=int, default=50, help='timed runs per backend')
    model.add_argument('--teacher', action='store_true', help="also measure v1's teacher")
    model.add_argument('--json', type=Path, help='also write the results to this JSON file')
    model.set_defaults(handler=_bench_model)
    safety = benchmarks.add_parser(
        'safety', help='one safety-monitor cycle: 50 obstacles against a 40-point plan'
    )
    safety.add_argument('--cycles', type=int, default=1000, help='timed cycles per case')
    safety.add_argument('--json', type=Path, help='also write the results to this JSON file')
    safety.set_defaults(handler=_bench_safety)
    pipeline = benchmarks.add_parser(
        'pipeline',
        help='the node pipeline over DDS, camera to trajectory, against bare rclpy transport',
    )
    pipeline.add_argument(
        '--duration', type=float, default=30.0, help='seconds measured per run (default 30)'
    )
    pipeline.add_argument(
        '--case',
        action='append',
        help='measure only this case: default (the default rig, six 448x256 cameras) or 720p '
        '(six 1280x720 cameras); repeatable; default: both',
    )
    pipeline.add_argument('--json', type=Path, help='also write the results to this JSON file')
    pipeline.set_defaults(handler=_bench_pipeline)
    render = benchmarks.add_parser(
        'render', help='the simulator camera renderer: the whole rig per step, one thread'
    )
    render.add_argument('--rig', type=Path, help='rig file (default: config/rig_surround.yaml)')
    render.add_argument('--steps', type=int, default=200, help='timed steps')
    render.add_argument('--json', type=Path, help='also write the results to this JSON file')
    render.set_defaults(handler=_bench_render)
    _command_group(
        commands,
        'sim',
        'the closed-loop simulator: record and evaluate',
        (
            (
                'eval',
                'drive seeded episodes in lockstep and report closed-loop metrics',
                add_sim_eval_arguments,
                run_sim_eval,
            ),
            (
                'compare',
                'set drivers side by side on the same episodes (the model card tables)',
                add_sim_compare_arguments,
                run_sim_compare,
            ),
            (
                'record',
                'record expert demonstrations as rosbag2 MCAP, one bag per episode',
                add_record_arguments,
                run_record,
            ),
        ),
    )
    _command_group(
        commands,
        'teacher',
        'the privileged BEV teacher of model v2: record its data, train it',
        (
            (
                'record',
                'record the expert without cameras: BEV rasters with own and counterfactual '
                'labels',
                add_teacher_record_arguments,
                run_teacher_record,
            ),
            (
                'train',
                'train the privileged teacher on recorded data (resumes from its last checkpoint)',
                add_teacher_train_arguments,
                run_teacher_train,
            ),
        ),
    )
    _command_group(
        commands,
        'student',
        'the camera student of model v2: record its data, train it, measure its map',
        (
            (
                'record',
                "render the cameras where states are kept, beside the teacher's raster (JPEG "
                'shards)',
                add_student_record_arguments,
                run_student_record,
            ),
            (
                'train',
                'distil the camera student from the teacher (resumes from its last checkpoint)',
                add_student_train_arguments,
                run_student_train,
            ),
            (
                'map-iou',
                'the neural map against the ground truth on held-out states: IoU per class and '
                'distance',
                add_map_iou_arguments,
                run_map_iou,
            ),
        ),
    )
    for name, help_text, add_arguments, handler in (
        (
            'train',
            'train the driving model on rosbag2 bags (torchrun for several processes)',
            add_train_arguments,
            run_train,
        ),
        (
            'eval-bags',
            'open-loop metrics of a model on bags: L2 and collisions at 1/2/3 s',
            add_eval_bags_arguments,
            run_eval_bags,
        ),
        (
            'distill',
            "model v2's stage 2: the camera student distilled from the teacher, on-policy",
            add_distill_arguments,
            run_distill,
        ),
        (
            'soak',
            'the pipeline over DDS for a long lockstep run: memory growth, latency drift, drops',
            add_soak_arguments,
            run_soak,
        ),
    ):
        _module_command(commands, name, help_text, add_arguments, handler)
    return parser


TRAINING_COMMANDS = frozenset({'train', 'teacher', 'student', 'distill'})
"""Sub-commands whose work is PyTorch on the CPU (training, and the recordings beside it)."""


def quiet_openmp_waits(argv: list[str]) -> None:
    """Make PyTorch's OpenMP threads sleep at barriers instead of spinning, for training commands.

    Set before torch is imported (OpenMP reads it once, when it loads), unless the caller chose a
    policy. On two shared cores a spinning thread holds a core that its partner, descheduled by
    another process, needs to reach the barrier: with a recording on both cores, a student
    training step ran 3.5 times slower with the default policy than with PASSIVE (2.2 against
    7.7 states/s), and alone the two were the same (16 states/s), on the 2-vCPU development VM.
    """
    if argv and argv[0] in TRAINING_COMMANDS:
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')


def main(argv: list[str] | None = None) -> int:
    """Run the `vla` command line; return the process exit code."""
    quiet_openmp_waits(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == '__main__':
    sys.exit(main())
