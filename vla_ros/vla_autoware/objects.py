"""autoware_perception_msgs/PredictedObjects as the safety monitor's vla_msgs/ObstacleArray.

Autoware's object list goes through the same door as the monitor's own obstacle source
(MonitorFeed.obstacles), so every rule treats both alike. Per object: the most probable
classification, the shape as the box the collision check sweeps, and the twist, which Autoware
gives in the object's own frame (x along its heading), rotated into the message's frame as
ObstacleArray wants it. Predicted paths are not used: the monitor predicts at constant velocity
over its 4.5 s horizon, as for any obstacle source. An object that cannot be read is refused
alone, with the reason; the others are kept.
"""

import math
from dataclasses import dataclass

from vla_msgs.msg import Obstacle, ObstacleArray

from vla_perception.odometry import yaw_of

# autoware_perception_msgs/ObjectClassification label -> vla_msgs/Obstacle class.
CLASSES = {
    0: Obstacle.CLASS_UNKNOWN,
    1: Obstacle.CLASS_CAR,
    2: Obstacle.CLASS_TRUCK,
    3: Obstacle.CLASS_BUS,
    4: Obstacle.CLASS_TRUCK,  # TRAILER
    5: Obstacle.CLASS_MOTORCYCLE,
    6: Obstacle.CLASS_BICYCLE,
    7: Obstacle.CLASS_PEDESTRIAN,
    8: Obstacle.CLASS_ANIMAL,
    9: Obstacle.CLASS_STATIC,  # HAZARD
}
# OVER_DRIVABLE (a leaf) and UNDER_DRIVABLE (an overpass) are, by their class, no obstacle to the
# ego's footprint: a 2-D sweep would brake under every bridge.
PASSABLE = {10: 'over-drivable', 11: 'under-drivable'}
BOUNDING_BOX, CYLINDER, POLYGON = 0, 1, 2  # autoware_perception_msgs/Shape.type


@dataclass(frozen=True)
class Refusal:
    """One object left out of the obstacle list, and why."""

    object_name: str  # its UUID in hex
    reason: str


def object_name(predicted_object: object) -> str:
    """Return an object's UUID as hex, the name a warning gives it."""
    return bytes(predicted_object.object_id.uuid).hex()


def box(shape: object) -> tuple[float, float, float, float]:
    """Return the shape's footprint box: centre offset (x, y) in the object's frame, length, width.

    Raises ValueError for an unknown type, a non-finite or non-positive size, or a polygon of
    fewer than three points.
    """
    if shape.type == BOUNDING_BOX:
        centre, length, width = (0.0, 0.0), shape.dimensions.x, shape.dimensions.y
    elif shape.type == CYLINDER:  # the square around the circle of that diameter
        centre, length, width = (0.0, 0.0), shape.dimensions.x, shape.dimensions.x
    elif shape.type == POLYGON:  # the footprint's bounding box, in the object's frame
        xs = [point.x for point in shape.footprint.points]
        ys = [point.y for point in shape.footprint.points]
        if len(xs) < 3:
            raise ValueError(f'polygon footprint has {len(xs)} points, fewer than 3')
        if not all(math.isfinite(value) for value in xs + ys):
            raise ValueError('polygon footprint has non-finite points')
        centre = ((max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2)
        length, width = max(xs) - min(xs), max(ys) - min(ys)
    else:
        raise ValueError(f'unknown shape type {shape.type}')
    height = shape.dimensions.z
    if not all(math.isfinite(value) for value in (length, width, height)):
        raise ValueError(f'shape size is not finite ({length} x {width} x {height} m)')
    if length <= 0.0 or width <= 0.0:
        raise ValueError(f'shape size is not positive ({length} x {width} m)')
    return centre[0], centre[1], length, width


def obstacle(predicted_object: object, obstacle_id: int) -> Obstacle | None:
    """Convert one PredictedObject; None for a passable class; ValueError naming a problem."""
    if not predicted_object.classification:
        raise ValueError('empty classification')
    best = max(predicted_object.classification, key=lambda c: c.probability)
    if best.label in PASSABLE:
        return None
    if best.label not in CLASSES:
        raise ValueError(f'unknown classification label {best.label}')
    kinematics = predicted_object.kinematics
    pose = kinematics.initial_pose_with_covariance.pose
    twist = kinematics.initial_twist_with_covariance.twist.linear
    accel = kinematics.initial_acceleration_with_covariance.accel.linear
    p = pose.position
    yaw = yaw_of(pose.orientation)
    values = (p.x, p.y, yaw, twist.x, twist.y, accel.x, accel.y)
    if not all(math.isfinite(value) for value in values):
        raise ValueError('non-finite pose, twist or acceleration')
    dx, dy, length, width = box(predicted_object.shape)
    cos, sin = math.cos(yaw), math.sin(yaw)
    result = Obstacle(
        id=obstacle_id,
        classification=CLASSES[best.label],
        existence_probability=predicted_object.existence_probability,
    )
    result.pose.position.x = p.x + cos * dx - sin * dy
    result.pose.position.y = p.y + sin * dx + cos * dy
    result.pose.position.z = p.z
    result.pose.orientation = pose.orientation
    result.dimensions.x, result.dimensions.y = length, width
    result.dimensions.z = predicted_object.shape.dimensions.z
    # The object's own frame (x along its heading) to the message's frame.
    result.velocity.x, result.velocity.y = (
        cos * twist.x - sin * twist.y,
        sin * twist.x + cos * twist.y,
    )
    result.acceleration.x = cos * accel.x - sin * accel.y
    result.acceleration.y = sin * accel.x + cos * accel.y
    return result


def obstacle_array(
    message: object, odometry_frame: str
) -> tuple[ObstacleArray | None, list[Refusal]]:
    """Return the objects the monitor can use, as an ObstacleArray, and the refused ones.

    The monitor places obstacles given in `base_link` or in the odometry's frame (Autoware
    publishes them in `map`, where its localisation publishes the odometry). In any other frame
    every object is refused and the array is None: an empty list would read as "all clear".
    """
    frame = message.header.frame_id
    refusals = []
    if frame not in ('base_link', odometry_frame):
        reason = f'frame {frame!r} is neither the odometry frame {odometry_frame!r} nor base_link'
        return None, [Refusal(object_name(item), reason) for item in message.objects]
    array = ObstacleArray(header=message.header, source=ObstacleArray.SOURCE_FUSION)
    for index, item in enumerate(message.objects):
        try:
            converted = obstacle(item, index)
        except ValueError as error:
            refusals.append(Refusal(object_name(item), str(error)))
            continue
        if converted is not None:
            array.obstacles.append(converted)
    return array, refusals
