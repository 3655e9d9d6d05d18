"""sim_bridge_node: the simulator on ROS topics, stepped by the stack's own control commands.

A thin wrapper over SimulationCore: every frame goes out through vla_sim.sim_messages (the
recorder's conversions too) — camera images and CameraInfo, odometry, the simulated radar's
obstacles, the BEV ground truth, the expert's rationale label, the episode's instruction — and
then /clock, last, so that a node on sim time that acts on the tick finds the frame already
sent. The node itself runs on wall time (it is the clock); `use_sim_time` is refused.

Modes:
- lockstep: after the frame at stamp t is published, the world advances one step when a valid
  ControlCommand stamped >= t arrives, or, failing that, when `lockstep_timeout_s` of wall time
  has passed (the last valid command is held and a timeout counted). Runs are deterministic and
  independent of machine speed. An episode starts once a publisher of the command topic exists,
  so a driver that starts late does not miss the first frames. With `plan_topic` set (the sim
  bring-up sets vla/plan), the first episode also waits for a planner, and each step also waits
  for the VlaPlan of the current frame: the world never runs ahead of the model. The command
  that steps it was computed on the clock tick of the frame, by the monitor and controller
  timers, from the plan before: one frame (100 ms) of pipeline latency, as on a vehicle.
- realtime: a wall-clock timer steps every `step_s` with the latest valid command.
In both, a command stamped before the current frame is ignored and counted (stale), and one
with an unusable value is refused with the reason logged; the last valid command is held.

Published (QoS from vla_ros.qos):
- <camera topic>/image_raw (sensor_msgs/Image rgb8), SENSOR_DATA; <camera topic>/camera_info
  (sensor_msgs/CameraInfo), LATCHED: every rig camera, when `render` is on
- /localization/kinematic_state (nav_msgs/Odometry, odom -> base_link), RELIABLE
- /perception/obstacles (vla_msgs/ObstacleArray in odom, SOURCE_SIMULATION), RELIABLE
- /vla/instruction (vla_msgs/Instruction), LATCHED, once per episode
- /sim/bev/<class> (nav_msgs/OccupancyGrid in base_link), RELIABLE, when `publish_bev` is on
- /map/prior/<layer> (nav_msgs/OccupancyGrid in base_link: lane_centreline, drivable,
  route_lanes), RELIABLE: the HD-map layers and the route a map server would rasterise around
  the ego, the model's map-prior input
- /sim/expert/rationale (std_msgs/String), RELIABLE
- /clock (rosgraph_msgs/Clock), RELIABLE; /diagnostics, RELIABLE, every second of wall time
Subscribed: /vla/control_command (vla_msgs/ControlCommand), RELIABLE; `plan_topic`
(vla_msgs/VlaPlan), RELIABLE, in lockstep when set.

CameraInfo goes out with every image, at the image's stamp, on a latched publisher: consumers
that pair images with CameraInfo by stamp get a match for each, and a late joiner gets one at
once. Episodes follow one another from `seed` (seed, seed + 1, ...); the clock never goes back:
each episode's stamps continue one step after the previous episode's last frame.
"""

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from vla_msgs.msg import ControlCommand, VlaPlan

from vla_perception.rig import RigConfig
from vla_perception.synchronizer import stamp_to_ns
from vla_ros.diagnostics import OK, WARN, diagnostic_array, diagnostic_status
from vla_ros.install_paths import vla_ros_file
from vla_ros.node_main import run_node
from vla_ros.parameters import ParameterSpec, declare_parameters
from vla_ros.qos import RELIABLE
from vla_ros.stamps import to_time
from vla_ros.topics import CONTROL_COMMAND_TOPIC, INSTRUCTION_TOPIC
from vla_sim.instructions import Split
from vla_sim.scenarios import SCENARIOS, get_scenario
from vla_sim.sim_messages import (
    command_from_message,
    frame_messages,
    frame_topics,
    instruction_message,
)
from vla_sim.simulation import NS_PER_S, START_TIME_NS, SimConfig, SimFrame, SimulationCore
from vla_sim.world import VehicleCommand

