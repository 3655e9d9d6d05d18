"""Test isolation for ROS 2: every test run gets a DDS domain of its own.

Two test runs on one machine in the same ROS_DOMAIN_ID see each other's topics and fail in ways
that look like bugs of the code under test. A lease is an exclusive lock file per domain id;
the operating system drops it when the process ends, so a crashed run never leaks a domain.
"""

import fcntl
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import rclpy
from rclpy.client import Client
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

# Domain ids whose DDS ports do not collide with Linux's ephemeral port range (ROS 2 docs,
# "The ROS_DOMAIN_ID"); 0 is left to whatever else runs on the machine.
USABLE_DOMAIN_IDS = range(1, 102)

LOCK_DIR = Path(tempfile.gettempdir()) / 'vla_ros_domain_ids'


class DomainIdLease:
    """An exclusively held ROS domain id, released by `release()` or when the process exits."""

    def __init__(self, lock_dir: Path = LOCK_DIR, candidates: range = USABLE_DOMAIN_IDS) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True)
        start = os.getpid() % len(candidates)
        for offset in range(len(candidates)):
            domain_id = candidates[(start + offset) % len(candidates)]
            handle = open(lock_dir / f'{domain_id}.lock', 'w')  # noqa: SIM115 (held open: the lock)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.domain_id: int = domain_id
            self._handle: IO[str] | None = handle
            return
        raise RuntimeError(
            f'all ROS domain ids {candidates.start}..{candidates.stop - 1} are leased by other '
            f'processes (lock files in {lock_dir})'
        )

    def release(self) -> None:
        """Give the domain id back; safe to call twice."""
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> 'DomainIdLease':
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class RosHarness:
    """An rclpy context of its own, in one domain, whose nodes are all destroyed by `close()`."""

    def __init__(self, domain_id: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes: list[Node] = []

    def node(self, name: str) -> Node:
        """Create a node in this harness's context and spin it with the harness's executor."""
        node = Node(name, context=self.context)
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def spin_until(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Spin until `condition()` holds; return False if `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0.0:
                return False
            self.executor.spin_once(timeout_sec=min(0.05, remaining))
        return True

    def call(
        self, client: Client, request: object, timeout_s: float = 10.0, attempts: int = 3
    ) -> object | None:
        """Call an idempotent service; return its response, or None after `attempts` silences.

        A request is sent again when no response came within `timeout_s`: a server can take a
        request before it has matched the client's response reader, and rmw_fastrtps then drops
        the response after 100 ms ("failed to send response (timeout)", ros2/ros2#1253,
        ros2/rmw_fastrtps#842). `wait_for_service` sees only the request side.
        """
        for _ in range(attempts):
            future = client.call_async(request)
            if self.spin_until(future.done, timeout_s):
                return future.result()
            client.remove_pending_request(future)
        return None

    def close(self) -> None:
        """Destroy every node, the executor and the context."""
        for node in self._nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self._nodes.clear()
        self.executor.shutdown()
        self.context.try_shutdown()

    def __enter__(self) -> 'RosHarness':
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
