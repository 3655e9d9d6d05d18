"""The executors nodes spin (a thread per callback group, event-driven), and frozen start-up."""

import gc
import threading
import time
import weakref
from collections.abc import Iterator

import numpy as np
import pytest
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Empty

from vla_ros.node_main import (
    CallbackThreadsExecutor,
    executor_for,
    freeze_startup_objects,
    with_message_info,
)

BUSY_S = 0.6  # how long the slow callback holds its thread


@pytest.fixture
def node(ros_domain_id: int) -> Iterator[Node]:
    context = Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    node = Node('executor_test', context=context)
    yield node
    node.destroy_node()
    context.try_shutdown()


def spin_for(executor: CallbackThreadsExecutor, seconds: float) -> int:
    """Spin for `seconds`; return how many times spin_once returned."""
    returns = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
        returns += 1
    return returns


def test_a_busy_group_does_not_hold_up_another(node: Node):
    busy = threading.Event()
    ticks: list[float] = []

    def slow() -> None:
        if not busy.is_set():
            busy.set()
            time.sleep(BUSY_S)

    node.create_timer(0.01, slow, callback_group=MutuallyExclusiveCallbackGroup())
    node.create_timer(0.05, lambda: ticks.append(time.monotonic()))  # the default group
    executor = CallbackThreadsExecutor(2, context=node.context)
    executor.add_node(node)
    spin_for(executor, 2 * BUSY_S)
    executor.shutdown()
    assert busy.is_set()
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < BUSY_S / 2


def test_a_callback_waiting_for_a_thread_is_not_dispatched_again(node: Node):
    # One thread, held by a slow callback: the timer's callback waits in the queue meanwhile,
    # while something wakes the executor every millisecond. rclpy 9.1.2's MultiThreadedExecutor
    # queued the waiting callback again at each wake and returned from spin_once at once
    # (ros2/rclpy#1452): hundreds of returns here, and under load its spinning thread held the
    # GIL from the threads that should run the callbacks.
    started = threading.Event()
    calls: list[str] = []

    def slow() -> None:
        started.set()
        calls.append('slow')
        time.sleep(BUSY_S)

    node.create_timer(0.01, slow, callback_group=MutuallyExclusiveCallbackGroup())
    node.create_timer(0.01, lambda: calls.append('tick'))
    executor = CallbackThreadsExecutor(1, context=node.context)
    executor.add_node(node)
    while not started.is_set():
        executor.spin_once(timeout_sec=0.1)
    waking = threading.Event()

    def wake_every_millisecond() -> None:
        while not waking.wait(0.001):
            executor.wake()

    waker = threading.Thread(target=wake_every_millisecond)
    waker.start()
    returns = spin_for(executor, BUSY_S / 2)
    waking.set()
    waker.join()
    spin_for(executor, BUSY_S)
    executor.shutdown()
    assert returns < 20, f'spin_once returned {returns} times in {BUSY_S / 2} s'
    assert calls.count('slow') >= 1 and 'tick' in calls


def test_the_spinning_thread_waits_while_a_message_waits_for_a_thread(node: Node):
    # The pool's one thread is held; a message arrives at 50 Hz for a subscription in another
    # group, whose callback must wait for the thread. Until a thread begins that callback, the
    # subscription's QoS event handlers stay in the wait set and its unread message wakes each
    # wait at once with nothing to do: rclpy's MultiThreadedExecutor spun on that (and so did
    # this executor while it waited on the middleware then), taking most of a CPU and the GIL
    # from the threads that should run the callbacks.
    held = threading.Event()
    received: list[Empty] = []
    node.create_timer(
        0.01,
        lambda: held.set() or time.sleep(2.0),
        callback_group=MutuallyExclusiveCallbackGroup(),
    )
    node.create_subscription(
        Empty,
        'executor_test',
        received.append,
        10,
        callback_group=MutuallyExclusiveCallbackGroup(),
    )
    publisher = Node('executor_test_publisher', context=node.context).create_publisher(
        Empty, 'executor_test', 10
    )
    publishing = threading.Event()

    def publish_at_50_hz() -> None:
        while not publishing.wait(0.02):
            publisher.publish(Empty())

    executor = CallbackThreadsExecutor(1, context=node.context)
    executor.add_node(node)
    sender = threading.Thread(target=publish_at_50_hz)
    sender.start()
    while not held.is_set():
        executor.spin_once(timeout_sec=0.1)
    cpu_before = time.thread_time()
    spin_for(executor, 1.5)
    spinning_cpu_s = time.thread_time() - cpu_before
    spin_for(executor, 1.0)
    publishing.set()
    sender.join()
    executor.shutdown()
    assert spinning_cpu_s < 0.2, f'the spinning thread used {spinning_cpu_s:.2f} s of CPU in 1.5 s'
    assert received, 'the subscription never ran once the thread was free'


