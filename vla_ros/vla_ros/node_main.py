"""The `main()` of every vla_ros node: spin until shut down; a bad configuration exits 1."""

import functools
import gc
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.context import Context
from rclpy.exceptions import ParameterException
from rclpy.executors import (
    ConditionReachedException,
    Executor,
    ExternalShutdownException,
    ShutdownException,
    SingleThreadedExecutor,
    TimeoutException,
)
from rclpy.experimental import EventsExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from rclpy.task import Task

RCL_ERROR = rclpy_implementation.RCLError  # e.g. a malformed --ros-args rule
STOP_POLL_S = 0.1  # how soon a SIGINT/SIGTERM is noticed while nothing else wakes the executor


class CallbackThreadsExecutor(Executor):
    """Run callbacks on a pool of threads, each callback group's one at a time.

    What rclpy's MultiThreadedExecutor does, without its busy loop. rclpy 9.1.2 makes a
    subscription's handler when it is ready, and only the pool thread that runs it marks its
    callback group busy; until then the subscription's QoS event handlers (same group, idle)
    stay in the wait set, and its unread data wakes every wait at once with nothing to do. The
    MultiThreadedExecutor also queues such a handler again on each of those wakes and returns
    (ros2/rclpy issue 1452, fixed upstream by pull request 1547), so its spinning thread loops
    holding the GIL and the pool's threads cannot start: on the loaded 2-vCPU development VM
    the safety monitor stalled 0.3-1.7 s at a time with fresh inputs (issue 21). Here the
    spinning thread waits on the middleware only while no callback it handed over is still
    waiting for a thread, and never hands a callback over twice.
    """

    def __init__(self, num_threads: int, *, context: Context | None = None) -> None:
        super().__init__(context=context)
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix='callbacks')
        self._handed_over = threading.Condition()
        self._queued: set[Task] = set()  # handed to the pool, not taken up by a thread yet
        self._running: set[Task] = set()
        self._failures: list[BaseException] = []

    def spin_once(self, timeout_sec: float | None = None) -> None:
        """Hand the next ready callback to the pool; raise what a finished callback raised.

        Waits for ready callbacks only once every callback handed over has been taken up by a
        pool thread (returning after `timeout_sec` if none is free), and never hands one over
        twice.
        """
        if self._failures:
            raise self._failures.pop(0)
        with self._handed_over:
            if not self._handed_over.wait_for(lambda: not self._queued, timeout_sec):
                return
        while True:
            try:
                handler, _, _ = self.wait_for_ready_callbacks(timeout_sec)
            except (ConditionReachedException, ShutdownException, TimeoutException):
                return
            with self._handed_over:
                if handler not in self._queued and handler not in self._running:
                    self._queued.add(handler)
                    break
        self._pool.submit(self._run, handler)

    def _run(self, handler: Task) -> None:
        """Run (or resume) a callback on a pool thread; keep its exception for spin_once."""
        with self._handed_over:
            self._queued.discard(handler)
            self._running.add(handler)
            self._handed_over.notify_all()
        try:
            handler()
        finally:
            with self._handed_over:
                self._running.discard(handler)
        if handler.done() and handler.exception() is not None:
            self._failures.append(handler.exception())

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        """Finish the callbacks handed to the pool (none is left half-run), then stop."""
        self._pool.shutdown(wait=True)
        return super().shutdown(timeout_sec)


