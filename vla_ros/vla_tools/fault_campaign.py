"""`vla faults`: inject faults into the running pipeline and measure how it reaches safety.

The four pipeline nodes run as their own processes from the packaged `pipeline` bring-up, as
`vla run pipeline` starts them (shipped model, monitor enforcing). This process holds the
vehicle's inputs (`SyntheticSensors`: six cameras, odometry, obstacles, instruction), an injector
for what the vehicle would not send (plans, instructions, parameter changes, floods) and a
listener of `vla/safety_status`, `vla/trajectory` and `/rosout`. Each fault is injected into the
settled pipeline, held, and cleared; the campaign measures:

- detection: the first sign of the fault (a failing safety check or a warning from a node that
  names it), from its stamp, after the injection;
- safe action: the first `SafetyStatus` in one of the fault's safe states (for faults whose safe
  behaviour is to refuse the input and go on, the refusal itself), against the fault's
  fault-tolerant time (FTT, from the limits in config/safety_monitor.yaml and docs/SAFETY.md);
- recovery: after the fault is cleared, the first status back in the state held before it;
- unsafe trajectories: any `vla/trajectory` with a non-finite value or a speed over the hard
  limit, and, for faults that must be held in a safe state, any status outside it from the FTT
  until the fault is cleared;
- crashes: a pipeline process that exits (other than the one a fault kills on purpose).

Times are those of the monitor's stamps (its decisions), not of arrival here.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

import rclpy
from rcl_interfaces.msg import Log, Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from vla_msgs.msg import (
    ControlCommand,
    Instruction,
    Obstacle,
    ObstacleArray,
    SafetyStatus,
    Trajectory,
    VlaPlan,
)

from vla_perception.rig import RigConfig, default_rig_path
from vla_perception.synchronizer import stamp_to_ns
from vla_planning.safety_states import SafetyState
from vla_ros import reports
from vla_ros.cdr import restamped
from vla_ros.install_paths import vla_ros_file
from vla_ros.qos import LATCHED, RELIABLE
from vla_ros.reports import write_json
from vla_ros.stamps import to_time
from vla_ros.topics import INSTRUCTION_TOPIC, OBSTACLES_TOPIC
from vla_tools.bench_harness import machine_line
from vla_tools.bringup import argument_defaults, load_bringup
from vla_tools.bringup_runner import node_command, stop_processes
from vla_tools.synthetic_sensors import INSTRUCTION, SyntheticSensors

NS = 1_000_000_000
NOMINAL, DEGRADED, OVERRIDE, MINIMAL_RISK = (
    SafetyStatus.STATE_NOMINAL,
    SafetyStatus.STATE_DEGRADED,
    SafetyStatus.STATE_OVERRIDE,
    SafetyStatus.STATE_MINIMAL_RISK,
)
NOT_NOMINAL = frozenset({DEGRADED, OVERRIDE, MINIMAL_RISK})
STOPPED = frozenset({MINIMAL_RISK})
HOLDING = frozenset({OVERRIDE, MINIMAL_RISK})
SPEED_LIMIT_MPS = 36.1  # limits.speed_limit_mps (read-only in the monitor)
AGE_FTT_S = 0.5 + 0.2  # an input older than its 0.5 s limit, judged within two cycles
PLAN_LOST_FTT_S = 1.0 + 0.2  # limits.plan_lost_s, judged within two cycles
STOP_FTT_S = 1.0 + 0.2  # trajectory_output_node's trajectory_timeout_s, then two control periods
ROGUE_SPEED_MPS = 60.0  # what a misconfigured second planner asks for
ROGUE_NODE = 'rogue_planner'
FOLLOW_TOLERANCE_MPS = 1.0  # a command this far above every trusted trajectory followed another
CAMERA_FTT_S = 0.5 + 0.2  # the sync node stops waiting for a silent camera after 0.5 s
INVALID_PLAN_FTT_S = 0.3  # judged at the next plan-run or watchdog cycle, two cycles of slack
STARTUP_TIMEOUT_S = 120.0
SETTLE_TIMEOUT_S = 30.0
RECOVERY_TIMEOUT_S = 20.0
# A restarted process starts as at bring-up (torch, ONNX Runtime, the encoder, the model): it gets
# bring-up's budget to recover in, not the 20 s of a fault that leaves every process running.
RESTART_RECOVERY_TIMEOUT_S = STARTUP_TIMEOUT_S
FLOOD_PER_TICK = 50  # obstacle lists per 10 ms: 5 kHz
# Obstacles in each list of the oversized-lists fault (3 MB): 20 times max_obstacles.
OVERSIZED_OBSTACLES = 20_000
ROSOUT_QOS = QoSProfile(  # deep enough for a burst of warnings between two spins
    depth=100, reliability=LATCHED.reliability, durability=LATCHED.durability
)


@dataclass(frozen=True)
class Fault:
    """One fault: how it is injected and cleared, and what the pipeline must do about it."""

    name: str
    injection: str
    expected: str
    signs: tuple[str, ...]  # text in a failing check or a node's warning that shows detection
    safe_states: frozenset[int]  # empty: refuse the input and go on
    ftt_s: float
    inject: Callable[[Campaign], None]
    clear: Callable[[Campaign], None]
    hold: bool = True  # the safe state must last until the fault is cleared
    duration_s: float = 2.5
    # Slow set-up (building a large message), run before the pipeline settles: it neither stalls
    # this process's sensors during the fault nor counts in its times.
    prepare: Callable[[Campaign], None] | None = None
    recovery_timeout_s: float = RECOVERY_TIMEOUT_S  # from the clearing to the state before it


@dataclass
class FaultResult:
    """What the pipeline did about one fault; times in s from the injection."""

    fault: str
    injection: str
    expected: str
    ftt_s: float
    detected_s: float | None
    safe_s: float | None
    within_ftt: bool
    recovered_s: float | None
    unsafe_trajectories: int
    crashed: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Safe in time, nothing unsafe, nothing crashed, and back to normal afterwards."""
        return (
            self.within_ftt
            and self.unsafe_trajectories == 0
            and not self.crashed
            and self.recovered_s is not None
        )


