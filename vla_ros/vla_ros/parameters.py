"""Declared ROS parameters with descriptors, ranges and read-only flags, from one table per node.

rclpy checks descriptors before any callback runs: a read-only parameter or an out-of-range value
(NaN included) is refused with a reason, so a node's limits cannot be changed by accident.
"""

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: default value, meaning (with unit), range, and whether it is read-only."""

    name: str
    default: bool | int | float | str | list[str]
    description: str
    minimum: float | None = None
    maximum: float | None = None
    read_only: bool = True

    def descriptor(self) -> ParameterDescriptor:
        """Return the ParameterDescriptor rclpy enforces."""
        descriptor = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.minimum is not None and isinstance(self.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(self.minimum), to_value=float(self.maximum))
            ]
        elif self.minimum is not None and isinstance(self.default, int):
            descriptor.integer_range = [
                IntegerRange(from_value=int(self.minimum), to_value=int(self.maximum), step=1)
            ]
        return descriptor


def declare_parameters(node: Node, specs: list[ParameterSpec]) -> dict[str, object]:
    """Declare every parameter on `node` and return their values (overrides applied)."""
    return {
        spec.name: node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        for spec in specs
    }


def parameter_defaults(specs: list[ParameterSpec]) -> dict[str, object]:
    """Return every parameter's default: what a node runs with when nothing overrides it.

    In-process users of a node's cores (the simulator's pipeline driver) configure them from
    this, so that they run with exactly the settings of the launched node.
    """
    return {spec.name: spec.default for spec in specs}
