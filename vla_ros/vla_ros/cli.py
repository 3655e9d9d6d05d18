"""The `vla` command-line tool: one entry point, one sub-command per job."""

import argparse
import importlib.metadata
import sys
from pathlib import Path

from vla_ros.doctor import run_checks


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
    from vla_perception.sync_benchmark import run

    run(args.duration, args.json)
    return 0


def _bench_model(args: argparse.Namespace) -> int:
    from vla_model.benchmark import run

    run(args.repeats, args.json, args.teacher)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `vla` with every sub-command."""
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
    model.add_argument('--teacher', action='store_true', help='also measure the teacher')
    model.add_argument('--json', type=Path, help='also write the results to this JSON file')
    model.set_defaults(handler=_bench_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `vla` command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == '__main__':
    sys.exit(main())
