"""Fixtures of the vla_ros tests: a ROS domain of the run's own, and managed rclpy contexts."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vla_perception.rig import RigConfig
from vla_ros.testing import DomainIdLease, RosHarness

# Keep discovery on this machine: tests never send DDS traffic to other hosts. The Fast DDS
# profile binds UDP to loopback too, and gives each participant a shared-memory segment large
# enough for bursts of camera images (see config/fastdds_large_data.xml).
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(
    Path(__file__).with_name('fastdds_test_profile.xml')
)


@pytest.fixture(scope='session', autouse=True)
def ros_domain_id() -> Iterator[int]:
    """Lease a ROS domain id for the whole run; subprocesses inherit it through the environment."""
    with DomainIdLease() as lease:
        os.environ['ROS_DOMAIN_ID'] = str(lease.domain_id)
        yield lease.domain_id


@pytest.fixture
def ros(ros_domain_id: int) -> Iterator[RosHarness]:
    """Give one test an rclpy context; its nodes are destroyed afterwards."""
    with RosHarness(ros_domain_id) as harness:
        yield harness


@pytest.fixture(scope='module')
def module_ros(ros_domain_id: int) -> Iterator[RosHarness]:
    """Share one rclpy context among the tests of a module (saves repeated DDS discovery)."""
    with RosHarness(ros_domain_id) as harness:
        yield harness


@pytest.fixture(scope='session')
def rig() -> RigConfig:
    """Return the default camera rig, with the intrinsics the simulator renders with."""
    return RigConfig.from_file(
        Path(__file__).resolve().parents[1] / 'config' / 'rig_surround.yaml'
    )


@pytest.fixture(scope='session')
def highway_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Record one short expert episode (highway, seed 3, 45 steps) for the tests that read bags.

    Tests must not change it; one that needs to (a touched file) works on a copy.
    """
    from vla_sim.recorder import record

    out_dir = tmp_path_factory.mktemp('recording')
    record('highway', 1, out_dir, seed_start=3, max_steps=45, progress=False)
    return out_dir / 'highway_seed3'
