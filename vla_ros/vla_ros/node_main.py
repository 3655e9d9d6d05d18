"""The `main()` of every vla_ros node: spin until shut down; a bad configuration exits 1."""

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

RCL_ERROR = rclpy_implementation.RCLError  # e.g. a malformed --ros-args rule
STOP_POLL_S = 0.1  # how soon a SIGINT/SIGTERM is noticed while nothing else wakes the executor


def stop_on_signals() -> threading.Event:
    """Return an event that SIGINT and SIGTERM set, instead of raising KeyboardInterrupt."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, request_stop)
    return stop


def run_node(make_node: Callable[[], Node], name: str, args: list[str] | None = None) -> None:
    """Create the node and spin it; SIGINT, SIGTERM and ROS shutdown end it cleanly (exit 0).

    rclpy's own handler lets Python raise KeyboardInterrupt wherever the main thread happens
    to be; inside a message conversion pybind11 turns that into a RuntimeError and the node
    dies with exit code 1. Here a signal only sets a flag that the spin loop checks between
    callbacks, so no callback is cut off half-way.

    A missing file, a bad value, an out-of-range parameter or a malformed `--ros-args` rule
    while the node starts ends the process with one line naming the problem and exit code 1,
    not a traceback.
    """
    stop = stop_on_signals()
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            node = make_node()
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            while not stop.is_set():
                executor.spin_once(timeout_sec=STOP_POLL_S)
            executor.shutdown()
            node.destroy_node()
    except ExternalShutdownException:
        pass
    except (FileNotFoundError, ValueError, ParameterException, RCL_ERROR) as error:
        print(f'{name}: {error}', file=sys.stderr)
        sys.exit(1)
