"""Launch descriptions of the bring-ups, for `ros2 launch` on a full ROS 2 install.

Only the launch files in `launch/` import this module: `launch` and `launch_ros` are not
installable from PyPI (docs/BRINGUP.md says what was and was not run where). Each node gets the
bring-up's parameter files, then the launch arguments' values, like `vla run` gives them.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from vla_ros.bringup import ARGUMENTS, PACKAGE, argument_defaults, load_bringup, node_overrides


def argument_value(name: str) -> LaunchConfiguration | ParameterValue:
    """Return the substitution that gives a node parameter the launch argument's value."""
    if name == 'use_sim_time':
        return ParameterValue(LaunchConfiguration(name), value_type=bool)
    return LaunchConfiguration(name)


def bringup_launch_description(name: str, use_sim_time: bool | None = None) -> LaunchDescription:
    """Declare the bring-up's arguments and its nodes; `use_sim_time` overrides its default."""
    bringup = load_bringup(name)
    defaults = argument_defaults(bringup)
    if use_sim_time is not None:
        defaults['use_sim_time'] = 'true' if use_sim_time else 'false'
    arguments = [
        DeclareLaunchArgument(
            argument.name, default_value=defaults[argument.name], description=argument.description
        )
        for argument in ARGUMENTS
    ]
    nodes = [
        Node(
            package=PACKAGE,
            executable=node.executable,
            name=node.name,
            namespace=LaunchConfiguration('namespace'),
            parameters=[
                *(str(path) for path in node.parameter_paths()),
                node_overrides(node, argument_value),
            ],
            ros_arguments=['--log-level', LaunchConfiguration('log_level')],
            output='screen',
            emulate_tty=True,
        )
        for node in bringup.nodes
    ]
    return LaunchDescription([*arguments, *nodes])
