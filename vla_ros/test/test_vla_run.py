"""`vla run`: the bring-ups' real nodes over real DDS, without ros2 launch."""

import os
import re
import signal
import subprocess
import time

import pytest
from vla_msgs.msg import ControlCommand, Trajectory, VlaPlan

from repo_paths import tool
from vla_ros.qos import RELIABLE
from vla_ros.testing import RosHarness
from vla_ros.topics import CONTROL_COMMAND_TOPIC

STARTUP_S = 120.0  # five interpreters importing torch and loading the model on two cores


def start(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [tool('vla'), 'run', *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def started_pids(process: subprocess.Popen) -> list[int]:
    line = process.stdout.readline()
    match = re.search(r'\(pids ([\d, ]+)\)', line)
    assert match, f'no start line: {line!r}'
    return [int(pid) for pid in match.group(1).split(', ')]


@pytest.mark.parametrize('single_process', [False, True], ids=['processes', 'single-process'])
def test_the_sim_bringup_plans_end_to_end_and_ctrl_c_stops_every_node(
    ros: RosHarness, single_process: bool
):
    node = ros.node('observer')
    plans: list[VlaPlan] = []
    trajectories: list[Trajectory] = []
    commands: list[ControlCommand] = []
    node.create_subscription(VlaPlan, '/vla/plan', plans.append, RELIABLE)
    node.create_subscription(Trajectory, '/vla/trajectory', trajectories.append, RELIABLE)
    node.create_subscription(ControlCommand, CONTROL_COMMAND_TOPIC, commands.append, RELIABLE)
    process = start('sim', *(['--single-process'] if single_process else []))
    try:
        pids = [process.pid] if single_process else started_pids(process)
        planned = ros.spin_until(
            lambda: any(t.origin == Trajectory.ORIGIN_MODEL for t in trajectories), STARTUP_S
        )
        assert planned, 'no model trajectory reached /vla/trajectory'
        assert plans and commands
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert 'sim: every node stopped' in stdout
    deadline = time.monotonic() + 5.0
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), 'a node outlived vla run'


@pytest.mark.parametrize('single_process', [False, True], ids=['processes', 'single-process'])
def test_a_node_that_dies_at_start_stops_the_others_with_its_message(single_process: bool):
    wrong = 'f' * 64
    process = start(
        'pipeline',
        f'weights_sha256:={wrong}',
        *(['--single-process'] if single_process else []),
    )
    try:
        pids = [] if single_process else started_pids(process)
        stdout, stderr = process.communicate(timeout=STARTUP_S)
    finally:
        process.kill()
    assert process.returncode == 1
    assert 'vla_inference_node' in stderr and 'cannot configure' in stderr and wrong in stderr
    if not single_process:
        assert 'vla run: vla_inference_node exited with code 1' in stderr
        assert not any(alive(pid) for pid in pids), 'the other nodes were left running'
    assert 'Traceback' not in stderr


def test_bad_arguments_exit_1_before_anything_starts():
    result = subprocess.run(
        [tool('vla'), 'run', 'pipeline', 'backend=torch'], capture_output=True, text=True
    )
    assert result.returncode == 1 and 'arguments are name:=value' in result.stderr
    assert 'started' not in result.stdout
