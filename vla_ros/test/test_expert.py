"""The privileged expert is the teacher: it drives every nominal scenario safely, as told.

20 seeded episodes per nominal scenario, judged from ground truth.
"""

import dataclasses
import math
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from vla_planning.safety_rules import SafetyLimits
from vla_sim.evaluation import DriverOutput, ExpertDriver, run_episode
from vla_sim.expert import ExpertConfig, approach_acceleration, idm_acceleration
from vla_sim.instructions import Intent
from vla_sim.metrics import EpisodeMetrics
from vla_sim.route_paths import arc_lengths, path_ahead
from vla_sim.scenarios import NOMINAL, get_scenario
from vla_sim.simulation import SimConfig, SimulationCore

EPISODES = 20


def drive(scenario: str, seed: int, rig) -> EpisodeMetrics:
    """One expert episode without cameras (the expert reads ground truth)."""
    config = SimConfig(render=False)
    return run_episode(scenario, seed, ExpertDriver(), rig, sim_config=config).metrics


@pytest.fixture(scope='module')
def nominal_results(rig) -> dict[str, list[EpisodeMetrics]]:
    jobs = [(name, seed) for name in NOMINAL for seed in range(EPISODES)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(drive, [n for n, _ in jobs], [s for _, s in jobs], [rig] * len(jobs))
        )
    grouped: dict[str, list[EpisodeMetrics]] = {name: [] for name in NOMINAL}
    for result in results:
        grouped[result.scenario].append(result)
    return grouped


def test_the_nominal_scenarios_cover_the_environments_the_issue_names():
    environments = {get_scenario(name).world.env_id for name in NOMINAL}
    assert environments == {
        'highway-v0',
        'merge-v0',
        'roundabout-v0',
        'intersection-v0',
        'exit-v0',
    }


@pytest.mark.parametrize('scenario', NOMINAL)
def test_expert_never_collides_and_follows_the_instruction(nominal_results, scenario):
    results = nominal_results[scenario]
    assert len(results) == EPISODES
    collisions = [r.seed for r in results if r.collision]
    off_road = [r.seed for r in results if r.off_road]
    assert not collisions, f'{scenario}: collisions in seeds {collisions}'
    assert not off_road, f'{scenario}: off road in seeds {off_road}'
    failed = [(r.seed, r.intent) for r in results if not r.instruction_success]
    success = 1.0 - len(failed) / len(results)
    assert success >= 0.95, f'{scenario}: instruction success {success:.0%}; failed {failed}'


def test_expert_drives_the_highway_intents_it_is_given(nominal_results):
    intents = {r.intent for r in nominal_results['highway']}
    assert {Intent.CHANGE_LANE_LEFT.value, Intent.CHANGE_LANE_RIGHT.value} <= intents
    assert Intent.SET_SPEED.value in intents


def test_expert_drives_smoothly(nominal_results):
    for scenario, results in nominal_results.items():
        lateral = max(r.peak_lateral_acceleration_mps2 for r in results)
        assert lateral < 4.0, f'{scenario}: peak lateral acceleration {lateral:.1f} m/s^2'
        assert all(math.isfinite(r.peak_jerk_mps3) for r in results)


@pytest.mark.parametrize(
    ('scenario', 'intent'),
    [('pull_over', Intent.PULL_OVER), ('stop_behind_lead', Intent.STOP_BEHIND_LEAD)],
)
def test_expert_stops_where_it_is_told(rig, scenario, intent):
    results = [drive(scenario, seed, rig) for seed in range(3)]
    assert all(r.intent == intent.value for r in results)
    assert all(r.instruction_success and not r.collision for r in results), results


@pytest.mark.parametrize(
    'scenario', ['stalled_vehicle', 'hard_braking_lead', 'debris', 'crossing_pedestrian']
)
def test_expert_keeps_its_lane_behind_a_blocked_lane_when_told_to_keep_it(rig, scenario):
    """Told "keep the lane", it waits behind what blocks the lane instead of passing it."""
    results = [drive(scenario, seed, rig) for seed in range(3)]
    assert all(r.intent == Intent.KEEP_LANE.value for r in results)
    assert not [r.seed for r in results if r.collision], results
    assert all(r.instruction_success for r in results), results


