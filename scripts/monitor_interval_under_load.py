"""How regularly safety_monitor_node publishes while obstacle lists load its inputs (issue 21).

Starts the node (from each source tree given, so an old and a new build are measured in one
run, their cases interleaved), plays a car at 20 m/s with 50 Hz odometry and 10 Hz plans and
camera status, and sends obstacle lists (far off the path: only their size matters) at 10 Hz,
half a period out of phase with the plans, as an unsynchronised perception stack would. Prints
the intervals between the stamps of consecutive vla/trajectory messages (each is its cycle's
time), p50, p99 and max, the share of cycles in each state, and the rules that did not pass.

    PYTHONPATH=vla_ros .venv/bin/python scripts/monitor_interval_under_load.py \
        --tree before=/path/to/old/vla_ros --tree after=vla_ros --seconds 20
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from rclpy.serialization import serialize_message
from vla_msgs.msg import (
    InputStatus,
    Obstacle,
    ObstacleArray,
    SafetyStatus,
    SensorStatus,
    Trajectory,
    TrajectoryPoint,
    VlaPlan,
)

from vla_ros.cdr import restamped
from vla_ros.qos import RELIABLE, SENSOR_DATA
from vla_ros.testing import DomainIdLease, RosHarness
from vla_tools.bench_harness import machine_line, print_table, summary

SPEED_MPS = 20.0
NS_PER_S = 1_000_000_000
WARM_UP_S = 3.0
STATE_NAMES = {0: 'NOMINAL', 1: 'DEGRADED', 2: 'OVERRIDE', 3: 'MINIMAL_RISK'}


@dataclass(frozen=True)
class Case:
    """Obstacles per list sent at 10 Hz, and the node's max_obstacles."""

    obstacles: int
    max_obstacles: int = 1000

    @property
    def name(self) -> str:
        """Name the case in the table: size, bound, and whether the lists are taken."""
        taken = 'taken' if self.obstacles <= self.max_obstacles else 'refused'
        return f'{self.obstacles} obstacles, bound {self.max_obstacles} ({taken})'


CASES = (Case(0), Case(1000), Case(20000), Case(20000, 20000))


def serialized_obstacles(count: int) -> bytes:
    """Serialize a list of `count` cars 50 m left of the path (restamped at each send)."""
    obstacle = Obstacle(id=1, classification=Obstacle.CLASS_CAR, existence_probability=1.0)
    obstacle.pose.position.y = 50.0
    obstacle.pose.orientation.w = 1.0
    obstacle.dimensions.x, obstacle.dimensions.y, obstacle.dimensions.z = 4.5, 1.8, 1.5
    message = ObstacleArray(obstacles=[obstacle] * count)
    message.header.frame_id = 'base_link'
    return serialize_message(message)


def straight_plan(stamp: Time) -> VlaPlan:
    """Return a plan straight ahead at the car's speed, 3 s long."""
    plan = VlaPlan(confidence=0.9)
    plan.header.stamp, plan.header.frame_id = stamp, 'base_link'
    for step in range(1, 7):
        t = 0.5 * step
        point = TrajectoryPoint(longitudinal_velocity_mps=SPEED_MPS)
        point.time_from_start.sec, point.time_from_start.nanosec = int(t), int(t % 1 * NS_PER_S)
        point.pose.position.x = SPEED_MPS * t
        point.pose.orientation.w = 1.0
        plan.trajectory.points.append(point)
    return plan


class World:
    """The monitor's inputs, from one node; records the cycle stamps and safety statuses."""

    def __init__(self, ros: RosHarness, obstacles: bytes) -> None:
        self.node = node = ros.node('world')
        self.start_ns = node.get_clock().now().nanoseconds
        self.obstacles = obstacles
        self.cycle_stamps_ns: list[int] = []
        self.statuses: list[SafetyStatus] = []
        self.odometry = node.create_publisher(
            Odometry, '/localization/kinematic_state', SENSOR_DATA
        )
        self.plans = node.create_publisher(VlaPlan, '/vla/plan', RELIABLE)
        self.status = node.create_publisher(SensorStatus, '/vla/sensor_status', RELIABLE)
        self.obstacle_lists = node.create_publisher(
            ObstacleArray, '/perception/obstacles', RELIABLE
        )
        node.create_subscription(Trajectory, '/vla/trajectory', self._on_trajectory, RELIABLE)
        node.create_subscription(
            SafetyStatus, '/vla/safety_status', self.statuses.append, RELIABLE
        )
        node.create_timer(0.02, self._publish_odometry)
        node.create_timer(0.1, self._publish_plan)
        self._obstacles_phase = node.create_timer(0.05, self._start_obstacles)

    def _on_trajectory(self, trajectory: Trajectory) -> None:
        stamp = trajectory.header.stamp
        self.cycle_stamps_ns.append(stamp.sec * NS_PER_S + stamp.nanosec)

    def _publish_odometry(self) -> None:
        now = self.node.get_clock().now()
        message = Odometry()
        message.header.stamp, message.header.frame_id = now.to_msg(), 'odom'
        message.child_frame_id = 'base_link'
        message.pose.pose.position.x = SPEED_MPS * (now.nanoseconds - self.start_ns) / NS_PER_S
        message.pose.pose.orientation.w = 1.0
        message.twist.twist.linear.x = SPEED_MPS
        self.odometry.publish(message)

    def _publish_plan(self) -> None:
        now = self.node.get_clock().now().to_msg()
        status = SensorStatus(complete=True)
        status.header.stamp, status.header.frame_id = now, 'base_link'
        status.cameras = [InputStatus(name=f'camera_{i}') for i in range(6)]
        self.status.publish(status)
        self.plans.publish(straight_plan(now))

    def _start_obstacles(self) -> None:
        """Start the 10 Hz obstacle lists half a period after the plans."""
        self.node.destroy_timer(self._obstacles_phase)
        self.node.create_timer(0.1, self._publish_obstacles)

    def _publish_obstacles(self) -> None:
        now_ns = self.node.get_clock().now().nanoseconds
        self.obstacle_lists.publish(restamped(self.obstacles, now_ns))


