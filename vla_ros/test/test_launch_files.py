"""The launch files and bring-ups, checked without `launch`/`launch_ros` (not installable here).

Each launch file's generate_launch_description() runs against stand-in `launch` and `launch_ros`
modules with the constructor signatures of the real ones (Humble and later); the stand-ins record
the actions, and the test resolves the launch configurations as `ros2 launch` would, then checks
every node against the node's own declared parameter table: each executable is an installed
entry point, each parameter file exists and names only declared parameters, with values of the
declared type inside the declared range, and every declared parameter is set.
"""

import importlib
import importlib.metadata
import math
import runpy
import sys
import types
from pathlib import Path

import pytest
import yaml

from vla_ros.bringup import ARGUMENT_NAMES, file_parameters, load_bringup, node_overrides
from vla_ros.bringup_runner import NODE_CLASSES, parse_assignments

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
LAUNCH_DIR = PACKAGE_ROOT / 'launch'
EXECUTE_PROCESS_OPTIONS = {'output', 'emulate_tty', 'respawn', 'respawn_delay', 'prefix', 'cwd'}


class LaunchDescription:
    """Stand-in of launch.LaunchDescription: keeps its entities."""

    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument:
    """Stand-in of launch.actions.DeclareLaunchArgument."""

    def __init__(self, name, *, default_value=None, description=None, choices=None):
        self.name, self.default_value, self.description = name, default_value, description


class LaunchConfiguration:
    """Stand-in of launch.substitutions.LaunchConfiguration."""

    def __init__(self, variable_name, *, default=None):
        self.variable_name = variable_name


class ParameterValue:
    """Stand-in of launch_ros.parameter_descriptions.ParameterValue."""

    def __init__(self, value, *, value_type=None):
        self.value, self.value_type = value, value_type


class Node:
    """Stand-in of launch_ros.actions.Node: the keyword arguments of the real one."""

    def __init__(
        self,
        *,
        executable,
        package=None,
        name=None,
        namespace=None,
        exec_name=None,
        parameters=None,
        remappings=None,
        ros_arguments=None,
        arguments=None,
        **kwargs,
    ):
        assert set(kwargs) <= EXECUTE_PROCESS_OPTIONS, f'not an ExecuteProcess option: {kwargs}'
        self.executable, self.package, self.name = executable, package, name
        self.namespace, self.parameters, self.ros_arguments = namespace, parameters, ros_arguments


def stand_in_modules() -> dict[str, types.ModuleType]:
    modules = {}
    for name, members in {
        'launch': {'LaunchDescription': LaunchDescription},
        'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument},
        'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration},
        'launch_ros': {},
        'launch_ros.actions': {'Node': Node},
        'launch_ros.parameter_descriptions': {'ParameterValue': ParameterValue},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(members)
        modules[name] = module
    return modules


def describe(launch_file: str, monkeypatch: pytest.MonkeyPatch) -> LaunchDescription:
    for name, module in stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, 'vla_ros.launch_actions', raising=False)
    return runpy.run_path(str(LAUNCH_DIR / launch_file))['generate_launch_description']()


def resolve(value, arguments: dict[str, str]):
    """Expand substitutions as ros2 launch does (ParameterValue typed by YAML rules)."""
    if isinstance(value, LaunchConfiguration):
        assert value.variable_name in arguments, f'undeclared {value.variable_name}'
        return arguments[value.variable_name]
    if isinstance(value, ParameterValue):
        text = resolve(value.value, arguments)
        typed = yaml.safe_load(text)
        assert isinstance(typed, value.value_type), f'{text!r} is not a {value.value_type}'
        return typed
    if isinstance(value, dict):
        return {key: resolve(item, arguments) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, arguments) for item in value]
    return value


def node_specs(executable: str) -> dict[str, object]:
    module = importlib.import_module(NODE_CLASSES[executable].split(':')[0])
    return {spec.name: spec for spec in module.PARAMETERS}


def check_value(executable: str, name: str, value: object) -> None:
    specs = node_specs(executable)
    if name == 'use_sim_time':
        assert isinstance(value, bool)
        return
    assert name in specs, f'{executable} declares no parameter {name}'
    spec = specs[name]
    assert type(value) is type(spec.default), f'{executable} {name}: {value!r} not a {spec}'
    if spec.minimum is not None:
        assert spec.minimum <= value <= spec.maximum, f'{executable} {name}: {value} out of range'
    if isinstance(value, float):
        assert math.isfinite(value)


def launched_nodes(description: LaunchDescription, overrides: dict[str, str] | None = None):
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert [a.name for a in declared] == list(ARGUMENT_NAMES)
    assert all(a.description for a in declared)
    arguments = {a.name: a.default_value for a in declared} | (overrides or {})
    return arguments, [
        (entity, resolve(entity.parameters, arguments), resolve(entity.ros_arguments, arguments))
        for entity in description.entities
        if isinstance(entity, Node)
    ]


