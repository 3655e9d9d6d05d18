"""The simulated world: ego kinematics, REP 103 mirror, scenarios, faults, BEV truth, metrics."""

import copy
import math

import pytest

from vla_sim.bev_ground_truth import BevGrid, bev_ground_truth
from vla_sim.instructions import InstructionGenerator, Intent, Split
from vla_sim.long_tail import StalledVehicle
from vla_sim.metrics import EpisodeLog
from vla_sim.scenarios import NOMINAL, SCENARIOS, get_scenario
from vla_sim.simulation import SimConfig, SimulationCore
from vla_sim.world import EGO_SHAPE, VehicleCommand, World, WorldSpec, wrap_angle

EMPTY_HIGHWAY = WorldSpec(
    'highway-v0', {'lanes_count': 3, 'vehicles_count': 0}, ego_lane=1, ego_speed_mps=10.0
)


def test_ego_drives_straight_at_constant_speed():
    world = World(EMPTY_HIGHWAY, seed=0)
    start = world.ego_state()
    for _ in range(20):
        world.step(VehicleCommand(0.0, 0.0), 0.1)
    end = world.ego_state()
    assert end.pose.x - start.pose.x == pytest.approx(20.0, abs=1e-6)
    assert end.pose.y == pytest.approx(start.pose.y, abs=1e-9)
    assert end.speed_mps == pytest.approx(10.0)


def test_positive_steering_turns_left_on_the_bicycle_radius():
    """REP 103: a positive steering tire angle turns left (yaw grows, y grows)."""
    world = World(EMPTY_HIGHWAY, seed=0)
    steering = 0.05
    start = world.ego_state()
    for _ in range(10):
        world.step(VehicleCommand(steering, 0.0), 0.1)
    end = world.ego_state()
    expected_rate = 10.0 * math.tan(steering) / EGO_SHAPE.wheelbase_m
    assert end.yaw_rate_rps == pytest.approx(expected_rate, rel=1e-6)
    assert wrap_angle(end.pose.yaw - start.pose.yaw) == pytest.approx(expected_rate, rel=1e-6)
    assert end.pose.y > start.pose.y


def test_acceleration_integrates_and_the_ego_never_reverses():
    world = World(EMPTY_HIGHWAY, seed=0)
    world.step(VehicleCommand(0.0, 2.0), 0.5)
    assert world.ego_state().speed_mps == pytest.approx(11.0)
    assert world.ego_state().acceleration_mps2 == pytest.approx(2.0)
    for _ in range(30):
        world.step(VehicleCommand(0.0, -8.0), 0.1)
    assert world.ego_state().speed_mps == 0.0


def test_traffic_brakes_to_a_stop_and_never_reverses():
    spec = WorldSpec('highway-v0', {'lanes_count': 3, 'vehicles_count': 5}, ego_lane=1)
    world = World(spec, seed=0)
    braking = [vehicle for vehicle in world.road.vehicles if vehicle is not world.ego]
    for vehicle in braking:  # as IDM brakes for a stopped car close ahead
        vehicle.act = lambda action=None, vehicle=vehicle: vehicle.action.update(
            steering=0.0, acceleration=-8.0
        )
    starts = {id(vehicle): vehicle.position.copy() for vehicle in braking}
    for _ in range(40):
        world.step(VehicleCommand(0.0, -8.0), 0.1)  # the ego stops too, behind them
        assert all(vehicle.speed >= 0.0 for vehicle in braking)
    for vehicle in braking:
        assert vehicle.speed == 0.0
        assert (vehicle.position - starts[id(vehicle)]) @ vehicle.direction > 0.0


def test_highway_lane_numbers_grow_to_the_right_in_rep103():
    """highway-env's lane 1 is to the right of lane 0: negative y once mirrored."""
    world = World(EMPTY_HIGHWAY, seed=0)
    assert world.ego.lane_index[2] == 1
    assert world.ego_state().pose.y == pytest.approx(-4.0, abs=0.01)


def test_driving_into_a_stalled_car_is_a_collision():
    world = World(EMPTY_HIGHWAY, seed=0)
    lane = world.lane(world.ego.lane_index)
    s = lane.local_coordinates(world.ego.position)[0] + 20.0
    world.road.vehicles.append(StalledVehicle(world.road, lane.position(s, 0.0), 0.0, 0.0))
    for _ in range(30):
        world.step(VehicleCommand(0.0, 0.0), 0.1)
    assert world.collided


def test_scenarios_are_reproducible_from_their_seed():
    a, b = get_scenario('highway').episode(3), get_scenario('highway').episode(3)
    assert a.instruction == b.instruction
    assert [actor.pose for actor in a.world.actors()] == [actor.pose for actor in b.world.actors()]
    c = get_scenario('highway').episode(4)
    assert [x.pose for x in a.world.actors()] != [x.pose for x in c.world.actors()]


def test_unknown_scenario_names_the_known_ones():
    with pytest.raises(KeyError, match='known: .*highway'):
        get_scenario('moon_landing')


def test_the_library_has_every_long_tail_case_of_the_issue():
    expected = {
        'cut_in',
        'hard_braking_lead',
        'stalled_vehicle',
        'slow_truck',
        'dense_traffic',
        'crossing_pedestrian',
        'debris',
        'camera_blackout',
        'frozen_frame',
        'heavy_noise',
        'night',
        'fog',
        'rain',
        'unusual_colours',
    }
    assert expected <= set(SCENARIOS)
    assert len(NOMINAL) == 5