MODES = ('lockstep', 'realtime')
SIM_DEFAULTS = SimConfig()
PARAMETERS = [
    ParameterSpec('scenario', 'highway', f'Scenario to run: one of {", ".join(SCENARIOS)}.'),
    ParameterSpec('seed', 0, 'Seed of the first episode; episode k runs seed + k.', 0, 2**31 - 1),
    ParameterSpec('episodes', 1, 'Episodes to run one after another, then idle.', 1, 1_000_000),
    ParameterSpec(
        'split', Split.TRAIN.value, 'Instruction paraphrases: train, validation or test.'
    ),
    ParameterSpec('rig_file', '', 'Camera rig YAML; empty: the installed rig_surround.yaml.'),
    ParameterSpec('mode', 'lockstep', 'lockstep: step on each command; realtime: wall clock.'),
    ParameterSpec('step_s', SIM_DEFAULTS.step_s, 'Simulated time per step, s.', 0.01, 1.0),
    ParameterSpec(
        'lockstep_timeout_s',
        2.0,
        'lockstep: wall time to wait for a command before stepping with the last one, s.',
        0.01,
        600.0,
    ),
    ParameterSpec(
        'plan_topic',
        '',
        "lockstep: the pipeline's vla_msgs/VlaPlan topic (vla/plan). The first episode waits for "
        'a publisher on it (the model is loaded), and each step waits for the plan of the '
        'current frame as well as a command; empty: step on each command.',
    ),
    ParameterSpec('render', SIM_DEFAULTS.render, 'Render and publish the camera images.'),
    ParameterSpec('publish_bev', True, 'Publish the BEV ground truth on /sim/bev/<class>.'),
    ParameterSpec(
        'obstacle_range_m', SIM_DEFAULTS.obstacle_range_m, 'Radar range, m.', 1.0, 1000.0
    ),
    ParameterSpec(
        'obstacle_position_noise_m',
        SIM_DEFAULTS.obstacle_position_noise_m,
        'One-sigma noise on obstacle positions, m.',
        0.0,
        10.0,
    ),
    ParameterSpec(
        'obstacle_velocity_noise_mps',
        SIM_DEFAULTS.obstacle_velocity_noise_mps,
        'One-sigma noise on obstacle velocities, m/s.',
        0.0,
        10.0,
    ),
    ParameterSpec(
        'obstacle_dropout',
        SIM_DEFAULTS.obstacle_dropout,
        'Probability that an obstacle is missing from a frame.',
        0.0,
        1.0,
    ),
]
DIAGNOSTICS_PERIOD_S = 1.0
DRIVER_POLL_PERIOD_S = 0.05


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f'parameter {name}: {value!r} is not one of {", ".join(choices)}')
    return value


def episode_outcome(core: SimulationCore) -> str:
    """Why an episode ended, for the log."""
    if core.world.collided:
        return 'collision'
    if core.world.off_road:
        return 'off-road'
    return 'time limit'


