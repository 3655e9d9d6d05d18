"""Static checks of the vla_msgs interface definitions and of both package manifests."""

import re
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

from message_trees import message_class
from repo_paths import MSG_FILES, REPO_ROOT

FIELD = re.compile(
    r'^(?P<type>[\w/]+(?:\[\d*\])?)\s+(?P<name>[a-z][a-z0-9_]*)\s*(?P<comment>#.*)?$'
)
CONSTANT = re.compile(r'^\w+\s+[A-Z][A-Z0-9_]*\s*=')


def undocumented_fields(msg_file: Path) -> list[str]:
    """Return the fields of a .msg file that have no comment.

    A field is documented by an inline comment or by the comment block right above it; fields
    listed together without a blank line share that block.
    """
    missing = []
    documented = False
    for line in msg_file.read_text(encoding='utf-8').splitlines():
        line = line.strip()
        if not line:
            documented = False
        elif line.startswith('#'):
            documented = True
        elif CONSTANT.match(line):
            continue
        elif match := FIELD.match(line):
            if not (documented or match['comment']):
                missing.append(match['name'])
        else:
            raise ValueError(f'{msg_file.name}: cannot parse line {line!r}')
    return missing


def test_cmake_generates_every_msg_file():
    cmake = (REPO_ROOT / 'vla_msgs' / 'CMakeLists.txt').read_text(encoding='utf-8')
    listed = set(re.findall(r'"msg/(\w+\.msg)"', cmake))
    assert listed == {path.name for path in MSG_FILES}


@pytest.mark.parametrize('msg_file', MSG_FILES, ids=lambda path: path.stem)
def test_every_field_is_documented(msg_file: Path):
    assert undocumented_fields(msg_file) == []


def test_undocumented_field_is_found(tmp_path: Path):
    msg = tmp_path / 'Example.msg'
    msg.write_text('# speed, m/s\nfloat32 speed_mps\n\nfloat32 heading\nuint8 MODE_A=0\n')
    assert undocumented_fields(msg) == ['heading']


@pytest.mark.parametrize('msg_file', MSG_FILES, ids=lambda path: path.stem)
def test_every_msg_file_is_generated(msg_file: Path):
    cls = message_class(f'vla_msgs/{msg_file.stem}')
    field_names = [
        match['name']
        for line in msg_file.read_text(encoding='utf-8').splitlines()
        if (match := FIELD.match(line.strip()))
    ]
    assert list(cls.get_fields_and_field_types()) == field_names


@pytest.mark.parametrize(
    ('ours', 'autoware_fields'),
    [
        (
            'TrajectoryPoint',
            {
                'time_from_start': 'builtin_interfaces/Duration',
                'pose': 'geometry_msgs/Pose',
                'longitudinal_velocity_mps': 'float',
                'lateral_velocity_mps': 'float',
                'acceleration_mps2': 'float',
                'heading_rate_rps': 'float',
                'front_wheel_angle_rad': 'float',
                'rear_wheel_angle_rad': 'float',
            },
        ),
        (
            'LateralCommand',
            {
                'stamp': 'builtin_interfaces/Time',
                'control_time': 'builtin_interfaces/Time',
                'steering_tire_angle': 'float',
                'steering_tire_rotation_rate': 'float',
                'is_defined_steering_tire_rotation_rate': 'boolean',
            },
        ),
        (
            'LongitudinalCommand',
            {
                'stamp': 'builtin_interfaces/Time',
                'control_time': 'builtin_interfaces/Time',
                'velocity': 'float',
                'acceleration': 'float',
                'jerk': 'float',
                'is_defined_acceleration': 'boolean',
                'is_defined_jerk': 'boolean',
            },
        ),
        (
            'ControlCommand',
            {
                'stamp': 'builtin_interfaces/Time',
                'control_time': 'builtin_interfaces/Time',
                'lateral': 'vla_msgs/LateralCommand',
                'longitudinal': 'vla_msgs/LongitudinalCommand',
            },
        ),
    ],
)
def test_autoware_mirrors_have_the_same_fields_in_order(ours: str, autoware_fields: dict):
    """Field names, types and order of autoware_planning_msgs / autoware_control_msgs."""
    assert message_class(f'vla_msgs/{ours}').get_fields_and_field_types() == autoware_fields


@pytest.mark.parametrize(
    ('package_dir', 'build_type'), [('vla_msgs', 'ament_cmake'), ('vla_ros', 'ament_python')]
)
def test_package_manifest_is_valid_format_3(package_dir: str, build_type: str):
    package = parse_package(REPO_ROOT / package_dir)
    package.validate()
    assert package.name == package_dir
    assert package.package_format == 3
    assert package.get_build_type() == build_type


def test_vla_ros_depends_on_vla_msgs():
    package = parse_package(REPO_ROOT / 'vla_ros')
    assert 'vla_msgs' in {dependency.name for dependency in package.build_depends}
    assert 'vla_msgs' in {dependency.name for dependency in package.exec_depends}
