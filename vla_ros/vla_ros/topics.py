"""Default topic names shared by the nodes, the simulator and the bag readers (no ROS import).

Nodes take their topics as parameters with these defaults; the simulator publishes on them and
the training dataset and open-loop evaluation read bags by them.
"""

ODOMETRY_TOPIC = '/localization/kinematic_state'  # nav_msgs/Odometry, odom -> base_link
OBSTACLES_TOPIC = '/perception/obstacles'  # vla_msgs/ObstacleArray
INSTRUCTION_TOPIC = '/vla/instruction'  # vla_msgs/Instruction, latched
CONTROL_COMMAND_TOPIC = '/vla/control_command'  # what trajectory_output_node publishes
CLOCK_TOPIC = '/clock'
BEV_TOPIC_PREFIX = '/sim/bev'  # simulator ground truth: one OccupancyGrid per BEV class
MAP_PRIOR_TOPIC_PREFIX = '/map/prior'  # one OccupancyGrid per map layer, in base_link
RATIONALE_TOPIC = '/sim/expert/rationale'  # std_msgs/String: the expert's rationale label
EXPERT_TRAJECTORY_TOPIC = '/sim/expert/trajectory'  # vla_msgs/Trajectory: DAgger label, base_link


def bev_topic(name: str) -> str:
    """Topic of one BEV ground-truth class."""
    return f'{BEV_TOPIC_PREFIX}/{name}'


def map_prior_topic(name: str) -> str:
    """Topic of one map-prior layer (vla_model.config.MAP_PRIOR_LAYERS)."""
    return f'{MAP_PRIOR_TOPIC_PREFIX}/{name}'