def test_long_tail_events_are_placed_ahead_of_the_ego_in_its_lane():
    world = get_scenario('stalled_vehicle').episode(0).world
    stalled = [v for v in world.road.vehicles if isinstance(v, StalledVehicle)]
    assert len(stalled) == 1
    lane = world.lane(world.ego.lane_index)
    ahead = (
        lane.local_coordinates(stalled[0].position)[0]
        - lane.local_coordinates(world.ego.position)[0]
    )
    assert ahead == pytest.approx(120.0, abs=0.5)
    assert abs(lane.local_coordinates(stalled[0].position)[1]) < 0.1


def test_simulation_applies_the_scenario_camera_faults(rig):
    core = SimulationCore(get_scenario('camera_blackout'), 0, rig, SimConfig())
    while core.world.time_s < 3.05:
        frame = core.step(VehicleCommand())
    assert not frame.images['front'].any()
    assert frame.images['back'].any()
    while core.world.time_s < 9.05:
        frame = core.step(VehicleCommand())
    assert frame.images['front'].any(), 'the camera works again after the fault window'


def test_bev_ground_truth_puts_the_ego_lane_under_the_ego_and_cars_where_they_are(rig):
    core = SimulationCore(get_scenario('stalled_vehicle'), 0, rig, SimConfig(render=False))
    grid = BevGrid((-16.0, 48.0), (-24.0, 24.0), 1.0)
    scene = core.world.scene(0)
    bev = bev_ground_truth(scene, grid)
    row_of = lambda x: int((x - grid.x_range[0]) / grid.cell_m)  # noqa: E731
    col_of = lambda y: int((y - grid.y_range[0]) / grid.cell_m)  # noqa: E731
    assert bev['drivable'][row_of(5.0), col_of(0.0)]
    assert not bev['drivable'][row_of(5.0), col_of(20.0)]
    yaw = scene.ego.yaw
    for actor in scene.actors:
        dx, dy = actor.pose.x - scene.ego.x, actor.pose.y - scene.ego.y
        x, y = math.cos(yaw) * dx + math.sin(yaw) * dy, -math.sin(yaw) * dx + math.cos(yaw) * dy
        if -15 < x < 47 and -23 < y < 23:
            assert bev['vehicle'][row_of(x), col_of(y)]


@pytest.mark.parametrize(
    ('intent', 'followed'), [(Intent.KEEP_LANE, True), (Intent.CHANGE_LANE_LEFT, False)]
)
def test_metrics_judge_the_instruction_from_ground_truth(intent, followed):
    """Driving straight for 1 s at 10 m/s keeps the lane: right for KEEP_LANE only."""
    world = World(EMPTY_HIGHWAY, seed=0)
    instruction = InstructionGenerator(Split.TRAIN, 0).sample(intent)
    log = EpisodeLog('highway', 0, 'test', instruction, world)
    for _ in range(10):
        world.step(VehicleCommand(0.0, 0.0), 0.1)
        log.record(1.0)
    metrics = log.finish()
    assert metrics.instruction_success is followed
    assert metrics.progress_m == pytest.approx(10.0, abs=1e-6)
    assert metrics.mean_speed_mps == pytest.approx(10.0)
    assert not metrics.collision and metrics.peak_jerk_mps3 == 0.0


def test_an_episode_does_not_depend_on_the_episodes_run_before_it():
    """intersection-v0 changes highway-env's IDM class parameters; a World restores them."""

    def exit_traffic() -> list:
        world = get_scenario('exit').episode(1).world
        for _ in range(50):
            world.step(VehicleCommand(), 0.1)
        return [actor.pose for actor in world.actors()]

    before = exit_traffic()
    get_scenario('intersection').episode(0)
    assert exit_traffic() == before


def test_stopping_in_an_empty_lane_is_not_keeping_it():
    """A car that brakes to a standstill with nothing ahead has not followed 'keep lane'."""
    world = World(EMPTY_HIGHWAY, seed=0)
    log = EpisodeLog(
        'highway', 0, 'test', InstructionGenerator(Split.TRAIN, 0).sample(Intent.KEEP_LANE), world
    )
    for _ in range(40):
        world.step(VehicleCommand(0.0, -2.5), 0.1)
        log.record(1.0)
    metrics = log.finish()
    assert metrics.mean_speed_mps > 2.0 and world.ego.speed < 0.5
    assert not metrics.instruction_success


@pytest.mark.parametrize('name', NOMINAL)
def test_episode_outcomes_are_plain_booleans(name):
    """A recorded bag stores them as JSON, which refuses numpy's bool (a roundabout did)."""
    world = get_scenario(name).episode(0).world
    world.step(VehicleCommand(), 0.1)
    assert type(world.collided) is bool and type(world.off_road) is bool


@pytest.mark.parametrize('name', ['highway', 'cut_in', 'hard_braking_lead', 'crossing_pedestrian'])
def test_a_copied_world_runs_the_same_future_without_touching_the_original(name):
    """What an expert's look-ahead on a copy of the world needs (long-tail events included)."""
    world = get_scenario(name).episode(0).world
    start = [actor.pose for actor in world.actors()]
    ahead = copy.deepcopy(world)
    for _ in range(50):
        ahead.step(VehicleCommand(), 0.1)
    assert [actor.pose for actor in world.actors()] == start
    for _ in range(50):
        world.step(VehicleCommand(), 0.1)
    assert [actor.pose for actor in world.actors()] == [actor.pose for actor in ahead.actors()]
    assert [actor.pose for actor in world.actors()] != start
