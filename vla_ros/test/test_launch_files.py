"""The launch files under the real `ros2 launch`, and the running pipeline seen through ros2cli.

launch, launch_ros and ros2cli come from ../shared/ros-extras (scripts/setup.sh installs them;
without it these tests skip saying so). Every launch here is `ros2 launch vla_ros <file>` as a
subprocess, what a user types, in the test run's own ROS domain; every check is what a ROS user
would run against the live graph: `ros2 node list`, `ros2 topic echo|hz|list`, `ros2 param`,
`ros2 interface show`. After each launch, every node process it started must be gone.
"""

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from repo_paths import REPO_ROOT, require_autoware_msgs, require_ros_extras, tool

require_ros_extras()

from lifecycle_msgs.srv import GetState  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from vla_msgs.msg import ControlCommand, SafetyStatus, Trajectory, VlaPlan  # noqa: E402

from vla_perception.synchronizer import stamp_to_ns  # noqa: E402
from vla_ros.bag_types import make_typestore  # noqa: E402
from vla_ros.qos import RELIABLE  # noqa: E402
from vla_ros.testing import RosHarness  # noqa: E402
from vla_ros.topics import CONTROL_COMMAND_TOPIC  # noqa: E402

STARTUP_S = 180.0  # five interpreters importing torch and loading the model on two busy cores
PIPELINE_NODES = {
    'sensor_sync_node',
    'vla_inference_node',
    'safety_monitor_node',
    'trajectory_output_node',
}
# Inputs named absolutely by the rig and parameter files, and ROS's own: outside any namespace.
ABSOLUTE_TOPICS = (
    '/sensing/',
    '/localization/',
    '/perception/',
    '/map/',
    '/diagnostics',
    '/rosout',
    '/parameter_events',
    '/clock',
)
REPLAY_DIR = REPO_ROOT / 'vla_ros' / 'replay_regression'
BAG = REPLAY_DIR / 'inputs' / 'nominal'


@dataclass
class Launch:
    """A running `ros2 launch`, its output in a file (a pipe could fill and block it)."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        """Return what launch and its nodes have printed so far."""
        return self.log.read_text(encoding='utf-8', errors='replace')

    def node_pids(self) -> list[int]:
        """Return the pids launch reported starting ('process started with pid [N]')."""
        return [
            int(pid) for pid in re.findall(r'process started with pid \[(\d+)\]', self.output())
        ]

    def wait(self, timeout_s: float) -> int:
        """Wait for launch to end; return its exit code."""
        return self.process.wait(timeout=timeout_s)

    def interrupt(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C: SIGINT to `ros2 launch` only; it must stop its nodes itself."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f'ros2 launch still running {timeout_s:.0f} s after SIGINT; its signal masks: '
                f'{signal_masks(self.process.pid)}\n{self.output()[-3000:]}'
            ) from None

    def kill(self) -> None:
        """Leave nothing behind whatever a test did (its assertions have run by now)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.node_pids():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def signal_masks(pid: int) -> str:
    """Return a process's blocked, ignored and caught signal masks (/proc/PID/status)."""
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        return ', '.join(
            line.strip() for line in status if line.startswith(('SigBlk', 'SigIgn', 'SigCgt'))
        )


def default_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM unblocked and default, as from a shell.

    A test process's masks are inherited through fork and exec; in full runs on the 2-core
    development machine `ros2 launch` once ignored SIGINT for 60 s while relaying its nodes'
    output, which a blocked or ignored SIGINT would explain.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


def alive(pid: int) -> bool:
    """Return True while a process with this pid exists and is not a zombie."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def assert_no_node_left(launch: Launch) -> None:
    """Every node process the launch started is gone (a few seconds' grace for their exit)."""
    pids = launch.node_pids()
    deadline = time.monotonic() + 10.0
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], f'nodes left running:\n{launch.output()}'


def start_launch(tmp_path: Path, launch_file: str, *arguments: str) -> Launch:
    """Start `ros2 launch vla_ros <launch_file> name:=value...`."""
    log = tmp_path / f'{launch_file}.log'
    with log.open('w', encoding='utf-8') as sink:
        process = subprocess.Popen(
            [tool('ros2'), 'launch', 'vla_ros', launch_file, *arguments],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=default_signals,
        )
    return Launch(process, log)