def measure(domain_id: int, tree: Path, case: Case, seconds: float) -> dict:
    """Run the node from `tree` under one case; return its intervals (ms) and state shares."""
    environment = {**os.environ, 'PYTHONPATH': str(tree), 'ROS_DOMAIN_ID': str(domain_id)}
    node = subprocess.Popen(
        [
            str(Path(sys.executable).with_name('safety_monitor_node')),
            '--ros-args',
            '-p',
            f'max_obstacles:={case.max_obstacles}',
            '--log-level',
            'fatal',  # the refusals of the oversized case would fill the table's screen
        ],
        env=environment,
    )
    try:
        with RosHarness(domain_id) as ros:
            world = World(ros, serialized_obstacles(case.obstacles))
            if not ros.spin_until(lambda: bool(world.cycle_stamps_ns), 30.0):
                raise RuntimeError(f'no trajectory from the node of {tree} within 30 s')
            ros.spin_until(lambda: False, WARM_UP_S)
            first, first_status = len(world.cycle_stamps_ns), len(world.statuses)
            ros.spin_until(lambda: False, seconds)
            stamps = np.array(world.cycle_stamps_ns[first:], dtype=np.int64)
            statuses = world.statuses[first_status:]
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    intervals_ms = np.diff(stamps) / 1e6
    states = [status.state for status in statuses]
    failing = Counter(c.rule for status in statuses for c in status.checks if c.verdict)
    shares = {
        name: round(100.0 * states.count(state) / max(len(states), 1))
        for state, name in STATE_NAMES.items()
        if state in states
    }
    return {
        'intervals': len(intervals_ms),
        **summary(intervals_ms, 1, ('p50', 'p99', 'max'), '{}_ms'),
        'states': ', '.join(f'{name} {share} %' for name, share in shares.items()),
        'failing': ', '.join(f'{rule} {count}' for rule, count in failing.most_common(2)) or '-',
    }


def main() -> None:
    """Measure every case with every tree, interleaved, and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--tree',
        action='append',
        metavar='LABEL=PATH',
        help='a vla_ros source tree to run the node from (default: this one, as "this")',
    )
    parser.add_argument('--seconds', type=float, default=20.0, help='measured per case')
    parser.add_argument('--repeats', type=int, default=1, help='rounds over every case')
    args = parser.parse_args()
    trees = [
        (label, Path(path).resolve())
        for label, path in (entry.split('=', 1) for entry in args.tree or [])
    ] or [('this', Path(__file__).resolve().parents[1] / 'vla_ros')]
    os.environ.setdefault(
        'FASTDDS_DEFAULT_PROFILES_FILE',
        str(Path(__file__).resolve().parents[1] / 'vla_ros/config/fastdds_large_data.xml'),
    )
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    print(f'{machine_line()}; load average {os.getloadavg()[0]:.1f} at start', flush=True)
    rows = []
    with DomainIdLease() as lease:
        for _ in range(args.repeats):
            for case in CASES:
                for label, tree in trees:
                    started = time.monotonic()
                    result = measure(lease.domain_id, tree, case, args.seconds)
                    rows.append(
                        (label, case.name)
                        + tuple(result[key] for key in ('intervals', 'p50_ms', 'p99_ms'))
                        + tuple(result[key] for key in ('max_ms', 'states', 'failing'))
                    )
                    print(f'  {rows[-1]} ({time.monotonic() - started:.0f} s)', flush=True)
    print(f'load average {os.getloadavg()[0]:.1f} at the end')
    print_table(
        [
            ('tree', 8),
            ('case', 38),
            ('n', 5),
            ('p50 ms', 8),
            ('p99 ms', 8),
            ('max ms', 8),
            ('states', 40),
            ('rules not passing (cycles)', 50),
        ],
        rows,
    )


if __name__ == '__main__':
    main()