class Listener(Node):
    """Record statuses, trajectories and their senders, commands, the plan and the warnings."""

    def __init__(self, context: Context) -> None:
        super().__init__('fault_campaign_listener', context=context)
        self.statuses: list[SafetyStatus] = []
        self.trajectories: list[Trajectory] = []
        self.trajectory_sources: list[bytes] = []  # each trajectory's publisher GID
        self.commands: list[ControlCommand] = []
        self.logs: list[Log] = []
        self.plan: VlaPlan | None = None
        self.plan_latencies: list[tuple[int, float]] = []  # (frame stamp, input-to-output ms)
        self.create_subscription(SafetyStatus, 'vla/safety_status', self.statuses.append, RELIABLE)
        self.create_subscription(Trajectory, 'vla/trajectory', self._on_trajectory, RELIABLE)
        self.create_subscription(
            ControlCommand, 'vla/control_command', self.commands.append, RELIABLE
        )
        self.create_subscription(VlaPlan, 'vla/plan', self._on_plan, RELIABLE)
        self.create_subscription(Log, '/rosout', self._on_log, ROSOUT_QOS)

    def _on_trajectory(self, message: Trajectory, info: dict) -> None:
        self.trajectories.append(message)
        self.trajectory_sources.append(bytes(info['publisher_gid']['data']))

    def _on_plan(self, message: VlaPlan) -> None:
        self.plan = message
        self.plan_latencies.append((stamp_to_ns(message.header.stamp), message.input_to_output_ms))

    def _on_log(self, message: Log) -> None:
        if message.level >= Log.WARN and message.name != self.get_name():
            self.logs.append(message)


def unsafe(trajectory: Trajectory) -> bool:
    """Return whether no vehicle should be given it: a non-finite value, or over the limit."""
    for point in trajectory.points:
        values = (
            point.pose.position.x,
            point.pose.position.y,
            point.pose.orientation.z,
            point.pose.orientation.w,
            point.longitudinal_velocity_mps,
            point.acceleration_mps2,
        )
        if not all(math.isfinite(v) for v in values):
            return True
        if abs(point.longitudinal_velocity_mps) > SPEED_LIMIT_MPS:
            return True
    return False


