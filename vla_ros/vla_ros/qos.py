"""QoS profiles of the vla_ros topic graph (docs/ARCHITECTURE.md, "Topic graph").

One place defines them so every node and tool agrees: a subscriber whose QoS is incompatible with
its publisher silently receives nothing, which is the failure hardest to see in a running stack.
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR_DATA = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
"""Camera images, odometry, sensor frames: the newest sample matters, a lost one is not resent."""

RELIABLE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Plans, trajectories, obstacles, status and commands: every message should arrive."""

LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Instructions and camera_info: a subscriber that joins late still gets the latest message."""