def stop_on_signals() -> threading.Event:
    """Return an event that SIGINT and SIGTERM set, instead of raising KeyboardInterrupt."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, request_stop)
    return stop


def freeze_startup_objects() -> None:
    """Move every object alive now out of the cyclic collector's reach (CPython's gc.freeze).

    A node's start-up leaves many long-lived objects: 36 000 in the safety monitor, 478 000 in
    the inference node once its model, ONNX Runtime and sentence encoder are loaded. A full
    collection walks them all with the GIL held (15 ms in the monitor, 420-520 ms in the
    inference node on the 2-vCPU VM beside a training job), each time enough new objects have
    outlived the young generations.
    Frozen, they are never walked again; what the node creates later is collected as before.
    Garbage is collected first, so none of it is kept.
    """
    gc.collect()
    gc.freeze()


def executor_for(node: Node, threads: int = 1, event_driven: bool = False) -> Executor:
    """Return the executor `run_node` spins `node` with.

    `threads` above 1: a CallbackThreadsExecutor with that many threads. `event_driven`: rclpy's
    EventsExecutor (C++, `rclpy.experimental`), which queues each callback as its event arrives
    instead of rebuilding the wait set in Python on every wake; the sensor sync node, woken about
    150 times a second (six cameras, odometry at 50 Hz, its 40 Hz step timer), takes 16-17 % of a
    core instead of 31-32 % at 10 Hz (docs/PERFORMANCE.md). rclpy 9.1.2's EventsExecutor fires
    a ROS-time timer on nearly every /clock message (a 0.1 s timer every 20 ms of sim time,
    measured), so with `use_sim_time` the node keeps the SingleThreadedExecutor. It also refuses
    guard conditions, which is why the safety monitor does not ask for it. A node given the
    EventsExecutor refuses to switch to simulated time while it runs (`ros2 param set ...
    use_sim_time true`). A subscription callback that takes MessageInfo must be wrapped in
    `with_message_info`; the output node's is, and it takes 13-15 % of a core at 10 Hz on the
    EventsExecutor against 22-26 % on the SingleThreadedExecutor (docs/PERFORMANCE.md).
    """
    if threads > 1:
        return CallbackThreadsExecutor(threads, context=node.context)
    if event_driven and not node.get_parameter('use_sim_time').value:
        node.add_on_set_parameters_callback(_refuse_simulated_time)
        return EventsExecutor(context=node.context)
    return SingleThreadedExecutor(context=node.context)


def with_message_info(callback: Callable[[Any, MessageInfo], None]) -> Callable[..., None]:
    """Wrap a (message, info) subscription callback so that every executor here delivers both.

    rclpy reads the callback's signature (this wrapper reports the wrapped one's) to decide to
    pass MessageInfo. The wait-set executors then call it with two arguments; rclpy 9.1.2's
    EventsExecutor with one, the (message, info) tuple its take returned
    (`HandleSubscriptionReady` in events_executor.cpp), which a two-parameter callback
    refuses. The wrapper takes either call.
    """

    @functools.wraps(callback)
    def deliver(*arguments: Any) -> None:
        message, info = arguments if len(arguments) == 2 else arguments[0]
        callback(message, info)

    return deliver


def _refuse_simulated_time(parameters: list[Parameter]) -> SetParametersResult:
    """Refuse use_sim_time:=true at run time on an EventsExecutor (its ROS-time timers misfire)."""
    if any(p.name == 'use_sim_time' and p.value for p in parameters):
        return SetParametersResult(
            successful=False,
            reason='use_sim_time can only be set when the node starts: it runs on an '
            'EventsExecutor, whose timers misfire on simulated time in rclpy 9.1.2',
        )
    return SetParametersResult(successful=True)


def run_node(
    make_node: Callable[[], Node],
    name: str,
    args: list[str] | None = None,
    threads: int = 1,
    event_driven: bool = False,
) -> None:
    """Create the node and spin it; SIGINT, SIGTERM and ROS shutdown end it cleanly (exit 0).

    rclpy's own handler lets Python raise KeyboardInterrupt wherever the main thread happens
    to be; inside a message conversion pybind11 turns that into a RuntimeError and the node
    dies with exit code 1. Here a signal only sets a flag that the spin loop checks between
    callbacks, so no callback is cut off half-way.

    `threads` above 1 spins a CallbackThreadsExecutor with that many threads, for a node whose
    callback groups must not wait for each other (the safety monitor's cycle and its inputs);
    `event_driven` an EventsExecutor where it is safe (`executor_for`); every other node keeps
    the single-threaded executor. Callbacks of one node run one after another in each.

    A missing file, a bad value, an out-of-range parameter or a malformed `--ros-args` rule
    while the node starts ends the process with one line naming the problem and exit code 1,
    not a traceback.
    """
    stop = stop_on_signals()
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            node = make_node()
            freeze_startup_objects()
            executor = executor_for(node, threads, event_driven)
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
