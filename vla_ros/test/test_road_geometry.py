"""The road geometry sampled from highway-env road networks, mirrored into REP 103."""

import gymnasium
import highway_env  # noqa: F401 (registers the environments)
import numpy as np
import pytest
from highway_env.road.lane import CircularLane, LineType, SineLane, StraightLane
from highway_env.road.road import RoadNetwork

from vla_sim.road_geometry import road_geometry_from_network
from vla_sim.scene import MarkingStyle


def network_of(name: str) -> RoadNetwork:
    env = gymnasium.make(name).unwrapped
    env.reset(seed=0)
    return env.road.network


@pytest.fixture(scope='module')
def highway():
    return road_geometry_from_network(network_of('highway-v0'))


def test_highway_lanes_are_mirrored_so_lane_1_is_to_the_right(highway):
    centres = {c.lane_id: c for c in highway.centres}
    assert sorted(centres) == [('0', '1', i) for i in range(4)]
    for index in range(4):
        # highway-env puts lane i at y = 4 i, to the right of travel; REP 103 has y to the left.
        np.testing.assert_allclose(
            centres[('0', '1', index)].points, [[0, -4 * index], [1e4, -4 * index]]
        )
        assert centres[('0', '1', index)].width_m == 4.0
    assert highway.bounds == (0.0, -14.0, 10000.0, 2.0)


def test_straight_lanes_are_their_polygon_corners_even_when_10_km_long(highway):
    lane_0 = highway.surfaces[0]
    # Left edge forward, then right edge back.
    np.testing.assert_allclose(lane_0, [[0, 2], [1e4, 2], [1e4, -2], [0, -2]])
    assert all(len(surface) == 4 for surface in highway.surfaces)


def test_highway_lines_are_where_and_what_highway_env_declares(highway):
    lines = sorted((m.points[0, 1], m.style) for m in highway.markings)
    # Solid edges at both sides of the carriageway, dashed lines between the four lanes.
    assert lines == [
        (-14.0, MarkingStyle.SOLID),
        (-10.0, MarkingStyle.DASHED),
        (-6.0, MarkingStyle.DASHED),
        (-2.0, MarkingStyle.DASHED),
        (2.0, MarkingStyle.SOLID),
    ]
    for marking in highway.markings:
        assert marking.points[0, 0] == 0.0 and marking.points[-1, 0] == 1e4  # dash phase at 0


def test_line_types_map_to_styles_and_curves_are_sampled_every_metre():
    network = RoadNetwork()
    c, s, n = LineType.CONTINUOUS, LineType.STRIPED, LineType.NONE
    network.add_lane('a', 'b', StraightLane([0, 0], [50, 0], line_types=(c, s)))
    network.add_lane(
        'a', 'b', StraightLane([0, 4], [50, 4], line_types=(n, LineType.CONTINUOUS_LINE))
    )
    circle = CircularLane([50, 20], 20.0, -np.pi / 2, 0.0, line_types=(s, n))
    network.add_lane('b', 'c', circle)
    network.add_lane('c', 'd', SineLane([70, 20], [70, 60], 2.0, 0.2, 0.0, line_types=(n, n)))
    road = road_geometry_from_network(network)
    styles = [(m.style, m.points[0].tolist()) for m in road.markings]
    assert styles[:3] == [
        (MarkingStyle.SOLID, [0.0, 2.0]),  # line_types[0] is at lateral -w/2: left of travel
        (MarkingStyle.DASHED, [0.0, -2.0]),
        (MarkingStyle.SOLID, [0.0, -6.0]),  # CONTINUOUS_LINE; NONE gave no line
    ]
    arc = road.centres[2].points
    steps = np.linalg.norm(np.diff(arc, axis=0), axis=1)
    assert len(arc) == int(np.ceil(circle.length)) + 1 and steps.max() < 1.0
    # Every centre sample is the mirrored lane position: on the circle about (50, -20).
    np.testing.assert_allclose(np.linalg.norm(arc - [50, -20], axis=1), 20.0)
    sine = road.centres[3].points
    assert np.linalg.norm(np.diff(sine, axis=0), axis=1).max() < 1.1
    assert np.ptp(sine[:, 0]) > 3.0  # the sine's wiggle is sampled, not cut to its chord


def test_shared_line_is_kept_once():
    network = RoadNetwork()
    s = LineType.STRIPED
    network.add_lane('a', 'b', StraightLane([0, 0], [50, 0], line_types=(s, s)))
    network.add_lane('a', 'b', StraightLane([0, 4], [50, 4], line_types=(s, s)))
    road = road_geometry_from_network(network)
    assert sorted(m.points[0, 1] for m in road.markings) == [-6.0, -2.0, 2.0]


@pytest.mark.parametrize('name', ['merge-v0', 'roundabout-v0', 'intersection-v0', 'exit-v0'])
def test_every_scenario_network_gives_closed_surfaces_and_lines(name):
    network = network_of(name)
    road = road_geometry_from_network(network)
    lanes = [
        lane
        for to_nodes in network.graph.values()
        for lanes in to_nodes.values()
        for lane in lanes
    ]
    assert len(road.surfaces) == len(road.centres) == len(lanes)
    for surface, centre in zip(road.surfaces, road.centres, strict=True):
        assert surface.shape == (2 * len(centre.points), 2)
        assert np.all(np.isfinite(surface))
    assert road.markings and all(len(m.points) >= 2 for m in road.markings)