@pytest.mark.parametrize(
    ('launch_file', 'bringup', 'use_sim_time'),
    [
        ('pipeline.launch.py', 'pipeline', False),
        ('replay.launch.py', 'pipeline', True),
        ('sim.launch.py', 'sim', True),
    ],
)
def test_every_node_of_a_launch_file_is_installed_and_fully_configured(
    launch_file: str, bringup: str, use_sim_time: bool, monkeypatch: pytest.MonkeyPatch
):
    entry_points = {
        point.name: point.value
        for point in importlib.metadata.distribution('vla_ros').entry_points
        if point.group == 'console_scripts'
    }
    arguments, nodes = launched_nodes(describe(launch_file, monkeypatch))
    assert [node.executable for node, _, _ in nodes] == [
        node.executable for node in load_bringup(bringup).nodes
    ]
    assert Path(arguments['weights_path']).is_file() and Path(arguments['onnx_path']).is_file()
    for node, parameters, ros_arguments in nodes:
        assert node.package == 'vla_ros' and node.executable in entry_points
        assert node.name == node.executable
        assert ros_arguments == ['--log-level', 'info']
        *files, overrides = parameters
        set_names = set(overrides)
        for file in files:
            path = Path(file)
            assert path.is_file(), f'{launch_file}: {node.executable}: no {path}'
            for name, value in file_parameters(path, node.name).items():
                check_value(node.executable, name, value)
                set_names.add(name)
        for name, value in overrides.items():
            if name != 'use_sim_time':
                check_value(node.executable, name, value)
        assert set_names - {'use_sim_time'} == set(node_specs(node.executable)), (
            f'{node.executable}: parameters neither in its file nor set by the bring-up'
        )
        is_clock = node.executable == 'sim_bridge_node'
        assert overrides.get('use_sim_time', None) == (None if is_clock else use_sim_time)


def test_launch_arguments_reach_the_nodes_that_take_them(monkeypatch: pytest.MonkeyPatch):
    given = {
        'namespace': 'car1',
        'backend': 'torch',
        'rig_file': '/etc/rig.yaml',
        'log_level': 'debug',
        'use_sim_time': 'true',
    }
    _, nodes = launched_nodes(describe('pipeline.launch.py', monkeypatch), given)
    by_name = {node.executable: (node, parameters[-1], ros) for node, parameters, ros in nodes}
    assert by_name['vla_inference_node'][1]['backend'] == 'torch'
    assert by_name['sensor_sync_node'][1]['rig_file'] == '/etc/rig.yaml'
    assert 'backend' not in by_name['sensor_sync_node'][1]
    for node, overrides, ros_arguments in by_name.values():
        assert resolve(node.namespace, given) == 'car1'
        assert overrides['use_sim_time'] is True and ros_arguments == ['--log-level', 'debug']


def test_the_single_process_table_runs_the_entry_points_classes():
    entry_points = {
        point.name: point.value.split(':')[0]
        for point in importlib.metadata.distribution('vla_ros').entry_points
        if point.group == 'console_scripts' and point.name.endswith('_node')
    }
    assert {name: path.split(':')[0] for name, path in NODE_CLASSES.items()} == entry_points
    for path in NODE_CLASSES.values():
        module, name = path.split(':')
        assert hasattr(importlib.import_module(module), name), path


def test_bad_bringups_and_arguments_are_refused_by_name(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no bring-up named 'nope'.*pipeline, sim"):
        load_bringup('nope')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('nodes:\n  - parameters: []\n', encoding='utf-8')
    with pytest.raises(ValueError, match='broken.yaml: bad bring-up'):
        load_bringup(str(broken))
    twice = tmp_path / 'twice.yaml'
    twice.write_text(
        'use_sim_time: false\ninclude: pipeline\nnodes:\n  - executable: sensor_sync_node\n'
    )
    with pytest.raises(ValueError, match='listed twice'):
        load_bringup(str(twice))
    with pytest.raises(ValueError, match="'speed' is not a bring-up argument"):
        parse_assignments(['speed:=3'])
    with pytest.raises(ValueError, match='name:=value'):
        parse_assignments(['backend=torch'])
    with pytest.raises(ValueError, match='log_level must be one of'):
        parse_assignments(['log_level:=loud'])
    assert parse_assignments(['backend:=torch']) == {'backend': 'torch'}


def test_the_clock_node_never_gets_sim_time():
    sim = load_bringup('sim')
    overrides = {node.name: node_overrides(node, lambda name: name) for node in sim.nodes}
    assert 'use_sim_time' not in overrides['sim_bridge_node']
    assert overrides['sim_bridge_node'] == {'rig_file': 'rig_file'}
    assert overrides['safety_monitor_node'] == {'use_sim_time': 'use_sim_time'}
