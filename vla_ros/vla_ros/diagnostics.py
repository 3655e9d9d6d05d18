"""Build diagnostic_msgs statuses (diagnostic_updater is not installable everywhere we run)."""

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def diagnostic_status(
    name: str, hardware_id: str, level: bytes, message: str, values: dict[str, object]
) -> DiagnosticStatus:
    """Return a DiagnosticStatus whose key-values are the given values formatted as text."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=_format(value)) for key, value in values.items()],
    )


def diagnostic_array(stamp: Time, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    """Return a DiagnosticArray of `statuses` stamped `stamp` (the node's clock)."""
    array = DiagnosticArray(status=statuses)
    array.header.stamp = stamp
    return array


def _format(value: object) -> str:
    return f'{value:.3f}' if isinstance(value, float) else str(value)
