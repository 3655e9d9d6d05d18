"""`vla run BRINGUP [name:=value ...]`: start a bring-up's nodes without `ros2 launch`.

The nodes, parameter files and arguments are the launch files' (vla_tools.bringup), so a machine
without `launch` runs exactly what `ros2 launch` would. By default each node is its own process,
as `ros2 launch` starts them; `--single-process` puts them in one process on a multi-threaded
executor (one interpreter, intra-process memory). Ctrl-C (or SIGTERM) stops every node and exits
0; a node that exits by itself (a bad parameter, a missing model file) stops the others and
`vla run` exits 1 naming it, after the node's own message.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from vla_ros.node_main import STOP_POLL_S, CallbackThreadsExecutor, stop_on_signals
from vla_tools.bringup import (
    ARGUMENT_NAMES,
    BOOLEAN_ARGUMENTS,
    LOG_LEVELS,
    BringUp,
    NodeLaunch,
    argument_defaults,
    load_bringup,
    node_overrides,
)

NODE_CLASSES = {
    'sensor_sync_node': 'vla_perception.sensor_sync_node:SensorSyncNode',
    'vla_inference_node': 'vla_planning.vla_inference_node:VlaInferenceNode',
    'safety_monitor_node': 'vla_planning.safety_monitor_node:SafetyMonitorNode',
    'trajectory_output_node': 'vla_planning.trajectory_output_node:TrajectoryOutputNode',
    'sim_bridge_node': 'vla_sim.sim_bridge_node:SimBridgeNode',
}
"""Executable -> node class, for --single-process (the executables' main() runs that class)."""
EXIT_GRACE_S = 10.0  # after SIGINT, a node has this long to exit before it is killed
SIGINT_RACE_S = 0.3  # a node may see the terminal's Ctrl-C before vla run does


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """Parse `name:=value` bring-up arguments, as `ros2 launch` takes them; ValueError if bad."""
    values = {}
    for assignment in assignments:
        name, separator, value = assignment.partition(':=')
        if not separator:
            raise ValueError(f'{assignment!r}: arguments are name:=value')
        if name not in ARGUMENT_NAMES:
            raise ValueError(f'{name!r} is not a bring-up argument: {", ".join(ARGUMENT_NAMES)}')
        values[name] = value
    if values.get('log_level', 'info') not in LOG_LEVELS:
        raise ValueError(f'log_level must be one of {", ".join(LOG_LEVELS)}')
    for name in BOOLEAN_ARGUMENTS:
        if values.get(name, 'false') not in ('true', 'false'):
            raise ValueError(f'{name} must be true or false')
    return values


def typed(argument: str, value: str) -> object:
    """Return an argument's value with the parameter's type (use_sim_time, autoware: bool)."""
    return value == 'true' if argument in BOOLEAN_ARGUMENTS else value


def override_file(node: NodeLaunch, values: dict[str, str], directory: Path) -> Path | None:
    """Write the node's argument-set parameters as a parameter file (quoted by YAML, not by hand).

    Empty values are left out: the node's own default (for rig_file, the packaged rig) applies.
    """
    overrides = node_overrides(node, lambda name: typed(name, values[name]))
    overrides = {name: value for name, value in overrides.items() if value != ''}
    if not overrides:
        return None
    path = directory / f'{node.name}_arguments.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': overrides}}), encoding='utf-8')
    return path


def ros_arguments(node: NodeLaunch, values: dict[str, str], directory: Path) -> list[str]:
    """Return the node's `--ros-args ...`: name, namespace, parameter files, then the arguments."""
    arguments = [
        '--ros-args',
        '-r',
        f'__node:={node.name}',
        '-r',
        f'__ns:=/{values["namespace"].strip("/")}',
    ]
    files = [*node.parameter_paths(), override_file(node, values, directory)]
    for path in files:
        if path is not None:
            arguments += ['--params-file', str(path)]
    return arguments


