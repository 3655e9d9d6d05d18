"""Launch descriptions of the bring-ups, for `ros2 launch`.

Only the launch files in `launch/` import this module: `launch` and `launch_ros` come with a full
ROS 2 install, or in the .venv from ../shared/ros-extras (they are not on PyPI). Each node gets
the bring-up's parameter files, then `params_file` if given, then the launch arguments' values,
as `vla run` gives them. Two arguments are the launch files' own: `autostart` (false: launch_ros
drives the inference node through configure and activate with lifecycle events, as a vehicle's
lifecycle manager would) and `params_file`. A node that exits ends the launch, as in `vla run`:
with exit code 1 and the node's name when it failed.
"""

import signal
import sys
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.conditions import UnlessCondition
from launch.event_handlers import OnProcessExit, OnProcessStart
from launch.events import matches_action
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

from vla_tools.bringup import (
    ARGUMENTS,
    BOOLEAN_ARGUMENTS,
    PACKAGE,
    BringUp,
    NodeLaunch,
    argument_defaults,
    load_bringup,
    node_overrides,
)

LIFECYCLE_NODE = 'vla_inference_node'
LAUNCH_ONLY_ARGUMENTS = {
    'autostart': (
        'true',
        'false: the inference node waits unconfigured; launch configures and activates it.',
    ),
    'params_file': (
        '',
        'A parameter file (keys /**/<node>) applied to every node after the packaged ones.',
    ),
}
# Arguments that `ros2 launch` itself adds from its command-line options.
ROS2_LAUNCH_ARGUMENTS = {'launch-prefix', 'launch-prefix-filter'}
CLEAN_EXIT_CODES = {0, -signal.SIGINT, -signal.SIGTERM}


def argument_value(name: str) -> LaunchConfiguration | ParameterValue:
    """Return the substitution that gives a node parameter the launch argument's value."""
    if name in (*BOOLEAN_ARGUMENTS, 'autostart'):
        return ParameterValue(LaunchConfiguration(name), value_type=bool)
    return LaunchConfiguration(name)


def refuse_unknown_arguments(context: LaunchContext, declared: set[str]) -> None:
    """Raise on a `name:=value` this launch file does not declare (launch would ignore it).

    Only the launch file named on the `ros2 launch` command line checks the command line: one
    included by another launch file leaves the including file's arguments alone.
    """
    this_file = Path(context.locals.current_launch_file_path).name
    if this_file not in sys.argv:
        return
    given = {argument.split(':=', 1)[0] for argument in context.argv if ':=' in argument}
    unknown = sorted(given - declared - ROS2_LAUNCH_ARGUMENTS)
    if unknown:
        raise ValueError(
            f'{this_file} has no argument {", ".join(map(repr, unknown))}; '
            f'its arguments: {", ".join(sorted(declared))}'
        )


def end_launch_when_node_exits(event: ProcessExited, context: LaunchContext) -> Shutdown | None:
    """Stop the launch when a node exits: with an error (exit code 1) when the node failed."""
    if context.is_shutdown:
        return None  # the launch is stopping the nodes itself
    if event.returncode not in CLEAN_EXIT_CODES:
        raise RuntimeError(
            f'{event.process_name} exited with code {event.returncode} (its reason is above); '
            'stopping the other nodes'
        )
    return Shutdown(reason=f'{event.process_name} exited')


def node_action(node: NodeLaunch, params_file: str) -> Node:
    """Return the launch_ros action of one node (a LifecycleNode for the inference node)."""
    overrides = node_overrides(node, argument_value)
    files = [str(path) for path in node.parameter_paths()]
    if params_file:
        files.append(params_file)
    kind = Node
    if node.executable == LIFECYCLE_NODE:
        kind = LifecycleNode
        overrides['autostart'] = argument_value('autostart')
    return kind(
        package=PACKAGE,
        executable=node.executable,
        name=node.name,
        namespace=LaunchConfiguration('namespace'),
        parameters=[*files, overrides],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')],
        output='screen',
        emulate_tty=True,
    )


def lifecycle_manager(node: LifecycleNode) -> list[RegisterEventHandler]:
    """Configure the inference node once its process runs, activate it once inactive.

    Only with autostart:=false: with autostart the node configures and activates itself.
    """

    def request(transition: int) -> EmitEvent:
        change = ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition)
        return EmitEvent(
            event=change,
            condition=UnlessCondition(LaunchConfiguration('autostart')),
        )

    return [
        RegisterEventHandler(
            OnProcessStart(target_action=node, on_start=[request(Transition.TRANSITION_CONFIGURE)])
        ),
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=node,
                goal_state='inactive',
                entities=[request(Transition.TRANSITION_ACTIVATE)],
            )
        ),
    ]


def start_nodes(context: LaunchContext, bringup: BringUp, declared: set[str]) -> list:
    """Check the command line, then return the bring-up's nodes with their exit handlers."""
    refuse_unknown_arguments(context, declared)
    params_file = LaunchConfiguration('params_file').perform(context)
    if params_file and not Path(params_file).is_file():
        raise FileNotFoundError(f'params_file {params_file} does not exist')
    nodes = [node_action(node, params_file) for node in bringup.nodes]
    managed = [node for node in nodes if isinstance(node, LifecycleNode)]
    return [
        *(handler for node in managed for handler in lifecycle_manager(node)),
        RegisterEventHandler(OnProcessExit(on_exit=end_launch_when_node_exits)),
        *nodes,
    ]


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
    ] + [
        DeclareLaunchArgument(argument, default_value=default, description=description)
        for argument, (default, description) in LAUNCH_ONLY_ARGUMENTS.items()
    ]
    declared = {argument.name for argument in arguments}
    return LaunchDescription(
        [
            *arguments,
            OpaqueFunction(function=start_nodes, args=[bringup, declared]),
        ]
    )