def nan_plan(template: VlaPlan, stamp_ns: int) -> VlaPlan:
    """Return a copy of a real plan, stamped now, with NaN and Inf in its selected trajectory."""
    plan = VlaPlan()
    plan.header.frame_id = template.header.frame_id
    plan.header.stamp = to_time(stamp_ns)
    plan.trajectory = template.trajectory
    plan.confidence = template.confidence
    plan.trajectory.points[len(plan.trajectory.points) // 2].pose.position.x = math.nan
    plan.trajectory.points[-1].longitudinal_velocity_mps = math.inf
    return plan


class Campaign:
    """The pipeline's processes, this process's sensors, injector and listener, and the clock."""

    def __init__(self, workdir: Path, rig: RigConfig) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.sensors = SyntheticSensors(rig, 448, 256, context=self.context)
        self.listener = Listener(self.context)
        self.injector = Node('fault_injector', context=self.context)
        self.rogue = Node(ROGUE_NODE, context=self.context)  # a second, misconfigured planner
        for node in (self.sensors, self.listener, self.injector, self.rogue):
            self.executor.add_node(node)
        self.rogue_publisher = self.rogue.create_publisher(Trajectory, 'vla/trajectory', RELIABLE)
        self.plan_publisher = self.injector.create_publisher(VlaPlan, 'vla/plan', RELIABLE)
        self.instruction_publisher = self.injector.create_publisher(
            Instruction, INSTRUCTION_TOPIC, LATCHED
        )
        self.obstacle_publisher = self.injector.create_publisher(
            ObstacleArray, OBSTACLES_TOPIC, RELIABLE
        )
        self.camera_names = rig.names
        bringup = load_bringup('pipeline')
        values = {**argument_defaults(bringup), 'log_level': 'warn'}
        self.commands = {node.name: node_command(node, values, workdir) for node in bringup.nodes}
        self.processes = {name: subprocess.Popen(cmd) for name, cmd in self.commands.items()}
        self.killed: set[str] = set()
        self.notes: list[str] = []  # what a fault's injection reports, for its row
        self.violations: list[str] = []  # unsafe outcomes a fault's injection saw itself
        self.detected_ns: int | None = None  # when an injection saw its own fault refused
        self.payload: bytes = b''  # a serialized message a fault's `prepare` built
        self.fault_started_ns = 0  # when the fault under way was injected, for its own judging
        self._timers: list = []

    def now_ns(self) -> int:
        """Return the time of the pipeline's clocks (system time)."""
        return self.sensors.get_clock().now().nanoseconds

    def spin_for(self, seconds: float) -> None:
        """Let every callback run for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until `condition()` holds; False after `timeout_s`."""
        end = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > end:
                return False
            self.executor.spin_once(timeout_sec=0.02)
        return True

    def crashed(self) -> list[str]:
        """Pipeline processes that exited without being killed by a fault."""
        return [
            f'{name} (exit {p.returncode})'
            for name, p in self.processes.items()
            if p.poll() is not None and name not in self.killed
        ]

    def rogue_sources(self) -> set[bytes]:
        """GIDs of this campaign's own publishers on vla/trajectory: not the pipeline's output."""
        return {
            bytes(endpoint.endpoint_gid)
            for endpoint in self.injector.get_publishers_info_by_topic('vla/trajectory')
            if endpoint.node_name == ROGUE_NODE
        }

    def publish_instruction(self, text: str) -> None:
        """Publish an instruction as the operator would (latched)."""
        message = Instruction(id='fault', text=text, source=Instruction.SOURCE_OPERATOR)
        message.header.stamp = to_time(self.now_ns())
        self.instruction_publisher.publish(message)

    def every(self, period_s: float, callback: Callable[[], None]) -> None:
        """Run `callback` on a timer until the fault is cleared (stop_timers)."""
        self._timers.append(self.injector.create_timer(period_s, callback))

    def stop_timers(self) -> None:
        """Stop what `every` started."""
        for timer in self._timers:
            self.injector.destroy_timer(timer)
        self._timers.clear()

    def signal_node(self, name: str, number: int) -> None:
        """Send a signal to a pipeline process."""
        os.kill(self.processes[name].pid, number)

    def kill_node(self, name: str) -> None:
        """Kill a pipeline process outright, as a crash would."""
        self.killed.add(name)
        self.signal_node(name, signal.SIGKILL)
        self.processes[name].wait()

    def restart_node(self, name: str) -> None:
        """Start a killed pipeline process again, as a supervisor would."""
        self.processes[name] = subprocess.Popen(self.commands[name])
        self.killed.discard(name)

    def set_parameter(self, node: str, name: str, value: ParameterValue) -> tuple[bool, str]:
        """Set one parameter through the node's service; return (accepted, reason)."""
        client = self.injector.create_client(SetParameters, f'/{node}/set_parameters')
        try:
            if not client.wait_for_service(timeout_sec=5.0):
                return False, f'{node} offers no set_parameters service'
            future = client.call_async(
                SetParameters.Request(parameters=[Parameter(name=name, value=value)])
            )
            if not self.spin_until(future.done, 5.0):
                return False, 'no answer within 5 s'
            result = future.result().results[0]
            return result.successful, result.reason
        finally:
            self.injector.destroy_client(client)

    def close(self) -> None:
        """Stop the pipeline's processes and this process's nodes."""
        stop_processes(self.processes, 'vla faults')
        self.executor.shutdown()
        for node in (self.sensors, self.listener, self.injector):
            node.destroy_node()
        self.context.try_shutdown()


def _silence(*inputs: str) -> tuple[Callable[[Campaign], None], Callable[[Campaign], None]]:
    return (
        lambda c: c.sensors.silent.update(inputs or c.camera_names),
        lambda c: c.sensors.silent.difference_update(inputs or c.camera_names),
    )


def _stamp_offset(seconds: float) -> tuple[Callable[[Campaign], None], Callable[[Campaign], None]]:
    def inject(c: Campaign) -> None:
        c.sensors.stamp_offset_ns = round(seconds * NS)

    def clear(c: Campaign) -> None:
        c.sensors.stamp_offset_ns = 0

    return inject, clear


def _malformed(kind: str) -> tuple[Callable[[Campaign], None], Callable[[Campaign], None]]:
    return (
        lambda c: c.sensors.malformed.update(front=kind),
        lambda c: c.sensors.malformed.pop('front', None),
    )


def _instruction(text: str) -> tuple[Callable[[Campaign], None], Callable[[Campaign], None]]:
    return (
        lambda c: c.publish_instruction(text),
        lambda c: c.publish_instruction(INSTRUCTION),
    )


def _instruction_flood(c: Campaign) -> None:
    c.fault_started_ns = c.now_ns()
    count = 0

    def publish() -> None:
        nonlocal count
        count += 1
        c.publish_instruction(f'Keep the lane and hold {count % 40 + 40} km/h.')

    c.every(1.0 / INSTRUCTION_FLOOD_HZ, publish)


def _rogue_trajectories(c: Campaign) -> None:
    """Publish the monitor's last trajectory at ROGUE_SPEED_MPS from a second node, 50 Hz."""
    c.fault_started_ns = c.now_ns()
    template = c.listener.trajectories[-1]

    def publish() -> None:
        message = Trajectory(header=template.header, origin=template.origin)
        message.header.stamp = to_time(c.now_ns())
        message.points = list(template.points)
        for point in message.points:
            point.longitudinal_velocity_mps = ROGUE_SPEED_MPS
        c.rogue_publisher.publish(message)

    publish()
    c.every(0.02, publish)


def commands_above_trusted(
    trajectories: list[Trajectory],
    sources: list[bytes],
    rogue: set[bytes],
    commands: list[ControlCommand],
    since_ns: int,
) -> list[float]:
    """Commanded speeds since `since_ns` above every trusted trajectory's (by a margin).

    A command no trusted trajectory asked for followed another source; never above the hard
    limit either way.
    """
    trusted = [
        point.longitudinal_velocity_mps
        for trajectory, source in zip(trajectories, sources, strict=True)
        if source not in rogue and stamp_to_ns(trajectory.header.stamp) >= since_ns
        for point in trajectory.points
    ]
    ceiling = min(max(trusted, default=0.0) + FOLLOW_TOLERANCE_MPS, SPEED_LIMIT_MPS)
    return [
        command.longitudinal.velocity
        for command in commands
        if stamp_to_ns(command.stamp) >= since_ns and not command.longitudinal.velocity <= ceiling
    ]


def commands_accelerating(commands: list[ControlCommand], since_ns: int) -> list[float]:
    """Positive commanded accelerations since `since_ns` (a stop must brake from its start)."""
    return [
        command.longitudinal.acceleration
        for command in commands
        if stamp_to_ns(command.stamp) >= since_ns and command.longitudinal.acceleration > 0.0
    ]


def _judge_commands_after_rogue(c: Campaign) -> None:
    """Stop the rogue; note every command that followed it."""
    c.stop_timers()
    listener = c.listener
    followed = commands_above_trusted(
        listener.trajectories,
        listener.trajectory_sources,
        c.rogue_sources(),
        listener.commands,
        c.fault_started_ns,
    )
    if followed:
        c.violations.append(
            f'{len(followed)} commands above the trusted speed (up to {max(followed):.1f} m/s)'
        )


def _freeze_monitor(c: Campaign) -> None:
    c.fault_started_ns = c.now_ns()
    c.signal_node('safety_monitor_node', signal.SIGSTOP)


def _thaw_monitor_and_judge_the_stop(c: Campaign) -> None:
    """Resume the monitor; note every command still accelerating once the stop was due."""
    c.signal_node('safety_monitor_node', signal.SIGCONT)
    late = commands_accelerating(c.listener.commands, c.fault_started_ns + round(STOP_FTT_S * NS))
    if late:
        c.violations.append(
            f'{len(late)} commands still accelerating {STOP_FTT_S} s into the freeze '
            f'(up to {max(late):.2f} m/s^2)'
        )


def plan_latency_note(latencies: list[tuple[int, float]], start_ns: int, end_ns: int) -> str:
    """Compare the plans' input-to-output latency during [start, end) with as long before it."""
    before = [ms for stamp, ms in latencies if 2 * start_ns - end_ns <= stamp < start_ns]
    during = [ms for stamp, ms in latencies if start_ns <= stamp < end_ns]

    def described(values: list[float]) -> str:
        if not values:
            return 'no plan'
        return f'{len(values)} plans, p50 {median(values):.1f} ms, max {max(values):.1f} ms'

    return f'plan latency during the fault: {described(during)}; before it: {described(before)}'


def _end_instruction_flood(c: Campaign) -> None:
    c.stop_timers()
    c.notes.append(plan_latency_note(c.listener.plan_latencies, c.fault_started_ns, c.now_ns()))
    c.publish_instruction(INSTRUCTION)


def _publish_nan_plans(c: Campaign) -> None:
    def publish() -> None:
        if c.listener.plan is not None:
            c.plan_publisher.publish(nan_plan(c.listener.plan, c.now_ns()))

    publish()
    c.every(0.05, publish)  # twice the plan rate: each real plan is followed by a bad one


def _flood(c: Campaign) -> None:
    def publish() -> None:
        message = ObstacleArray(source=ObstacleArray.SOURCE_FUSION)
        message.header.stamp, message.header.frame_id = to_time(c.now_ns()), 'base_link'
        for _ in range(FLOOD_PER_TICK):
            c.obstacle_publisher.publish(message)

    c.every(0.01, publish)


def _serialize_oversized_list(c: Campaign) -> None:
    """Serialize a list of OVERSIZED_OBSTACLES far-away cars once (0.2-0.4 s on two cores)."""
    far = Obstacle(id=1, classification=Obstacle.CLASS_CAR, existence_probability=1.0)
    far.pose.position.x, far.pose.orientation.w = 1000.0, 1.0
    far.dimensions.x, far.dimensions.y, far.dimensions.z = 4.5, 1.8, 1.5
    message = ObstacleArray(
        source=ObstacleArray.SOURCE_FUSION, obstacles=[far] * OVERSIZED_OBSTACLES
    )
    message.header.frame_id = 'base_link'
    c.payload = serialize_message(message)


def _oversized_lists(c: Campaign) -> None:
    """Replace the obstacle source by one sending the oversized list, restamped, at 10 Hz."""

    def publish() -> None:
        c.obstacle_publisher.publish(restamped(c.payload, c.now_ns()))

    c.sensors.silent.add('obstacles')
    publish()
    c.every(0.1, publish)


def _clear_oversized_lists(c: Campaign) -> None:
    c.stop_timers()
    c.sensors.silent.discard('obstacles')


def _double(value: float) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)


