"""The `main()` of every vla_ros node: spin until shut down; a bad configuration exits 1."""

import sys
from collections.abc import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], name: str, args: list[str] | None = None) -> None:
    """Create the node and spin it; Ctrl-C and ROS shutdown end it cleanly (exit code 0).

    A missing file, a bad value or an out-of-range parameter while the node is constructed
    ends the process with one line naming the problem and exit code 1, not a traceback.
    """
    try:
        with rclpy.init(args=args):
            rclpy.spin(make_node())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (FileNotFoundError, ValueError, ParameterException) as error:
        print(f'{name}: {error}', file=sys.stderr)
        sys.exit(1)
