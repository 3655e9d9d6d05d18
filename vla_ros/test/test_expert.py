"""The privileged expert is the teacher: it drives every nominal scenario safely, as told.

20 seeded episodes per nominal scenario, judged from ground truth.
"""

import math
from concurrent.futures import ProcessPoolExecutor

import pytest

from vla_sim.evaluation import ExpertDriver, run_episode
from vla_sim.instructions import Intent
from vla_sim.metrics import EpisodeMetrics
from vla_sim.scenarios import NOMINAL, get_scenario
from vla_sim.simulation import SimConfig

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
def test_expert_survives_the_long_tail(rig, scenario):
    results = [drive(scenario, seed, rig) for seed in range(3)]
    assert not [r.seed for r in results if r.collision], results