BAD_PARAMETERS = (  # (node, parameter, value): each must be refused at run time
    ('safety_monitor_node', 'degraded_max_speed_mps', 1000.0),  # outside its declared range
    ('safety_monitor_node', 'degraded_max_speed_mps', 50.0),  # in range, above the hard limit
    ('safety_monitor_node', 'degraded_max_speed_mps', math.nan),  # not a number
    ('safety_monitor_node', 'limits.speed_limit_mps', 100.0),  # a read-only limit
    ('sensor_sync_node', 'max_skew_s', -1.0),  # read-only while running
)


def _set_bad_parameters(c: Campaign) -> None:
    for node, name, value in BAD_PARAMETERS:
        accepted, reason = c.set_parameter(node, name, _double(value))
        if accepted:
            c.violations.append(f'{node} accepted {name} = {value}')
        else:
            c.notes.append(f'{node} {name}={value}: refused ({reason or "no reason given"})')
    c.detected_ns = c.now_ns()


def _nothing(_c: Campaign) -> None:
    """Nothing to undo: the refused parameters never took effect."""


INSTRUCTION_FLOOD_HZ = 50.0
"""Distinct instructions per second in the flood: one every 20 ms, faster than the encoder."""


def _control_characters() -> str:
    # A NUL ends the string on the wire (ROS strings are C strings), so it comes last.
    return 'keep\x1b[2J the\x07 lane\x7f and\x08 follow the road\x00 and then'