def test_expert_passes_a_stalled_vehicle_when_the_instruction_leaves_the_lane_free(rig):
    scenario = dataclasses.replace(
        get_scenario('stalled_vehicle'), intents=(Intent.SET_SPEED,), target_speeds_mps=(20.0,)
    )
    core = SimulationCore(scenario, 0, rig, SimConfig(render=False))
    driver = ExpertDriver()
    driver.reset(core)
    start_lane, frame = core.world.ego.lane_index, core.frame
    while not core.done:
        frame = core.step(driver.drive(core, frame).command)
    assert not core.world.collided
    assert core.world.ego.lane_index[2] != start_lane[2]
    assert frame.ego.speed_mps > 15.0  # past the stalled car, at about the speed it was told


def test_slowing_to_a_lower_desired_speed_brakes_no_harder_than_comfort():
    config = ExpertConfig()
    for speed, desired in ((10.0, 2.4), (20.0, 10.0), (6.0, 5.5)):
        acceleration = idm_acceleration(config, speed, desired, math.inf, 0.0)
        assert -config.comfort_deceleration_mps2 <= acceleration < 0.0, (speed, desired)
    assert idm_acceleration(config, 5.0, 10.0, math.inf, 0.0) > 0.0


@pytest.mark.parametrize(('start_mps', 'target_mps'), [(10.0, 0.0), (3.0, 0.0), (14.0, 4.0)])
def test_a_point_ahead_is_reached_at_its_speed_braking_at_about_comfort(start_mps, target_mps):
    config, period, point = ExpertConfig(), 0.1, 60.0
    speed, position, accelerations = start_mps, 0.0, []
    while position < point and speed > 0.01:
        acceleration = approach_acceleration(config, speed, target_mps, point - position)
        accelerations.append(acceleration)
        speed = max(speed + acceleration * period, 0.0)
        position += speed * period
    if target_mps == 0.0:
        assert point - 1.0 <= position <= point + 0.1  # at the line (one period of slack)
    else:
        assert speed == pytest.approx(target_mps, abs=0.5)
    assert min(accelerations) >= -1.25 * config.comfort_deceleration_mps2


def test_a_path_ends_where_the_road_ends_instead_of_turning_back(rig):
    core = SimulationCore(get_scenario('intersection'), 0, rig, SimConfig(render=False))
    network = core.world.road.network
    lane = network.get_lane(('il1', 'o1', 0))
    path = path_ahead(network, ('il1', 'o1', 0), lane.position(lane.length - 30.0, 0.0), None, 90)
    np.testing.assert_allclose(path[-1], lane.position(lane.length, 0.0))
    assert arc_lengths(path)[-1] == pytest.approx(30.0, abs=0.5)
    headings = np.arctan2(*np.diff(path, axis=0).T[::-1])
    assert np.ptp(np.unwrap(headings)) < 0.1  # straight on to the end: no U-turn into the way back


class BrakingRecorder(ExpertDriver):
    """The expert, noting the acceleration it commands."""

    def __init__(self) -> None:
        self.accelerations: list[float] = []

    def drive(self, core: SimulationCore, frame) -> DriverOutput:
        """Ask the expert and note its acceleration."""
        output = super().drive(core, frame)
        self.accelerations.append(output.command.acceleration_mps2)
        return output


def test_the_expert_yields_at_intersections_within_the_monitor_s_braking_limit(rig):
    """Its plans are the labels: braking beyond the monitor's limit teaches stops it vetoes.

    Before the stop-line and curve braking, every one of these episodes braked at 7 m/s^2.
    """
    limit = SafetyLimits().min_acceleration_mps2
    within = 0
    for seed in range(10):
        recorder = BrakingRecorder()
        metrics = run_episode(
            'intersection', seed, recorder, rig, sim_config=SimConfig(render=False)
        ).metrics
        assert not metrics.collision and not metrics.off_road, metrics
        within += min(recorder.accelerations) >= limit
    assert within >= 5, f'{within} of 10 intersection episodes within {limit} m/s^2'
