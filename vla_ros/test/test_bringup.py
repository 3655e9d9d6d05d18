"""The bring-ups (config/bringup_*.yaml) and the parameter files they give each node.

The launch files and `vla run` both start the bring-ups; test_launch_files.py runs the launch
files under the real `ros2 launch`, test_vla_run.py runs `vla run`. Here, without starting
anything: every parameter file names only parameters its node declares, with the declared type
inside the declared range, and every declared parameter is set (rcl ignores a name a node does
not declare, so a typo in a file would otherwise go unnoticed).
"""

import importlib
import importlib.metadata
import math
from pathlib import Path

import pytest

from vla_tools.bringup import (
    argument_defaults,
    file_parameters,
    load_bringup,
    node_overrides,
    node_parameters,
)
from vla_tools.bringup_runner import NODE_CLASSES, parse_assignments


def node_specs(executable: str) -> dict[str, object]:
    module = importlib.import_module(NODE_CLASSES[executable].split(':')[0])
    return {spec.name: spec for spec in module.PARAMETERS}


def check_value(executable: str, name: str, value: object) -> None:
    specs = node_specs(executable)
    assert name in specs, f'{executable} declares no parameter {name}'
    spec = specs[name]
    assert type(value) is type(spec.default), f'{executable} {name}: {value!r} not a {spec}'
    if spec.minimum is not None:
        assert spec.minimum <= value <= spec.maximum, f'{executable} {name}: {value} out of range'
    if isinstance(value, float):
        assert math.isfinite(value)


@pytest.mark.parametrize('bringup', ['pipeline', 'sim', 'autoware'])
def test_every_node_of_a_bringup_is_installed_and_fully_configured(bringup: str):
    entry_points = {
        point.name
        for point in importlib.metadata.distribution('vla_ros').entry_points
        if point.group == 'console_scripts'
    }
    for node in load_bringup(bringup).nodes:
        assert node.executable in entry_points
        overrides = node_overrides(node, lambda name: name)
        set_names = set(overrides) - {'use_sim_time'}
        for path in node.parameter_paths():
            assert Path(path).is_file(), f'{bringup}: {node.executable}: no {path}'
            for name, value in file_parameters(path, node.name).items():
                check_value(node.executable, name, value)
                set_names.add(name)
        assert set_names == set(node_specs(node.executable)), (
            f'{node.executable}: parameters neither in its file nor set by the bring-up'
        )


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
    assert overrides['safety_monitor_node'] == {
        'use_sim_time': 'use_sim_time',
        'autoware': 'autoware',
    }


def test_the_autoware_adapters_are_on_only_in_the_autoware_bringup():
    autoware, pipeline = load_bringup('autoware'), load_bringup('pipeline')
    assert [node.name for node in autoware.nodes] == [node.name for node in pipeline.nodes]
    assert argument_defaults(autoware)['autoware'] == 'true'
    assert argument_defaults(pipeline)['autoware'] == 'false'
    assert argument_defaults(load_bringup('sim'))['autoware'] == 'false'
    takes = {node.name for node in autoware.nodes if 'autoware' in node_overrides(node, str)}
    assert takes == {'safety_monitor_node', 'trajectory_output_node'}
    for node in autoware.nodes:  # the parameter files keep them off: only the argument turns on
        assert node_parameters(node).get('autoware', False) is False
    with pytest.raises(ValueError, match='autoware must be true or false'):
        parse_assignments(['autoware:=yes'])
    assert parse_assignments(['autoware:=true']) == {'autoware': 'true'}
