"""Copy a message into its Autoware twin field by field (vla_msgs mirrors Autoware's layouts).

vla_msgs/TrajectoryPoint, ControlCommand, LateralCommand and LongitudinalCommand have the names,
types and order of autoware_planning_msgs/TrajectoryPoint and autoware_control_msgs/Control,
Lateral and Longitudinal (test_interfaces.py checks the mirror), so one copy serves them all.
"""


def mirrored(source: object, target_type: type) -> object:
    """Return a `target_type` message holding every field of `source` of the same name.

    A nested message of another class (vla_msgs/LateralCommand into autoware_control_msgs/
    Lateral) is mirrored in turn; one of the same class (a geometry_msgs/Pose) is shared.
    """
    target = target_type()
    for name in target_type.get_fields_and_field_types():
        value = getattr(source, name)
        default = getattr(target, name)
        if type(default) is not type(value) and hasattr(default, 'get_fields_and_field_types'):
            value = mirrored(value, type(default))
        setattr(target, name, value)
    return target