def ros2(*arguments: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run one ros2cli command; return its result with text output."""
    return subprocess.run(
        [tool('ros2'), *arguments], capture_output=True, text=True, timeout=timeout_s
    )


def listed(*arguments: str) -> set[str]:
    """Return the lines of `ros2 <noun> list` without the daemon (nothing outlives the test)."""
    result = ros2(*arguments, 'list', '--no-daemon', '--spin-time', '5')
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def node_topics(node: str) -> set[str]:
    """Return the topics a node publishes or subscribes to, from `ros2 node info`.

    Discovery is eventually consistent: on a loaded machine one 5-s spin has missed a node that
    the `ros2 node list` just before had found, so a node not found is asked for again.
    """
    for _ in range(3):
        result = ros2('node', 'info', '--no-daemon', '--spin-time', '5', node)
        if 'Unable to find node' not in result.stderr:
            break
    assert result.returncode == 0, result.stderr
    topics, section = set(), ''
    for line in result.stdout.splitlines():
        if line.startswith('  ') and not line.startswith('    '):
            section = line.strip()
        elif section in ('Subscribers:', 'Publishers:') and line.strip():
            topics.add(line.strip().split(':')[0])
    assert topics, result.stdout
    return topics


def param(verb: str, *arguments: str) -> str:
    """Return what `ros2 param get|set` prints; no daemon: it would still be discovering."""
    result = ros2('param', verb, '--no-daemon', '--spin-time', '5', *arguments)
    return (result.stdout + result.stderr).strip()


def echo_once(topic: str, message_type: str) -> dict:
    """Return the first message `ros2 topic echo --once` prints on `topic`, as parsed YAML."""
    result = ros2(
        'topic',
        'echo',
        '--once',
        '--no-daemon',
        '--timeout',
        '60',
        topic,
        message_type,
        timeout_s=90.0,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), f'no message on {topic} within 60 s'  # a timeout exits 0
    return yaml.safe_load(result.stdout.split('\n---')[0])


def topic_rate(topic: str, listen_s: float = 8.0) -> float:
    """Return the last average rate `ros2 topic hz` prints after listening for `listen_s`."""
    process = subprocess.Popen(
        [tool('ros2'), 'topic', 'hz', topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(listen_s)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    rates = re.findall(r'average rate: ([\d.]+)', output)
    assert rates, output
    return float(rates[-1])


def lifecycle_state(ros: RosHarness, client: object) -> str:
    """Ask a lifecycle node for its state over its get_state service ('' if it does not answer)."""
    if not ros.spin_until(client.service_is_ready, 5.0):
        return ''
    response = ros.call(client, GetState.Request())
    return response.current_state.label if response is not None else ''


def message_fields(message_class: type) -> set[str]:
    return set(message_class.get_fields_and_field_types())


@pytest.fixture(scope='module')
def sim(module_ros: RosHarness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    """`ros2 launch vla_ros sim.launch.py`, running until the model's first trajectory.

    The packaged bring-up drives one 20 s episode and then idles, which on a quiet machine is
    over before the module's last test looks for a plan: the simulator is given episodes enough
    to outlast them.
    """
    node = module_ros.node('observer')
    trajectories: list[Trajectory] = []
    commands: list[ControlCommand] = []
    node.create_subscription(Trajectory, '/vla/trajectory', trajectories.append, RELIABLE)
    node.create_subscription(ControlCommand, CONTROL_COMMAND_TOPIC, commands.append, RELIABLE)
    folder = tmp_path_factory.mktemp('sim')
    episodes = folder / 'episodes.yaml'
    episodes.write_text(
        '/**/sim_bridge_node:\n  ros__parameters:\n    episodes: 100\n', encoding='utf-8'
    )
    launch = start_launch(folder, 'sim.launch.py', f'params_file:={episodes}')
    launch.trajectories, launch.commands = trajectories, commands
    module_ros.spin_until(
        lambda: (
            any(t.origin == Trajectory.ORIGIN_MODEL for t in trajectories)
            or launch.process.poll() is not None
        ),
        STARTUP_S,
    )
    try:
        yield launch
    finally:
        launch.kill()


def test_sim_launch_drives_the_simulator_and_the_model_trajectories_arrive(
    sim: Launch, module_ros: RosHarness
):
    assert sim.process.poll() is None, sim.output()
    assert any(t.origin == Trajectory.ORIGIN_MODEL for t in sim.trajectories), sim.output()
    # The simulator steps on the controller's commands: more of both keep coming.
    seen = len(sim.commands)
    assert module_ros.spin_until(lambda: len(sim.commands) > seen + 5, 30.0)


def test_ros2_node_list_shows_the_pipeline_and_the_simulator(sim: Launch):
    nodes = listed('node')
    assert {f'/{name}' for name in PIPELINE_NODES | {'sim_bridge_node'}} <= nodes, nodes


def test_ros2_topic_echo_prints_a_plan_and_a_safety_status(sim: Launch):
    plan = echo_once('/vla/plan', 'vla_msgs/msg/VlaPlan')
    assert set(plan) == message_fields(VlaPlan)
    assert plan['model_id'] and plan['trajectory']['points'], plan
    status = echo_once('/vla/safety_status', 'vla_msgs/msg/SafetyStatus')
    assert set(status) == message_fields(SafetyStatus)
    assert status['checks'], status


def test_ros2_param_set_refuses_a_read_only_limit_and_applies_an_allowed_change(sim: Launch):
    node = '/safety_monitor_node'
    refused = param('set', node, 'limits.speed_limit_mps', '50.0')
    assert refused.startswith('Setting parameter failed') and 'read-only' in refused, refused
    assert param('get', node, 'limits.speed_limit_mps') == 'Double value is: 36.1'
    assert param('set', node, 'degraded_max_speed_mps', '12.5') == 'Set parameter successful'
    assert param('get', node, 'degraded_max_speed_mps') == 'Double value is: 12.5'


def test_sigint_ends_the_sim_launch_and_every_node(sim: Launch):
    assert sim.interrupt() == 0, sim.output()
    assert_no_node_left(sim)


def test_pipeline_under_a_namespace_with_launch_driving_the_inference_lifecycle(
    ros: RosHarness, tmp_path: Path
):
    launch = start_launch(tmp_path, 'pipeline.launch.py', 'namespace:=car1', 'autostart:=false')
    try:
        client = ros.node('lifecycle_observer').create_client(
            GetState, '/car1/vla_inference_node/get_state'
        )
        active = ros.spin_until(lambda: lifecycle_state(ros, client) == 'active', STARTUP_S)
        assert active, launch.output()
        # The node does not configure itself: only launch_ros's ChangeState events moved it.
        autostart = param('get', '/car1/vla_inference_node', 'autostart')
        assert autostart == 'Boolean value is: False', autostart
        # Leave out this test's observers and launch_ros's own node (it calls the lifecycle).
        nodes = {
            name
            for name in listed('node')
            if 'observer' not in name and not name.startswith('/launch_ros_')
        }
        assert nodes >= {f'/car1/{name}' for name in PIPELINE_NODES}, nodes
        assert not [name for name in nodes if not name.startswith('/car1/')], nodes
        topics = {topic for name in PIPELINE_NODES for topic in node_topics(f'/car1/{name}')}
        assert {'/car1/vla/sensor_frame', '/car1/vla/plan', '/car1/vla/trajectory'} <= topics
        outside = {t for t in topics if not t.startswith('/car1/')}
        assert all(t.startswith(ABSOLUTE_TOPICS) for t in outside), outside
        # No plans come without sensors: the monitor cycles on its 10 Hz watchdog.
        rate = topic_rate('/car1/vla/trajectory')
        assert 8.0 < rate < 12.0, rate
        assert launch.interrupt() == 0, launch.output()
        assert_no_node_left(launch)
    finally:
        launch.kill()


def frame_stamps(bag: Path) -> set[int]:
    """Return the stamps of the front camera's images in a bag."""
    typestore = make_typestore()
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic.endswith('/front/image_raw')]
        return {
            stamp_to_ns(typestore.deserialize_cdr(raw, c.msgtype).header.stamp)
            for c, _, raw in reader.messages(connections=connections)
        }