def test_an_exception_in_a_callback_comes_out_of_spin_once(node: Node):
    def fail() -> None:
        raise RuntimeError('callback failed')

    node.create_timer(0.01, fail)
    executor = CallbackThreadsExecutor(2, context=node.context)
    executor.add_node(node)
    with pytest.raises(RuntimeError, match='callback failed'):
        spin_for(executor, 2.0)
    executor.shutdown()


class Blob:
    """A garbage-collected object that can be part of a reference cycle."""


def cyclic_garbage() -> weakref.ref:
    """Make an unreachable reference cycle; return a weak reference to it."""
    blob = Blob()
    blob.cycle = blob
    return weakref.ref(blob)


def test_start_up_objects_are_frozen_and_later_garbage_is_still_collected():
    kept = [Blob() for _ in range(1000)]
    before = cyclic_garbage()
    try:
        freeze_startup_objects()
        assert before() is None  # garbage is collected first, not frozen
        walked = {id(obj) for obj in gc.get_objects()}
        assert gc.get_freeze_count() >= len(kept)
        assert not any(id(blob) in walked for blob in kept)  # a collection never walks them
        later = cyclic_garbage()
        gc.collect()
        assert later() is None
    finally:
        gc.unfreeze()


def test_an_event_driven_node_keeps_the_wait_set_executor_on_simulated_time(ros_domain_id: int):
    """On simulated time, rclpy 9.1.2's EventsExecutor fires timers on nearly every /clock."""
    context = Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    try:
        wall = Node('wall_time', context=context)
        sim_time = [Parameter('use_sim_time', value=True)]
        simulated = Node('sim_time', context=context, parameter_overrides=sim_time)
        assert isinstance(executor_for(wall), SingleThreadedExecutor)
        assert isinstance(executor_for(wall, threads=3), CallbackThreadsExecutor)
        assert not isinstance(executor_for(wall, event_driven=True), SingleThreadedExecutor)
        switched = wall.set_parameters([Parameter('use_sim_time', value=True)])[0]
        assert not switched.successful and 'only be set when the node starts' in switched.reason
        assert wall.get_parameter('use_sim_time').value is False
        executor = executor_for(simulated, event_driven=True)
        assert isinstance(executor, SingleThreadedExecutor)
        # What the choice guards against: a 0.1 s timer on a clock stepped 10 ms per message
        # fires every 100 ms of simulated time.
        fired: list[int] = []
        simulated.create_timer(0.1, lambda: fired.append(simulated.get_clock().now().nanoseconds))
        clock = Node('clock', context=context).create_publisher(Clock, '/clock', 10)
        executor.add_node(simulated)
        now_ns = 1_000_000_000
        while now_ns < 3_000_000_000:
            now_ns += 10_000_000
            clock.publish(Clock(clock=Time(nanoseconds=now_ns).to_msg()))
            executor.spin_once(timeout_sec=0.01)
        gaps_ms = {round(gap / 1e6) for gap in np.diff(fired)[1:]}
        assert len(fired) >= 10 and gaps_ms <= {100, 110}, gaps_ms
    finally:
        context.try_shutdown()


@pytest.mark.parametrize('event_driven', [False, True])
def test_a_callback_wrapped_with_message_info_gets_both_on_either_executor(node, event_driven):
    """The EventsExecutor of rclpy 9.1.2 hands such a callback one (message, info) tuple."""
    received: list[tuple[object, dict]] = []
    node.create_subscription(
        Empty, 'info_test', with_message_info(lambda m, i: received.append((m, i))), 10
    )
    publisher = node.create_publisher(Empty, 'info_test', 10)
    executor = executor_for(node, event_driven=event_driven)
    executor.add_node(node)
    deadline = time.monotonic() + 5.0
    while len(received) < 3 and time.monotonic() < deadline:
        publisher.publish(Empty())
        executor.spin_once(timeout_sec=0.05)
    assert len(received) >= 3
    message, info = received[0]
    assert isinstance(message, Empty)
    gids = {bytes(e.endpoint_gid) for e in node.get_publishers_info_by_topic('/info_test')}
    assert bytes(info['publisher_gid']['data']) in gids  # what TrustedSource reads
