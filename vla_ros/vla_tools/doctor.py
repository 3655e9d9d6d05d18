"""`vla doctor`: check that this environment can run vla_ros, and say what to fix if not."""

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

# The oldest Python of a supported ROS 2 install; the PyPI wheels of the .venv need exactly 3.11.
MINIMUM_PYTHON = (3, 10)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one environment check."""

    name: str
    ok: bool
    detail: str


def _check_python() -> str:
    version = '.'.join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MINIMUM_PYTHON:
        raise RuntimeError(f'Python {version}; vla_ros needs 3.10 or newer')
    return f'Python {version} ({sys.executable})'


def _check_rclpy() -> str:
    rclpy = importlib.import_module('rclpy')
    from rclpy.utilities import get_rmw_implementation_identifier

    return (
        f'rclpy {importlib.metadata.version("rclpy")} from {os.path.dirname(rclpy.__file__)}, '
        f'RMW {get_rmw_implementation_identifier()}'
    )


def _check_vla_msgs() -> str:
    from rclpy.serialization import deserialize_message, serialize_message
    from vla_msgs.msg import VlaPlan

    plan = VlaPlan(rationale='type support check')
    if deserialize_message(serialize_message(plan), VlaPlan) != plan:
        raise RuntimeError('a VlaPlan did not survive CDR serialisation')
    return 'vla_msgs type support loads and serialises'


def _check_bag_types() -> str:
    from vla_ros.bag_types import find_msg_dir, make_typestore

    typestore = make_typestore()
    count = sum(name.startswith('vla_msgs/') for name in typestore.types)
    return f'{count} vla_msgs types registered with rosbags from {find_msg_dir()}'


def _check_torch() -> str:
    torch = importlib.import_module('torch')
    return f'torch {torch.__version__}'


def _check_domain() -> str:
    domain = os.environ.get('ROS_DOMAIN_ID', '0 (unset)')
    discovery = os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET (unset)')
    return f'ROS_DOMAIN_ID={domain}, ROS_AUTOMATIC_DISCOVERY_RANGE={discovery}'


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ('python', _check_python),
    ('rclpy', _check_rclpy),
    ('vla_msgs', _check_vla_msgs),
    ('bag types', _check_bag_types),
    ('torch', _check_torch),
    ('ros domain', _check_domain),
]


def run_checks() -> list[CheckResult]:
    """Run every check; a check fails by raising, and its message becomes the detail."""
    results = []
    for name, check in CHECKS:
        try:
            results.append(CheckResult(name, True, check()))
        except Exception as error:  # noqa: BLE001 (a doctor reports every failure, whatever it is)
            results.append(CheckResult(name, False, f'{type(error).__name__}: {error}'))
    return results
