"""The vehicle end of every simulated driver: the safety monitor and the tracking controller.

Whatever plans (the camera pipeline, the privileged teacher), its VlaPlan goes through the cores
that `safety_monitor_node` and `trajectory_output_node` wrap, through those nodes' own message
conversions and parameter defaults, once per simulator step at the frame's stamp; so every
planner is judged and driven by the same monitor and controller, and compared on equal terms.
"""

from __future__ import annotations

import logging

import numpy as np
from nav_msgs.msg import Odometry
from vla_msgs.msg import ObstacleArray, SensorStatus, Trajectory, VlaPlan

from vla_model.trajectory_messages import trajectory_arrays
from vla_planning import safety_monitor_node, trajectory_output_node
from vla_planning.safety_monitor import MonitorOutput, Origin, SafetyMonitor
from vla_planning.safety_monitor_node import (
    MonitorFeed,
    failing_reasons,
    monitor_config,
    monitor_trajectory_message,
)
from vla_planning.tracking_controller import Command, TrackingController
from vla_planning.trajectory_output_node import (
    control_command_message,
    control_step,
    controller_config,
    ego_pose,
    stamped_path,
)
from vla_ros.parameters import parameter_defaults
from vla_ros.stamps import to_time
from vla_sim.sim_messages import command_from_message
from vla_sim.simulation import NS_PER_S
from vla_sim.world import VehicleCommand

LOG = logging.getLogger(__name__)
FOLLOWS_MODEL = (Origin.MODEL, Origin.MODEL_SPEED_CLAMPED)
"""Trajectory origins that are the model's own plan: its rationale stands."""


def refused(kind: str, reason: str) -> None:
    """Log a message the safety monitor refused, as its node does."""
    LOG.error('%s message refused: %s', kind, reason)


class SafetyLoop:
    """One episode's safety monitor and tracking controller, fed as their nodes are."""

    def __init__(self, enforce: bool = True) -> None:
        """`enforce` False runs the monitor log-only (its `enforce` parameter)."""
        monitor = {**parameter_defaults(safety_monitor_node.PARAMETERS), 'enforce': enforce}
        self.monitor = SafetyMonitor(monitor_config(monitor))
        self.feed = MonitorFeed(self.monitor, monitor['max_plan_points'], refused)
        self.controller = TrackingController(
            controller_config(parameter_defaults(trajectory_output_node.PARAMETERS))
        )

    def judge(
        self,
        odometry: Odometry,
        obstacles: ObstacleArray,
        status: SensorStatus | None,
        plan: VlaPlan | None,
        stamp: int,
    ) -> tuple[MonitorOutput, Trajectory]:
        """Give the monitor this step's inputs, run one cycle at the frame stamp, publish it."""
        feed = self.feed
        feed.odometry(odometry)
        feed.obstacles(obstacles)
        if status is not None:
            feed.sensor_status(status)
        if plan is not None:
            feed.plan(plan)
        output = self.monitor.step(stamp)
        return output, monitor_trajectory_message(output, to_time(stamp), feed.odometry_frame)

    def control(
        self, trajectory: Trajectory, odometry: Odometry, stamp: int
    ) -> tuple[Command, VehicleCommand]:
        """Track the published trajectory: the controller's command and what the car gets."""
        command = control_step(
            self.controller,
            stamp / NS_PER_S,
            trajectory,
            stamped_path(trajectory),
            ego_pose(odometry),
            odometry.header.frame_id,
        )
        message = control_command_message(command, to_time(stamp))
        return command, command_from_message(message)


def shown_rationale(output: MonitorOutput, model_rationale: str) -> str:
    """Return the model's rationale while its plan is followed, else why it is not."""
    if output.origin in FOLLOWS_MODEL:
        return model_rationale
    return f'{output.origin.name.lower().replace("_", " ")}: {failing_reasons(output)}'


def path_in_world(output: MonitorOutput, trajectory: Trajectory) -> np.ndarray:
    """Return the published trajectory's positions in odom (the world frame), or none."""
    if not output.in_odom:
        return np.zeros((0, 2))
    _, poses, _ = trajectory_arrays(trajectory)
    return poses[:, :2]