# (what the pipeline must do, the sign of detection) for an odd instruction, by its kind
INSTRUCTION_CLEANED = (
    'warned about by name; the cleaned (or default) instruction is used; driving goes on',
    ('instruction',),
)
INSTRUCTION_REFUSED = (
    'refused by name as not understood; the instruction in force stays; driving goes on',
    ('not understood',),
)

FAULTS = (
    Fault(
        'camera dropout',
        'the front camera stops publishing',
        'frames mark it MISSING; the monitor slows the car (DEGRADED or worse)',
        ('sensors.cameras',),
        NOT_NOMINAL,
        CAMERA_FTT_S,
        *_silence('front'),
    ),
    Fault(
        'frozen camera',
        'the front camera repeats its last image and stamp',
        'frames mark it STALE; DEGRADED or worse',
        ('sensors.cameras',),
        NOT_NOMINAL,
        CAMERA_FTT_S,
        lambda c: c.sensors.frozen.add('front'),
        lambda c: c.sensors.frozen.discard('front'),
    ),
    Fault(
        'all cameras lost',
        'every camera stops publishing',
        'no sensor frames: MINIMAL_RISK stop',
        ('freshness.sensor_frame', 'sensors.cameras'),
        STOPPED,
        AGE_FTT_S,
        *_silence(),
    ),
    Fault(
        'odometry lost',
        'odometry stops',
        'ego state too old: MINIMAL_RISK stop',
        ('odometry',),
        STOPPED,
        AGE_FTT_S,
        *_silence('odometry'),
    ),
    Fault(
        'NaN odometry',
        'odometry whose position and speed are NaN (a failed state estimator)',
        'refused by name everywhere; the ego state goes stale: MINIMAL_RISK stop',
        ('odometry',),
        STOPPED,
        AGE_FTT_S,
        lambda c: setattr(c.sensors, 'nan_odometry', True),
        lambda c: setattr(c.sensors, 'nan_odometry', False),
    ),
    Fault(
        'timestamps jump backward',
        'every sensor stamp jumps 5 s into the past',
        'inputs too old: MINIMAL_RISK stop; the sync matcher resets',
        ('freshness',),
        STOPPED,
        AGE_FTT_S,
        *_stamp_offset(-5.0),
    ),
    Fault(
        'clock jump forward',
        'every sensor stamp jumps 2 s into the future',
        'inputs from the future refused: MINIMAL_RISK stop',
        ('future',),
        STOPPED,
        AGE_FTT_S,
        *_stamp_offset(2.0),
    ),
    Fault(
        'duplicate stamps',
        'every image is published twice',
        'duplicates ignored; driving goes on',
        (),
        frozenset(),
        0.0,
        lambda c: setattr(c.sensors, 'copies', 2),
        lambda c: setattr(c.sensors, 'copies', 1),
    ),
    Fault(
        'NaN/Inf plan',
        'plans with a NaN pose and an Inf speed on vla/plan, 20 Hz, among the real ones',
        'refused by sanity.finite, never published; the last valid plan is held (OVERRIDE)',
        ('sanity.finite',),
        HOLDING,
        INVALID_PLAN_FTT_S,
        _publish_nan_plans,
        Campaign.stop_timers,
        hold=False,
    ),
    Fault(
        'inference latency spike',
        'vla_inference_node frozen (SIGSTOP) for 1.0 s, then resumed',
        'plan too old: the last plan is held (OVERRIDE), a stop if it lasts',
        ('freshness.plan',),
        HOLDING,
        AGE_FTT_S,
        lambda c: c.signal_node('vla_inference_node', signal.SIGSTOP),
        lambda c: c.signal_node('vla_inference_node', signal.SIGCONT),
        duration_s=1.0,
    ),
    Fault(
        'inference node killed',
        'vla_inference_node killed (SIGKILL), restarted after 3 s',
        'plans lost: hold, then a MINIMAL_RISK stop by plan_lost_s',
        ('freshness.plan',),
        STOPPED,
        PLAN_LOST_FTT_S,
        lambda c: c.kill_node('vla_inference_node'),
        lambda c: c.restart_node('vla_inference_node'),
        duration_s=3.0,
        recovery_timeout_s=RESTART_RECOVERY_TIMEOUT_S,
    ),
    Fault(
        'obstacle source lost',
        'the obstacle list stops',
        'no independent obstacle check: MINIMAL_RISK stop',
        ('freshness.obstacles',),
        STOPPED,
        AGE_FTT_S,
        *_silence('obstacles'),
    ),
    Fault(
        'oversized obstacle lists',
        f'the obstacle source sends lists of {OVERSIZED_OBSTACLES} obstacles, 10 Hz, on '
        f'{OBSTACLES_TOPIC}',
        'refused by name (max_obstacles); the obstacle input goes stale: MINIMAL_RISK stop',
        ('more than max_obstacles', 'freshness.obstacles'),
        STOPPED,
        AGE_FTT_S,
        _oversized_lists,
        _clear_oversized_lists,
        prepare=_serialize_oversized_list,
    ),
    Fault(
        'message flood',
        f'{FLOOD_PER_TICK * 100} obstacle lists per second on {OBSTACLES_TOPIC}',
        'no crash; the monitor keeps cycling',
        (),
        frozenset(),
        0.0,
        _flood,
        Campaign.stop_timers,
    ),
    *(
        Fault(
            f'malformed image: {kind}',
            f'the front camera sends {text}',
            'refused by sensor sync (INVALID); DEGRADED or worse',
            ('dropped input', 'sensors.cameras'),
            NOT_NOMINAL,
            CAMERA_FTT_S,
            *_malformed(kind),
        )
        for kind, text in (
            ('size', 'images with half the data their size needs'),
            ('encoding', "images in an encoding no one reads ('yuv_unheard_of')"),
            ('giant', 'images claiming 100000 x 100000 px'),
            ('empty', 'empty images (0 x 0, no data)'),
        )
    ),
    *(
        Fault(
            f'instruction: {kind}',
            f'the operator sends {text}',
            *outcome,
            frozenset(),
            1.0,
            *_instruction(instruction),
        )
        for kind, text, instruction, outcome in (
            ('empty', 'an empty instruction', '', INSTRUCTION_CLEANED),
            ('1 MB', 'a 1 MB instruction', 'keep the lane ' * 75_000, INSTRUCTION_CLEANED),
            (
                'control characters',
                'ESC, BEL, DEL, BS and NUL inside',
                _control_characters(),
                INSTRUCTION_CLEANED,
            ),
            (
                'not English',
                'a Chinese instruction',
                '左转，然后在下一个出口离开高速公路',
                INSTRUCTION_REFUSED,
            ),
            ('emoji', '5000 emoji', '🚗💨' * 2500, INSTRUCTION_REFUSED),
        )
    ),
    Fault(
        'instruction flood',
        f'{INSTRUCTION_FLOOD_HZ:.0f} distinct instructions per second',
        'frames never wait for the encoder: the newest instruction wins; driving goes on',
        (),
        frozenset(),
        0.0,
        _instruction_flood,
        _end_instruction_flood,
        duration_s=10.0,  # about 100 plans to set against the 10 s before
    ),
    Fault(
        'rogue trajectory publisher',
        f'a second node sends trajectories at {ROGUE_SPEED_MPS:.0f} m/s on vla/trajectory, 50 Hz',
        'refused by source, named; the commands follow the monitor only',
        ('trajectory refused',),
        frozenset(),
        1.0,
        _rogue_trajectories,
        _judge_commands_after_rogue,
    ),
    Fault(
        'frozen monitor',
        'safety_monitor_node frozen (SIGSTOP) for 2.5 s, then resumed',
        'the output node stops following after trajectory_timeout_s: braking, never accelerating',
        ('stopping',),
        frozenset(),
        STOP_FTT_S,
        _freeze_monitor,
        _thaw_monitor_and_judge_the_stop,
    ),
    Fault(
        'sync node killed',
        'sensor_sync_node killed (SIGKILL), restarted after 3 s',
        'no sensor frames: MINIMAL_RISK stop',
        ('freshness.sensor_frame',),
        STOPPED,
        AGE_FTT_S,
        lambda c: c.kill_node('sensor_sync_node'),
        lambda c: c.restart_node('sensor_sync_node'),
        duration_s=3.0,
        recovery_timeout_s=RESTART_RECOVERY_TIMEOUT_S,
    ),
    Fault(
        'out-of-range parameter',
        'at run time: ' + '; '.join(f'{n} {p} := {v}' for n, p, v in BAD_PARAMETERS),
        'every change refused with a reason; the nodes keep running',
        (),
        frozenset(),
        1.0,
        _set_bad_parameters,
        _nothing,
        duration_s=0.5,
    ),
)
FAULT_NAMES = tuple(fault.name for fault in FAULTS)