class SimBridgeNode(Node):
    """Publish SimulationCore frames and step the world with the ControlCommands received."""

    def __init__(self, **kwargs) -> None:
        super().__init__('sim_bridge_node', **kwargs)
        if self.get_parameter('use_sim_time').value:
            raise ValueError('sim_bridge_node publishes /clock and cannot itself use sim time')
        params = declare_parameters(self, PARAMETERS)
        try:
            self.scenario = get_scenario(params['scenario'])
        except KeyError as error:
            raise ValueError(f'parameter scenario: {error.args[0]}') from None
        split = _choice('split', params['split'], tuple(split.value for split in Split))
        self.split = Split(split)
        self.mode = _choice('mode', params['mode'], MODES)
        rig_file = params['rig_file'] or vla_ros_file('config/rig_surround.yaml')
        self.rig = RigConfig.from_file(rig_file)
        compressed = [spec.name for spec in self.rig.cameras if spec.compressed]
        if compressed:
            raise ValueError(
                f'rig file {rig_file}: cameras {", ".join(compressed)} use compressed transport; '
                'the bridge publishes raw images (image_raw), so set transport: raw'
            )
        self.config = SimConfig(
            step_s=params['step_s'],
            render=params['render'],
            obstacle_range_m=params['obstacle_range_m'],
            obstacle_position_noise_m=params['obstacle_position_noise_m'],
            obstacle_velocity_noise_mps=params['obstacle_velocity_noise_mps'],
            obstacle_dropout=params['obstacle_dropout'],
        )
        self.first_seed, self.episodes = params['seed'], params['episodes']
        self.publish_bev = params['publish_bev']
        self.plan_topic = params['plan_topic']
        self._planned = self._commanded = False  # for the current frame
        self._step_ns = round(self.config.step_s * NS_PER_S)

        self.episode = 0
        self.core = self._new_core()
        self._offset_ns = 0  # added to the core's stamps so that the clock never goes back
        self._published = False  # the current frame has been published
        self._command = VehicleCommand()
        self.steps = self.timeouts = self.commands_received = 0
        self.commands_stale = self.commands_rejected = 0
        self.last_rejection = ''
        self._step_wall_s: list[float] = []
        self._problems_reported = 0  # timeouts + refused commands at the last diagnostics

        bev_classes = self.core.frame.bev if self.publish_bev else ()
        self.publishers_by_topic = {
            topic: self.create_publisher(message_type, topic, qos)
            for topic, (message_type, qos) in frame_topics(self.rig, bev_classes).items()
            if topic != CONTROL_COMMAND_TOPIC
        }
        self.diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', RELIABLE
        )
        self.create_subscription(ControlCommand, CONTROL_COMMAND_TOPIC, self._on_command, RELIABLE)
        if self.plan_topic and self.mode == 'lockstep':
            self.create_subscription(VlaPlan, self.plan_topic, self._on_plan, RELIABLE)

        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self.mode == 'lockstep':
            self._step_timer = self.create_timer(  # started by each frame's publication
                params['lockstep_timeout_s'],
                self._on_lockstep_timeout,
                clock=steady,
                autostart=False,
            )
            self._driver_timer = self.create_timer(
                DRIVER_POLL_PERIOD_S, self._start_when_driven, clock=steady
            )
        else:
            self._step_timer = self.create_timer(self.config.step_s, self._step, clock=steady)
            self._start_episode()
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics, clock=steady)
        self.get_logger().info(
            f'{self.mode}: scenario {self.scenario.name}, seeds {self.first_seed}..'
            f'{self.first_seed + self.episodes - 1}, step {self.config.step_s} s, '
            f'{len(self.rig.cameras) if self.config.render else 0} cameras, commands on '
            f'{CONTROL_COMMAND_TOPIC}'
        )

    @property
    def seed(self) -> int:
        """Seed of the current episode."""
        return self.first_seed + self.episode

    @property
    def stamp_ns(self) -> int:
        """Stamp of the current frame, as published."""
        return self.core.frame.stamp_ns + self._offset_ns

    @property
    def idle(self) -> bool:
        """Every episode has ended; nothing more is published but diagnostics."""
        return self.core.done and self.episode == self.episodes - 1

    def _new_core(self) -> SimulationCore:
        return SimulationCore(self.scenario, self.seed, self.rig, self.config, self.split)

    def _start_when_driven(self) -> None:
        topics = [CONTROL_COMMAND_TOPIC, self.plan_topic]
        if any(self.count_publishers(topic) == 0 for topic in topics if topic):
            return
        self._driver_timer.cancel()
        self._start_episode()

    def _start_episode(self) -> None:
        stamp = self.stamp_ns
        self.publishers_by_topic[INSTRUCTION_TOPIC].publish(
            instruction_message(self.core.instruction, stamp, self.seed)
        )
        self.get_logger().info(
            f'episode {self.episode + 1}/{self.episodes}: {self.scenario.name} seed {self.seed}, '
            f'instruction {self.core.instruction.text!r}'
        )
        self._publish(self.core.frame)

    def _publish(self, frame: SimFrame) -> None:
        stamp = frame.stamp_ns + self._offset_ns
        rationale = self.core.expert_decision().rationale_text
        for topic, message in frame_messages(
            frame, self.rig, self.core.bev_grid, rationale, stamp, self.publish_bev
        ):
            self.publishers_by_topic[topic].publish(message)
        self._published = True
        if self.mode == 'lockstep':
            self._step_timer.reset()

    def _on_command(self, message: ControlCommand) -> None:
        self.commands_received += 1
        if not self._published or stamp_to_ns(message.stamp) < self.stamp_ns:
            self.commands_stale += 1  # it answers an earlier frame (or none published yet)
            return
        try:
            self._command = command_from_message(message)
        except ValueError as error:
            self.commands_rejected += 1
            self.last_rejection = str(error)
            self.get_logger().warning(
                f'{error}; holding the last valid command ({self.commands_rejected} refused)',
                throttle_duration_sec=1.0,
            )
            return
        if self.mode == 'lockstep':
            self._commanded = True
            if self._planned or not self.plan_topic:
                self._step()

    def _on_plan(self, message: VlaPlan) -> None:
        if not self._published or stamp_to_ns(message.header.stamp) < self.stamp_ns:
            return  # the plan of an earlier frame
        self._planned = True
        if self._commanded:
            self._step()

    def _on_lockstep_timeout(self) -> None:
        self.timeouts += 1
        self.get_logger().warning(
            f'no valid command stamped >= {self.stamp_ns / NS_PER_S:.3f} s within the lockstep '
            f'timeout: stepping with the last one ({self.timeouts} timeouts)',
            throttle_duration_sec=5.0,
        )
        self._step()

    def _step(self) -> None:
        """Advance one step with the held command, publish the frame, and end the episode.

        Its wall time (simulation, rendering and publishing) is what diagnostics report.
        """
        if self.core.done:
            return
        self._published = self._planned = self._commanded = False
        start = time.perf_counter()
        frame = self.core.step(self._command)
        self._publish(frame)
        self._step_wall_s.append(time.perf_counter() - start)
        self.steps += 1
        if self.core.done:
            self._end_episode()

    def _end_episode(self) -> None:
        core = self.core
        self.get_logger().info(
            f'episode {self.episode + 1}/{self.episodes} (seed {self.seed}) ended: '
            f'{episode_outcome(core)} at {core.world.time_s:.1f} s after {core.steps} steps'
        )
        if self.idle:
            self._step_timer.cancel()
            self.get_logger().info(f'all {self.episodes} episodes done; idle')
            return
        self._offset_ns = self.stamp_ns + self._step_ns - START_TIME_NS
        self.episode += 1
        self.core = self._new_core()
        self._command = VehicleCommand()
        self._start_episode()

    def _publish_diagnostics(self) -> None:
        wall, self._step_wall_s = self._step_wall_s, []
        if self.idle:
            state = 'idle: all episodes done'
        elif not self._published:
            state = f'waiting for a driver on {CONTROL_COMMAND_TOPIC}'
        else:
            state = f'running episode {self.episode + 1}/{self.episodes}'
        values = {
            'mode': self.mode,
            'scenario': self.scenario.name,
            'seed': self.seed,
            'episode': self.episode + 1,
            'sim_time_s': self.stamp_ns / NS_PER_S,
            'steps': self.steps,
            'timeouts': self.timeouts,
            'commands_received': self.commands_received,
            'commands_stale': self.commands_stale,
            'commands_rejected': self.commands_rejected,
            'last_rejection': self.last_rejection or 'none',
            'step_wall_ms_mean': 1e3 * sum(wall) / len(wall) if wall else float('nan'),
            'step_wall_ms_max': 1e3 * max(wall) if wall else float('nan'),
        }
        problems = self.timeouts + self.commands_rejected
        level = WARN if problems > self._problems_reported else OK
        self._problems_reported = problems
        self.diagnostics_publisher.publish(
            diagnostic_array(
                to_time(self.get_clock().now().nanoseconds),
                [
                    diagnostic_status(
                        'sim_bridge_node: simulation', 'vla_ros', level, state, values
                    )
                ],
            )
        )


def main(args: list[str] | None = None) -> None:
    """Run sim_bridge_node until shut down."""
    run_node(SimBridgeNode, 'sim_bridge_node', args)


if __name__ == '__main__':
    main()
