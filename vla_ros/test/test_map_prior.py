"""The map prior: the simulator's map layers, and how a frame is matched to them."""

import numpy as np
import pytest

from vla_model.config import MAP_PRIOR_LAYERS, ModelConfig, student
from vla_model.student_network import student_v2
from vla_planning.map_prior import MapPriorBuffer
from vla_sim.bev_ground_truth import BevGrid, map_prior
from vla_sim.scenarios import get_scenario
from vla_sim.sim_messages import grid_messages

MS = 1_000_000


@pytest.fixture(scope='module')
def layers() -> dict[str, np.ndarray]:
    scene = get_scenario('highway').episode(0).world.scene(0)
    return map_prior(scene, BevGrid.from_model(student()))


def test_the_ego_lane_centreline_runs_straight_ahead_under_the_ego(layers):
    config = student()
    row_of = {x: int((x - config.bev_x_range[0]) / config.bev_cell_m) for x in (0.0, 20.0, 40.0)}
    centre_col = int(-config.bev_y_range[0] / config.bev_cell_m)  # y = 0 is a cell boundary
    for row in row_of.values():
        assert layers['lane_centreline'][row, centre_col - 1 : centre_col + 1].any()
        assert layers['drivable'][row, centre_col]
    assert layers['drivable'].mean() < 0.9  # the road, not the whole grid


def test_the_route_layer_covers_the_lanes_of_the_route_through_a_junction_only():
    grid = BevGrid.from_model(student())
    ego_cell = int(-grid.x_range[0] / grid.cell_m), int(-grid.y_range[0] / grid.cell_m)
    for name in ('intersection', 'roundabout'):
        scene = get_scenario(name).episode(0).world.scene(0)
        junction = map_prior(scene, grid)
        route, drivable = junction['route_lanes'], junction['drivable']
        assert scene.route and route[ego_cell]  # the ego stands on its route
        assert (route.sum(axis=1) >= 3).sum() > 10  # lane surfaces, not one-cell lines
        assert not (route & ~drivable).any() and route.sum() < 0.6 * drivable.sum(), name
    # Without a route (a highway: follow the road) the layer is empty, not the whole road.
    assert not map_prior(get_scenario('highway').episode(0).world.scene(0), grid)[
        'route_lanes'
    ].any()


def buffer_with(layers, stamps_ns, names=MAP_PRIOR_LAYERS, config=None) -> MapPriorBuffer:
    buffer = MapPriorBuffer(config or student_v2(), max_offset_s=0.05)
    grid = BevGrid.from_model(student())
    for stamp in stamps_ns:
        messages = grid_messages({name: layers[name] for name in names}, grid, stamp)
        for name, message in messages.items():
            buffer.add(name, message)
    return buffer


def test_a_frame_takes_the_complete_prior_nearest_its_stamp(layers):
    buffer = buffer_with(layers, [1000 * MS, 1100 * MS])  # a v2 student: all three layers
    prior = buffer.at(1090 * MS)
    assert prior.shape == (3, *student().bev_size) and prior.dtype == np.float32
    for index, name in enumerate(MAP_PRIOR_LAYERS):
        np.testing.assert_array_equal(prior[index], layers[name])
    assert buffer.at(1200 * MS) is None  # 100 ms from the nearest: another place


def test_a_model_of_fewer_layers_takes_the_first_ones_and_ignores_the_rest(layers):
    two_layers = student()  # v1 and the first v2: no route
    assert two_layers.map_prior_layers == ('lane_centreline', 'drivable')
    without_route = buffer_with(layers, [1000 * MS], names=MAP_PRIOR_LAYERS[:2], config=two_layers)
    prior = without_route.at(1000 * MS)
    assert prior.shape == (2, *student().bev_size)
    np.testing.assert_array_equal(prior[1], layers['drivable'])
    # A map server that also sends the route changes nothing for it.
    with_route = buffer_with(layers, [1000 * MS], config=two_layers).at(1000 * MS)
    np.testing.assert_array_equal(with_route, prior)
    # A three-layer model waits for the route.
    assert buffer_with(layers, [1000 * MS], names=MAP_PRIOR_LAYERS[:2]).at(1000 * MS) is None


def test_a_model_cannot_take_more_map_layers_than_there_are():
    with pytest.raises(ValueError, match='map_prior_channels is 4; the map prior has 1 to 3'):
        ModelConfig(map_prior_channels=4)


def test_an_incomplete_prior_is_not_used(layers):
    assert buffer_with(layers, [1000 * MS], names=('drivable',)).at(1000 * MS) is None


def test_a_layer_off_the_model_grid_or_frame_is_refused_by_name(layers):
    grid = BevGrid((-10.0, 10.0), (-10.0, 10.0), 0.5)
    message = grid_messages({'drivable': np.zeros(grid.shape, bool)}, grid, 0)['drivable']
    buffer = MapPriorBuffer(student(), 0.05)
    with pytest.raises(ValueError, match='map layer drivable: the grid is not the model BEV grid'):
        buffer.add('drivable', message)
    good = grid_messages({'drivable': layers['drivable']}, BevGrid.from_model(student()), 0)[
        'drivable'
    ]
    good.header.frame_id = 'odom'
    with pytest.raises(ValueError, match="in frame 'odom', not base_link"):
        buffer.add('drivable', good)
    with pytest.raises(ValueError, match='unknown map layer'):
        buffer.add('lanes', good)