def _stamp(message: SafetyStatus | Trajectory | Log) -> int:
    return stamp_to_ns(message.stamp if isinstance(message, Log) else message.header.stamp)


def _shows(text: str, signs: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(sign in lowered for sign in signs)


def settle(c: Campaign) -> int:
    """Wait until the monitor holds one state for 1 s (NOMINAL preferred); return that state."""

    def steady(state: int | None = None) -> bool:
        recent = c.listener.statuses[-10:]
        states = {s.state for s in recent}
        return len(recent) == 10 and len(states) == 1 and (state is None or state in states)

    if c.spin_until(lambda: steady(NOMINAL), SETTLE_TIMEOUT_S):
        return NOMINAL
    if not c.spin_until(steady, SETTLE_TIMEOUT_S):
        raise RuntimeError('the monitor never settled in one state for 1 s')
    return c.listener.statuses[-1].state


def run_fault(c: Campaign, fault: Fault) -> FaultResult:
    """Inject one fault into the settled pipeline, hold it, clear it; measure the response."""
    if fault.prepare is not None:
        fault.prepare(c)
    baseline = settle(c)
    listener = c.listener
    first_status, first_trajectory, first_log = (
        len(listener.statuses),
        len(listener.trajectories),
        len(listener.logs),
    )
    c.notes, c.violations, c.detected_ns = [], [], None
    if baseline != NOMINAL:
        c.notes.append(f'the monitor settled in {SafetyState(baseline).name} before the fault')
    injected_ns = c.now_ns()
    fault.inject(c)
    c.spin_for(max(fault.duration_s, fault.ftt_s + 0.5))
    cleared_ns = c.now_ns()
    fault.clear(c)

    def recovered() -> bool:
        return any(
            _stamp(s) > cleared_ns and s.state == baseline
            for s in listener.statuses[first_status:]
        )

    c.spin_until(recovered, fault.recovery_timeout_s)
    statuses = [s for s in listener.statuses[first_status:] if _stamp(s) >= injected_ns]
    signs = tuple(sign.lower() for sign in fault.signs)
    evidence = [
        _stamp(s)
        for s in statuses
        if any(
            check.verdict and _shows(f'{check.rule} {check.reason}', signs) for check in s.checks
        )
    ]
    evidence += [
        _stamp(log)
        for log in listener.logs[first_log:]
        if _stamp(log) >= injected_ns and _shows(log.msg, signs)
    ]
    if c.detected_ns is not None:
        evidence.append(c.detected_ns)
    detected_ns = min(evidence) if evidence else None
    if fault.safe_states:
        safe_ns = next((_stamp(s) for s in statuses if s.state in fault.safe_states), None)
    elif signs or c.detected_ns is not None:
        safe_ns = detected_ns  # the refusal is the safe action
    else:
        safe_ns = injected_ns  # nothing to refuse: going on is the safe behaviour
    rogue = c.rogue_sources()
    unsafe_count = sum(
        unsafe(trajectory)
        for trajectory, source in zip(
            listener.trajectories[first_trajectory:],
            listener.trajectory_sources[first_trajectory:],
            strict=True,
        )
        if source not in rogue
    )
    if fault.safe_states and fault.hold:
        deadline_ns = injected_ns + round(fault.ftt_s * NS)
        unsafe_count += sum(
            deadline_ns <= _stamp(s) < cleared_ns and s.state not in fault.safe_states
            for s in statuses
        )
    unsafe_count += len(c.violations)
    back_ns = next(
        (_stamp(s) for s in statuses if _stamp(s) > cleared_ns and s.state == baseline), None
    )

    def since(start_ns: int, stamp_ns: int | None) -> float | None:
        return None if stamp_ns is None else round((stamp_ns - start_ns) / NS, 3)

    safe_s = since(injected_ns, safe_ns)
    return FaultResult(
        fault=fault.name,
        injection=fault.injection,
        expected=fault.expected,
        ftt_s=fault.ftt_s,
        detected_s=since(injected_ns, detected_ns),
        safe_s=safe_s,
        within_ftt=safe_s is not None and safe_s <= fault.ftt_s,
        recovered_s=since(cleared_ns, back_ns),
        unsafe_trajectories=unsafe_count,
        crashed=c.crashed(),
        notes=[*c.notes, *c.violations],
    )


def _seconds(value: float | None) -> str:
    return '—' if value is None else f'{value:.2f}'


def markdown_table(results: list[FaultResult]) -> str:
    """Return the campaign's results as the table docs/RELIABILITY.md holds."""
    header = (
        'fault',
        'injected',
        'expected safe behaviour',
        'detected s',
        'safe s',
        'FTT s',
        'recovered s',
        'unsafe',
        'crash',
        'result',
    )
    rows = [
        (
            r.fault,
            r.injection,
            r.expected,
            _seconds(r.detected_s),
            _seconds(r.safe_s),
            f'{r.ftt_s:.1f}',
            _seconds(r.recovered_s),
            r.unsafe_trajectories,
            ', '.join(r.crashed) or 'none',
            'pass' if r.passed else 'FAIL',
        )
        for r in results
    ]
    return reports.markdown_table(header, rows)


def run(names: list[str] | None, json_path: Path | None) -> list[FaultResult]:
    """Run the campaign (every fault, or those named), print the table, write JSON if asked."""
    unknown = sorted(set(names or ()) - set(FAULT_NAMES))
    if unknown:
        raise ValueError(
            f'unknown fault(s) {", ".join(unknown)}: choose from {", ".join(FAULT_NAMES)}'
        )
    os.environ.setdefault(
        'FASTDDS_DEFAULT_PROFILES_FILE', str(vla_ros_file('config/fastdds_large_data.xml'))
    )
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    faults = [f for f in FAULTS if not names or f.name in names]
    machine = machine_line()
    print(f'vla faults: {len(faults)} fault(s) into the running pipeline; {machine}', flush=True)
    results: list[FaultResult] = []
    with tempfile.TemporaryDirectory(prefix='vla_faults_') as directory:
        campaign = Campaign(Path(directory), RigConfig.from_file(default_rig_path()))
        try:
            if not campaign.spin_until(lambda: bool(campaign.listener.plan), STARTUP_TIMEOUT_S):
                raise RuntimeError(f'no plan within {STARTUP_TIMEOUT_S:.0f} s of start')
            for index, fault in enumerate(faults, 1):
                print(f'  [{index}/{len(faults)}] {fault.name} ...', end='', flush=True)
                result = run_fault(campaign, fault)
                results.append(result)
                print(
                    f' detected {_seconds(result.detected_s)} s, safe {_seconds(result.safe_s)} s'
                    f' (FTT {result.ftt_s:.1f} s), recovered {_seconds(result.recovered_s)} s: '
                    f'{"pass" if result.passed else "FAIL"}',
                    flush=True,
                )
                if result.crashed:
                    break
        finally:
            campaign.close()
    print(markdown_table(results))
    for r in results:
        if r.notes:
            print(f'- {r.fault}: {"; ".join(r.notes)}')
    failed = [r.fault for r in results if not r.passed]
    print(
        f'{len(results) - len(failed)}/{len(results)} faults handled safely'
        + (f'; FAILED: {", ".join(failed)}' if failed else '')
    )
    if json_path is not None:
        write_json(
            json_path,
            {
                'campaign': 'faults',
                'machine': machine,
                'results': [{**asdict(r), 'passed': r.passed} for r in results],
            },
        )
    return results
