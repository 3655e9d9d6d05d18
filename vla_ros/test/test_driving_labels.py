"""Training labels from odometry and simulator messages: trajectories, BEV masks, rationales.

Trajectory labels are checked against closed-form motion (a straight line, a circle whose odom
yaw crosses +-pi), BEV masks against the simulator's own message layout, rationales against the
model's vocabulary.
"""

import math

import numpy as np
import pytest

from vla_model.config import student
from vla_model.driving_labels import (
    PoseTrack,
    future_trajectory,
    in_frame_of,
    occupancy_mask,
    rationale_index,
)
from vla_perception.synchronizer import NS_PER_S
from vla_sim.bev_ground_truth import BevGrid
from vla_sim.sim_messages import grid_messages

ODOMETRY_HZ = 50
TRACK_S = 5.0
START_NS = 7 * NS_PER_S  # tracks do not start at zero in a bag


@pytest.fixture(scope='module')
def config():
    return student()


def wrap(angle):
    """Wrap to (-pi, pi], as an odometry source reports yaw."""
    wrapped = np.arctan2(np.sin(angle), np.cos(angle))
    return np.where(wrapped <= -np.pi, wrapped + 2 * np.pi, wrapped)


def sample_times(duration_s: float = TRACK_S, hz: int = ODOMETRY_HZ) -> np.ndarray:
    """Return sample offsets in ns from START_NS, both ends included."""
    return np.arange(round(duration_s * hz) + 1) * (NS_PER_S // hz)


def track_of(offsets_ns: np.ndarray, x, y, yaw) -> PoseTrack:
    """Build a track from odom poses given at START_NS + offsets (yaw wrapped as logged)."""
    yaw = wrap(np.asarray(yaw, dtype=np.float64))
    return PoseTrack.from_samples(
        [
            (START_NS + int(t), float(px), float(py), float(pyaw))
            for t, px, py, pyaw in zip(offsets_ns, x, y, yaw, strict=True)
        ]
    )


def straight_track(speed=10.0, heading=0.5, x0=120.0, y0=-35.0) -> PoseTrack:
    offsets = sample_times()
    t = offsets / NS_PER_S
    return track_of(
        offsets,
        x0 + speed * t * math.cos(heading),
        y0 + speed * t * math.sin(heading),
        np.full(len(t), heading),
    )


def turning_track(speed, yaw_rate, yaw0, x0=-250.0, y0=410.0) -> PoseTrack:
    """Constant speed and yaw rate: a circle of radius speed / yaw_rate."""
    offsets = sample_times()
    t = offsets / NS_PER_S
    yaw = yaw0 + yaw_rate * t
    radius = speed / yaw_rate
    return track_of(
        offsets,
        x0 + radius * (np.sin(yaw) - math.sin(yaw0)),
        y0 - radius * (np.cos(yaw) - math.cos(yaw0)),
        yaw,
    )


def step_times(config) -> np.ndarray:
    return config.step_s * np.arange(1, config.horizon_steps + 1)


def test_model_plans_six_steps_of_half_a_second(config):
    # The expectations below are written for this horizon.
    assert (config.horizon_steps, config.step_s) == (6, 0.5)


def test_straight_motion_is_straight_ahead_in_base_link(config):
    track = straight_track(speed=10.0, heading=0.5)
    for offset_s in (0.0, 0.3, 1.0, 2.0):  # on and between odometry samples
        label = future_trajectory(track, START_NS + round(offset_s * NS_PER_S), config)
        assert label is not None, offset_s
        assert label.shape == (6, 3) and label.dtype == np.float32
        np.testing.assert_allclose(label[:, 0], [5, 10, 15, 20, 25, 30], atol=1e-4)
        np.testing.assert_allclose(label[:, 1], 0.0, atol=1e-4)
        np.testing.assert_allclose(label[:, 2], 0.0, atol=1e-6)


@pytest.mark.parametrize(
    ('speed', 'yaw_rate', 'yaw0'),
    [
        (8.0, 0.4, math.pi - 0.3),  # left turn, odom yaw crosses +pi -> -pi
        (6.0, -0.5, -math.pi + 0.2),  # right turn, odom yaw crosses -pi -> +pi
        (3.0, 1.2, 2.0),  # tight turn: the last heading is past pi in base_link
    ],
    ids=['left-across-pi', 'right-across-pi', 'tight-left'],
)
def test_constant_turn_follows_the_circle_chord(config, speed, yaw_rate, yaw0):
    track = turning_track(speed, yaw_rate, yaw0)
    # The logged yaw really wraps, and the track unwraps it.
    logged = wrap(yaw0 + yaw_rate * sample_times() / NS_PER_S)
    assert np.abs(np.diff(logged)).max() > math.pi
    assert np.abs(np.diff(track.poses[:, 2])).max() < 0.1

    t = step_times(config)
    radius = speed / yaw_rate
    expected = np.column_stack(
        [radius * np.sin(yaw_rate * t), radius * (1 - np.cos(yaw_rate * t)), wrap(yaw_rate * t)]
    )
    # Frame stamps on and between odometry samples, so that some interpolation straddles the
    # wrap: linear interpolation between 20 ms samples is off the circle by < 0.2 mm.
    offsets_ms = [*range(0, 2001, 100), *range(3, 2000, 7)]
    for offset_ms in offsets_ms:
        stamp_ns = START_NS + offset_ms * 1_000_000
        label = future_trajectory(track, stamp_ns, config)
        assert label is not None, offset_ms
        np.testing.assert_allclose(label, expected, atol=1e-3, err_msg=f'at +{offset_ms} ms')
    on_sample = future_trajectory(track, START_NS + NS_PER_S, config)
    np.testing.assert_allclose(on_sample, expected, atol=1e-4)


def test_in_frame_of_matches_a_rotation_and_wraps_heading():
    origin = np.array([3.0, -2.0, 3.0])
    poses = np.array([[3.0, -2.0, 3.0], [3.0 + math.cos(3.0), -2.0 + math.sin(3.0), -3.0]])
    local = in_frame_of(origin, poses)
    np.testing.assert_allclose(local[0], [0.0, 0.0, 0.0], atol=1e-12)
    # One metre straight ahead; heading -3 - 3 = -6 rad is 2 pi - 6 rad.
    np.testing.assert_allclose(local[1], [1.0, 0.0, 2 * math.pi - 6.0], atol=1e-12)


def test_no_label_where_odometry_does_not_cover_the_horizon(config):
    track = straight_track()
    horizon_ns = config.horizon_steps * round(config.step_s * NS_PER_S)
    last_ns = START_NS + sample_times()[-1]
    assert future_trajectory(track, last_ns - horizon_ns, config) is not None
    assert future_trajectory(track, last_ns - horizon_ns + 1, config) is None
    assert future_trajectory(track, last_ns, config) is None
    assert future_trajectory(track, START_NS - 1, config) is None  # before the first sample
    assert future_trajectory(PoseTrack.from_samples([]), START_NS, config) is None
    one = PoseTrack.from_samples([(START_NS, 0.0, 0.0, 0.0)])
    assert future_trajectory(one, START_NS, config) is None


@pytest.mark.parametrize(
    ('hole_s', 'labelled'),
    [(0.4, True), (0.5, True), (0.52, False), (1.5, False)],
)
def test_no_label_across_an_odometry_hole_longer_than_half_a_second(config, hole_s, labelled):
    offsets = sample_times(8.0)
    hole_start = 2 * NS_PER_S
    hole_end = hole_start + round(hole_s * NS_PER_S)
    assert hole_end % (NS_PER_S // ODOMETRY_HZ) == 0  # the hole ends on a sample
    kept = (offsets <= hole_start) | (offsets >= hole_end)
    offsets = offsets[kept]
    t = offsets / NS_PER_S
    track = track_of(offsets, 10.0 * t, np.zeros(len(t)), np.zeros(len(t)))
    assert np.diff(track.stamps_ns).max() == hole_end - hole_start
    # Horizons with a step inside the hole.
    for stamp_offset_s in (0.0, 0.25, 1.0, 1.9):
        stamp_ns = START_NS + round(stamp_offset_s * NS_PER_S)
        label = future_trajectory(track, stamp_ns, config)
        assert (label is not None) == labelled, stamp_offset_s
        if labelled:  # the hole is bridged by straight-line interpolation
            np.testing.assert_allclose(label[:, 0], [5, 10, 15, 20, 25, 30], atol=1e-4)
    # After the hole odometry is whole again.
    after = START_NS + hole_end + NS_PER_S // 10
    assert future_trajectory(track, after, config) is not None


def test_stamps_on_the_samples_that_bound_a_hole_are_labelled_alike(config):
    # A pose asked for exactly at a logged sample is that sample, whichever side of a hole it
    # is on: the frame on the last sample before a hole and the one on the first after it.
    offsets = sample_times(8.0)
    hole_start, hole_end = 2 * NS_PER_S, 3 * NS_PER_S
    offsets = offsets[(offsets <= hole_start) | (offsets >= hole_end)]
    t = offsets / NS_PER_S
    track = track_of(offsets, 10.0 * t, np.zeros(len(t)), np.zeros(len(t)))
    assert track.at(np.array([START_NS + hole_start]))[0, 0] == pytest.approx(20.0)
    before_the_hole = track.at(np.array([START_NS + hole_start, START_NS + hole_start + 1]))
    assert before_the_hole is None  # the second stamp is in the hole
    at_the_end = track.at(np.array([START_NS + hole_end]))
    assert at_the_end is not None, 'the first sample after a hole reads as inside the hole'
    assert at_the_end[0, 0] == pytest.approx(30.0)
    assert future_trajectory(track, START_NS + hole_end, config) is not None


def test_duplicate_and_backward_samples_are_dropped(config):
    offsets = sample_times()
    t = offsets / NS_PER_S
    samples = [(START_NS + int(o), 10.0 * s, 0.0, 0.0) for o, s in zip(offsets, t, strict=True)]
    clean = PoseTrack.from_samples(samples)
    noisy = list(samples)
    # A repeated stamp with another pose, and a sample from the past, both wild.
    noisy.insert(51, (samples[50][0], 999.0, 999.0, 3.0))
    noisy.insert(102, (samples[40][0], -999.0, 999.0, -3.0))
    noisy.insert(103, (samples[100][0] - 1, -999.0, 999.0, -3.0))
    track = PoseTrack.from_samples(noisy)
    np.testing.assert_array_equal(track.stamps_ns, clean.stamps_ns)
    np.testing.assert_array_equal(track.poses, clean.poses)
    assert np.all(np.diff(track.stamps_ns) > 0)
    for offset_s in (0.5, 1.0, 1.23):
        stamp_ns = START_NS + round(offset_s * NS_PER_S)
        np.testing.assert_array_equal(
            future_trajectory(track, stamp_ns, config), future_trajectory(clean, stamp_ns, config)
        )


@pytest.fixture(scope='module')
def pattern(config) -> np.ndarray:
    """Return a mask that no transpose, flip or reshape maps onto itself."""
    rows, cols = config.bev_size
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing='ij')
    mask = (r * 7 + c * 3) % 11 == 0
    mask[:20, 0] = True  # a bar along x on the right edge
    mask[rows - 1, :5] = True  # a short bar along y at the far end
    mask[10, 30] = True
    return mask


def test_occupancy_grid_round_trips_the_simulators_bev_layout(config, pattern):
    grid = BevGrid.from_model(config)
    messages = grid_messages({'vehicle': pattern, 'empty': ~pattern}, grid, 1_500_000_000)
    message = messages['vehicle']
    rows, cols = config.bev_size
    assert (message.info.width, message.info.height) == (rows, cols)
    # The documented layout: cell (row, col) is data[col * width + row].
    assert message.data[30 * rows + 10] == 100
    mask = occupancy_mask(message, config)
    assert mask.shape == (rows, cols) and mask.dtype == bool
    np.testing.assert_array_equal(mask, pattern)
    np.testing.assert_array_equal(occupancy_mask(messages['empty'], config), ~pattern)


def test_occupied_means_above_fifty(config, pattern):
    message = grid_messages({'vehicle': pattern}, BevGrid.from_model(config), 0)['vehicle']
    rows = config.bev_size[0]
    values = {(0, 1): 50, (1, 1): 51, (2, 1): -1, (3, 1): 100, (4, 1): 0}
    data = np.asarray(message.data, np.int8)
    for (row, col), value in values.items():
        data[col * rows + row] = value
    message.data = data.tolist()
    mask = occupancy_mask(message, config)
    assert [bool(mask[cell]) for cell in values] == [False, True, False, True, False]


@pytest.mark.parametrize(
    'grid',
    [
        BevGrid((-16.0, 48.0), (-24.0, 24.0), 0.5),  # finer cells: 128 x 96
        BevGrid((-16.0, 16.0), (-12.0, 12.0), 0.5),  # the model's 64 x 48 cells, but 0.5 m
        BevGrid((-8.0, 56.0), (-24.0, 24.0), 1.0),  # the model's size and cell, shifted
        BevGrid((-16.0, 48.0), (-24.0, 20.0), 1.0),  # fewer columns
    ],
    ids=['resolution-and-size', 'resolution', 'origin', 'size'],
)
def test_grid_that_is_not_the_models_gives_no_label(config, grid):
    rows, cols = grid.shape
    mask = np.zeros((rows, cols), bool)
    mask[::3, ::2] = True
    message = grid_messages({'vehicle': mask}, grid, 0)['vehicle']
    assert occupancy_mask(message, config) is None


def test_swapped_or_truncated_grid_gives_no_label(config, pattern):
    message = grid_messages({'vehicle': pattern}, BevGrid.from_model(config), 0)['vehicle']
    message.info.width, message.info.height = message.info.height, message.info.width
    assert occupancy_mask(message, config) is None
    message = grid_messages({'vehicle': pattern}, BevGrid.from_model(config), 0)['vehicle']
    message.data = list(message.data)[:-1]
    assert occupancy_mask(message, config) is None


def test_rationale_texts_map_to_their_class(config):
    assert len(config.rationales) > 1
    for index, text in enumerate(config.rationales):
        assert rationale_index(text, config) == index
        assert rationale_index(f'  {text}\n', config) == index
    assert rationale_index('overtaking on the hard shoulder', config) == -1
    assert rationale_index('', config) == -1
    assert rationale_index(config.rationales[0].upper(), config) == -1
