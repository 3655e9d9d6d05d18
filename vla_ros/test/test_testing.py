"""The test harness: domain leases are exclusive across processes and isolate DDS traffic."""

import subprocess
import sys

import pytest
from vla_msgs.msg import Instruction

from vla_ros.qos import RELIABLE
from vla_ros.testing import DomainIdLease, RosHarness

HOLD_LEASE = """
import sys
from pathlib import Path
from vla_ros.testing import DomainIdLease
lease = DomainIdLease(Path(sys.argv[1]), range(7, 8))
print(lease.domain_id, flush=True)
sys.stdin.read()
"""


def test_leases_in_one_process_are_distinct(tmp_path):
    with (
        DomainIdLease(tmp_path, range(3, 6)) as first,
        DomainIdLease(tmp_path, range(3, 6)) as second,
    ):
        assert first.domain_id != second.domain_id
        assert {first.domain_id, second.domain_id} <= {3, 4, 5}


def test_released_lease_can_be_taken_again(tmp_path):
    first = DomainIdLease(tmp_path, range(9, 10))
    first.release()
    first.release()
    with DomainIdLease(tmp_path, range(9, 10)) as second:
        assert second.domain_id == 9


def test_lease_held_by_another_process_is_not_given_out(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, '-c', HOLD_LEASE, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == '7'
        with pytest.raises(RuntimeError, match=r'all ROS domain ids 7\.\.7 are leased'):
            DomainIdLease(tmp_path, range(7, 8))
    finally:
        holder.communicate('', timeout=30)
    with DomainIdLease(tmp_path, range(7, 8)) as lease:
        assert lease.domain_id == 7


def test_nodes_in_different_leased_domains_do_not_see_each_other(ros: RosHarness):
    with DomainIdLease() as other_domain, RosHarness(other_domain.domain_id) as other:
        assert other_domain.domain_id != ros.context.get_domain_id()
        publisher = ros.node('run_a').create_publisher(Instruction, '/shared_name', RELIABLE)
        other.node('run_b').create_subscription(Instruction, '/shared_name', print, RELIABLE)
        ros.spin_until(lambda: False, 2.0)
        assert publisher.get_subscription_count() == 0


def test_harness_destroys_its_nodes_and_context(ros_domain_id: int):
    with RosHarness(ros_domain_id) as harness:
        harness.node('short_lived')
        assert harness.context.ok()
        assert 'short_lived' in harness.node('observer').get_node_names()
    assert not harness.context.ok()
    assert harness.executor.get_nodes() == []