def test_replay_launch_plans_on_a_replayed_bag_clock(ros: RosHarness, tmp_path: Path):
    node = ros.node('observer')
    plans: list[VlaPlan] = []
    node.create_subscription(VlaPlan, '/vla/plan', plans.append, RELIABLE)
    launch = start_launch(
        tmp_path, 'replay.launch.py', 'use_sim_time:=true', f'rig_file:={REPLAY_DIR / "rig.yaml"}'
    )
    try:
        loaded = ros.spin_until(lambda: node.count_publishers('/vla/plan') > 0, STARTUP_S)
        assert loaded, launch.output()
        sim_time = param('get', '/sensor_sync_node', 'use_sim_time')
        assert sim_time == 'Boolean value is: True', sim_time
        player = subprocess.run(
            [tool('vla'), 'replay', str(BAG), '--live', '--rate', '0.5', '--no-progress'],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert player.returncode == 0, player.stderr
        ros.spin_until(lambda: False, 3.0)
        assert launch.interrupt() == 0, launch.output()
        assert_no_node_left(launch)
    finally:
        launch.kill()
    planned = {stamp_to_ns(plan.header.stamp) for plan in plans}
    assert len(planned) >= 5, f'{len(planned)} plans:\n{launch.output()}'
    assert planned <= frame_stamps(BAG), 'plans must be stamped with the bag frames'


def test_a_wrong_weights_hash_ends_the_launch_with_the_nodes_reason(tmp_path: Path):
    launch = start_launch(tmp_path, 'pipeline.launch.py', f'weights_sha256:={"f" * 64}')
    try:
        assert launch.wait(STARTUP_S) == 1
        output = launch.output()
        assert re.search(r'vla_inference_node: autostart: cannot configure: .* refusing', output)
        assert 'vla_inference_node-2 exited with code 1' in output, output
        assert_no_node_left(launch)
    finally:
        launch.kill()


@pytest.mark.parametrize(
    ('arguments', 'reason'),
    [
        (['speed:=3'], "pipeline.launch.py has no argument 'speed'; its arguments: autostart"),
        (['namespace:=car 1!'], 'Invalid namespace: namespace must not contain characters'),
        (
            ['params_file:={tmp}/wrong_type.yaml'],
            "safety_monitor_node: Trying to set parameter 'rate_hz' to '20' of type 'INTEGER', "
            "expecting type 'DOUBLE'",
        ),
        (['params_file:={tmp}/missing.yaml'], 'params_file {tmp}/missing.yaml does not exist'),
    ],
    ids=['unknown-argument', 'illegal-namespace', 'wrong-type-in-parameter-file', 'no-such-file'],
)
def test_bad_launch_input_is_refused_with_one_line_and_no_node_left(
    arguments: list[str], reason: str, tmp_path: Path
):
    # An integer where the node declares a double: the usual slip in a hand-written file.
    (tmp_path / 'wrong_type.yaml').write_text(
        '/**/safety_monitor_node:\n  ros__parameters:\n    rate_hz: 20\n', encoding='utf-8'
    )
    launch = start_launch(
        tmp_path, 'pipeline.launch.py', *(a.format(tmp=tmp_path) for a in arguments)
    )
    try:
        assert launch.wait(STARTUP_S) == 1, launch.output()
        assert reason.format(tmp=tmp_path) in launch.output(), launch.output()
        assert_no_node_left(launch)
    finally:
        launch.kill()


def test_ros2_interface_show_prints_the_message_file():
    shown = ros2('interface', 'show', 'vla_msgs/msg/TrajectoryPoint')
    assert shown.returncode == 0, shown.stderr
    # Nested types are expanded below their field, indented by a tab: the rest is the file.
    own_lines = [line for line in shown.stdout.splitlines() if not line.startswith('\t')]
    path = REPO_ROOT / 'vla_msgs' / 'msg' / 'TrajectoryPoint.msg'
    assert own_lines == path.read_text(encoding='utf-8').splitlines()


def test_autoware_launch_reports_an_emergency_on_autowares_topics_without_inputs(
    tmp_path: Path,
):
    require_autoware_msgs()
    launch = start_launch(tmp_path, 'autoware.launch.py')
    try:
        # No sensors, no odometry, no objects: the monitor must stop the car, and Autoware's
        # system layer must hear it in its own types, on its own topics.
        status = echo_once(
            '/system/emergency/hazard_status', 'autoware_system_msgs/msg/HazardStatusStamped'
        )
        assert status['status']['emergency'] is True, status
        lights = echo_once(
            '/system/emergency/hazard_lights_cmd', 'autoware_vehicle_msgs/msg/HazardLightsCommand'
        )
        assert lights['command'] == 2, lights  # ENABLE
        topics = {t for name in PIPELINE_NODES for t in node_topics(f'/{name}')}
        assert {
            '/planning/scenario_planning/trajectory',
            '/control/trajectory_follower/control_cmd',
            '/perception/object_recognition/objects',
        } <= topics, topics
        assert launch.interrupt() == 0, launch.output()
        assert_no_node_left(launch)
    finally:
        launch.kill()
