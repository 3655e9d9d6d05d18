"""Autoware's message types, imported in one place: present, or one line saying why not.

The packages (autoware_planning_msgs, autoware_control_msgs, autoware_perception_msgs,
autoware_vehicle_msgs, autoware_system_msgs) are optional: scripts/setup.sh builds them from
../shared/autoware-msgs when it exists. A node asked for the Autoware adapters without them ends
at start with `MISSING`'s line instead of failing later on the first message.
"""

from types import SimpleNamespace

try:
    from autoware_control_msgs.msg import Control
    from autoware_perception_msgs.msg import ObjectClassification, PredictedObjects, Shape
    from autoware_planning_msgs.msg import Trajectory, TrajectoryPoint
    from autoware_system_msgs.msg import HazardStatus, HazardStatusStamped
    from autoware_vehicle_msgs.msg import HazardLightsCommand
except ImportError as error:
    MISSING: str | None = (
        f'the Autoware message packages are not installed ({error}): run make setup with '
        '../shared/autoware-msgs present (or VLA_AUTOWARE_MSGS set)'
    )
    TYPES = None
else:
    MISSING = None
    TYPES = SimpleNamespace(
        Control=Control,
        ObjectClassification=ObjectClassification,
        PredictedObjects=PredictedObjects,
        Shape=Shape,
        Trajectory=Trajectory,
        TrajectoryPoint=TrajectoryPoint,
        HazardStatus=HazardStatus,
        HazardStatusStamped=HazardStatusStamped,
        HazardLightsCommand=HazardLightsCommand,
    )


def autoware_types() -> SimpleNamespace:
    """Return the Autoware message classes; raise ValueError (one line) when not installed."""
    if TYPES is None:
        raise ValueError(f'autoware is true but {MISSING}')
    return TYPES