def executable_path(executable: str) -> str:
    """Return the node executable beside this Python (the .venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / executable
    if beside.exists():
        return str(beside)
    found = shutil.which(executable)
    if found is None:
        raise FileNotFoundError(f'{executable} is not installed; run `make setup`')
    return found


def node_command(node: NodeLaunch, values: dict[str, str], directory: Path) -> list[str]:
    """Return the command line that runs the node as its own process, as `ros2 launch` would."""
    return [
        executable_path(node.executable),
        *ros_arguments(node, values, directory),
        '--log-level',
        values['log_level'],
    ]


def stop_processes(processes: dict[str, subprocess.Popen], program: str) -> None:
    """Send SIGINT to every running node process; kill one still running after EXIT_GRACE_S.

    `program` names the caller in the line that reports a kill.
    """
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + EXIT_GRACE_S
    for name, process in processes.items():
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f'{program}: {name} did not stop in {EXIT_GRACE_S:.0f} s; killed', flush=True)
            process.kill()
            process.wait()


def run_processes(bringup: BringUp, values: dict[str, str], stop: threading.Event) -> int:
    """Run each node as a process until `stop` is set or one exits by itself."""
    with tempfile.TemporaryDirectory(prefix='vla_run_') as directory:
        commands = {
            node.name: node_command(node, values, Path(directory)) for node in bringup.nodes
        }
        processes = {name: subprocess.Popen(command) for name, command in commands.items()}
        print(
            f'vla run: {bringup.name}: started {", ".join(processes)} '
            f'(pids {", ".join(str(p.pid) for p in processes.values())}); Ctrl-C stops them',
            flush=True,
        )
        failed = None
        while not stop.wait(STOP_POLL_S):
            exited = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
            if exited and not stop.wait(SIGINT_RACE_S):
                failed = next(iter(exited.items()))
                break
        stop_processes(processes, 'vla run')
    if failed is not None:
        name, code = failed
        print(
            f'vla run: {name} exited with code {code} (its message is above); '
            'stopped the other nodes',
            file=sys.stderr,
        )
        return 1
    print(f'vla run: {bringup.name}: every node stopped', flush=True)
    return 0


def node_class(executable: str) -> type:
    """Return the class an executable runs; ValueError for one vla run does not know."""
    if executable not in NODE_CLASSES:
        raise ValueError(f'{executable} cannot run in one process: not a vla_ros node')
    module, name = NODE_CLASSES[executable].split(':')
    return getattr(importlib.import_module(module), name)


def run_single_process(bringup: BringUp, values: dict[str, str], stop: threading.Event) -> int:
    """Run every node in this process on a multi-threaded executor until `stop` is set.

    The CallbackThreadsExecutor, one thread per CPU as rclpy's MultiThreadedExecutor would take,
    without that executor's busy loop (vla_ros.node_main).
    """
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.signals import SignalHandlerOptions

    rclpy_args = ['--ros-args', '--log-level', values['log_level']]
    with (
        tempfile.TemporaryDirectory(prefix='vla_run_') as directory,
        rclpy.init(args=rclpy_args, signal_handler_options=SignalHandlerOptions.NO),
    ):
        executor = CallbackThreadsExecutor(len(os.sched_getaffinity(0)))
        nodes = []
        for launch in bringup.nodes:
            try:
                node = node_class(launch.executable)(
                    cli_args=ros_arguments(launch, values, Path(directory))
                )
            except (FileNotFoundError, ValueError, ParameterException) as error:
                print(f'vla run: {launch.name}: {error}', file=sys.stderr)
                for started in nodes:
                    started.destroy_node()
                return 1
            nodes.append(node)
            executor.add_node(node)
        print(
            f'vla run: {bringup.name}: {", ".join(n.get_name() for n in nodes)} in one process; '
            'Ctrl-C stops them',
            flush=True,
        )
        while not stop.is_set():
            executor.spin_once(timeout_sec=STOP_POLL_S)
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
    print(f'vla run: {bringup.name}: every node stopped', flush=True)
    return 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla run`'s arguments."""
    parser.add_argument(
        'bringup', help='a packaged bring-up (pipeline, sim) or a bring-up YAML file'
    )
    parser.add_argument(
        'arguments',
        nargs='*',
        metavar='name:=value',
        help=f'bring-up arguments, as ros2 launch takes them: {", ".join(ARGUMENT_NAMES)}',
    )
    parser.add_argument(
        '--single-process',
        action='store_true',
        help='run every node in this process on a multi-threaded executor',
    )


def run_bringup(args: argparse.Namespace) -> int:
    """Start the bring-up; return 0 after Ctrl-C, 1 when a node died or the input is bad."""
    try:
        bringup = load_bringup(args.bringup)
        values = {**argument_defaults(bringup), **parse_assignments(args.arguments)}
        for node in bringup.nodes:
            node.parameter_paths()
            if not args.single_process:
                executable_path(node.executable)
    except (FileNotFoundError, ValueError) as error:
        print(f'vla run: {error}', file=sys.stderr)
        return 1
    stop = stop_on_signals()
    if args.single_process:
        return run_single_process(bringup, values, stop)
    return run_processes(bringup, values, stop)
