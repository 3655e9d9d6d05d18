"""The pinhole camera renderer: geometry against the pinhole model, road paint, actors, looks."""

import gymnasium
import highway_env  # noqa: F401 (registers the environments)
import numpy as np
import pytest

from repo_paths import REPO_ROOT
from vla_perception.rig import RigConfig
from vla_sim.camera_renderer import CameraRenderer
from vla_sim.image_effects import CameraFault, CameraFaultInjector
from vla_sim.road_geometry import road_geometry_from_network
from vla_sim.scene import (
    DASH_LENGTH_M,
    DASH_PERIOD_M,
    Actor,
    ActorKind,
    Appearance,
    LaneMarking,
    MarkingStyle,
    Pose2D,
    RoadGeometry,
    Scene,
)

FX = FY = 320.0
CX, CY = 224.0, 128.0
HORIZON = 128  # row of CY
HEIGHT_M = 1.5  # camera above the ground
MAGENTA, CYAN = (255, 0, 255), (0, 255, 255)


def front_rig(x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> RigConfig:
    intrinsics = {'width': 448, 'height': 256, 'fx': FX, 'fy': FY, 'cx': CX, 'cy': CY}
    camera = {
        'name': 'front',
        'extrinsic': {'xyz': [x, y, HEIGHT_M], 'rpy': [0.0, 0.0, yaw]},
        'intrinsics': intrinsics,
    }
    return RigConfig.from_dict({'cameras': [camera]})


def project(x: float, y: float, z: float, camera_x: float = 0.0) -> tuple[float, float]:
    """Return (u, v) of a world point by the pinhole model, for the forward camera."""
    # Optical frame: X right (-y), Y down (-z), Z forward (x).
    big_x, big_y, big_z = -y, HEIGHT_M - z, x - camera_x
    return FX * big_x / big_z + CX, FY * big_y / big_z + CY


def box(actor_id: int, x: float, y: float, colour, kind=ActorKind.DEBRIS, **size) -> Actor:
    dims = {'length_m': 4.0, 'width_m': 2.0, 'height_m': 1.5} | size
    return Actor(actor_id, kind, Pose2D(x, y, 0.0), speed_mps=0.0, colour=colour, **dims)


def plain_road() -> RoadGeometry:
    """Return a wide asphalt square around the origin, with no lines."""
    square = np.array([[-300.0, 300.0], [300.0, 300.0], [300.0, -300.0], [-300.0, -300.0]])
    return RoadGeometry(surfaces=(square,), markings=(), centres=())


def scene(road: RoadGeometry, actors=(), ego=None, stamp_ns=0, **look) -> Scene:
    ego = ego or Pose2D(0.0, 0.0, 0.0)
    return Scene(stamp_ns, ego, 0.0, tuple(actors), road, Appearance(**look))


def is_colour(pixels: np.ndarray, colour) -> np.ndarray:
    """Tell which pixels have the hue of colour (faces are shaded: up to brightness)."""
    pixels = np.asarray(pixels, float)
    peak = pixels.max(axis=-1, keepdims=True)
    hue = np.abs(pixels / np.maximum(peak, 1.0) - np.asarray(colour) / 255.0).max(axis=-1)
    return (peak[..., 0] > 60) & (hue < 0.15)


@pytest.fixture(scope='module')
def renderer():
    return CameraRenderer(front_rig())


@pytest.fixture(scope='module')
def road():
    return plain_road()


def test_the_renderer_needs_intrinsics_for_every_camera():
    rig = RigConfig.from_dict(
        {'cameras': [{'name': 'f', 'extrinsic': {'xyz': [0, 0, 1], 'rpy': [0, 0, 0]}}]}
    )
    with pytest.raises(ValueError, match='intrinsics for every camera; none for f'):
        CameraRenderer(rig)


def test_default_rig_renders_model_sized_contiguous_rgb_images():
    rig = RigConfig.from_file(REPO_ROOT / 'vla_ros' / 'config' / 'rig_surround.yaml')
    images = CameraRenderer(rig).render(scene(plain_road()))
    assert list(images) == list(rig.names)
    for image in images.values():
        assert image.shape == (256, 448, 3) and image.dtype == np.uint8
        assert image.flags['C_CONTIGUOUS']


# The road within 8 m is sampled at every other pixel (its raster is magnified 2x or more).
@pytest.mark.parametrize(('distance', 'tolerance_px'), [(6.0, 0.5), (10.0, 0.25), (20.0, 0.25)])
def test_ground_line_at_distance_d_lands_on_row_cy_plus_fy_h_over_d(distance, tolerance_px):
    across = np.array([[distance, -50.0], [distance, 50.0]])  # a painted line across the road
    road = RoadGeometry(plain_road().surfaces, (LaneMarking(across, MarkingStyle.SOLID),), ())
    column = CameraRenderer(front_rig()).render(scene(road))['front'][:, 224].astype(float)
    brightness = column.mean(axis=1)
    paint = brightness - np.median(brightness[HORIZON + 5 :])  # above the asphalt
    paint[(paint < 40.0) | (np.arange(len(paint)) < HORIZON + 8)] = 0.0  # texture, sky, haze
    centroid = (np.arange(len(paint)) * paint).sum() / paint.sum()
    assert centroid == pytest.approx(CY + FY * HEIGHT_M / distance, abs=tolerance_px)


def test_sky_above_the_horizon_ground_below(renderer, road):
    image = renderer.render(scene(road))['front'].astype(int)
    sky, ground = image[: HORIZON - 1], image[HORIZON + 3 :]
    assert np.all(sky[..., 2] > sky[..., 0] + 15)  # blue above the horizon row, everywhere
    assert np.all(np.abs(ground[..., 2] - ground[..., 0]) < 20)  # grey asphalt below it


def test_box_corners_project_where_the_pinhole_model_puts_them(renderer, road):
    actor = box(1, 20.0, 1.0, MAGENTA)  # rear face at x = 18 m, y from 0 to 2, z from 0 to 1.5
    image = renderer.render(scene(road, [actor]))['front']
    (u_left, v_top), (u_right, v_bottom) = project(18.0, 2.0, 1.5), project(18.0, 0.0, 0.0)
    for u, v in ((u_left, v_top), (u_right, v_top), (u_left, v_bottom), (u_right, v_bottom)):
        inward = (np.sign((u_left + u_right) / 2 - u), np.sign((v_top + v_bottom) / 2 - v))
        inside = (round(u + 1.5 * inward[0]), round(v + 1.5 * inward[1]))
        outside = (round(u - 1.5 * inward[0]), round(v - 1.5 * inward[1]))
        assert is_colour(image[inside[1], inside[0]], MAGENTA), (u, v)
        assert not is_colour(image[outside[1], outside[0]], MAGENTA), (u, v)
    centre = project(18.0, 1.0, 0.75)
    assert is_colour(image[round(centre[1]), round(centre[0])], MAGENTA)


def test_a_near_box_hides_a_far_one_whatever_their_order(renderer, road):
    near, far = box(1, 15.0, 0.0, MAGENTA), box(2, 40.0, 0.0, CYAN)
    cyan = [
        is_colour(image, CYAN).mean()
        for image in (
            renderer.render(scene(road, [far]))['front'],
            renderer.render(scene(road, [near, far]))['front'],
            renderer.render(scene(road, [far, near]))['front'],
        )
    ]
    assert cyan[0] > 0.001 and cyan[1] == cyan[2] == 0.0


def test_a_box_behind_the_camera_is_not_drawn(renderer, road):
    image = renderer.render(scene(road, [box(1, -10.0, 0.0, MAGENTA)]))['front']
    assert not is_colour(image, MAGENTA).any()


def test_a_box_through_the_camera_plane_is_clipped_not_mirrored(renderer, road):
    # A truck beside the camera, from 6 m behind it to 6 m ahead, on its left.
    truck = box(1, 0.0, 2.5, MAGENTA, length_m=12.0, width_m=2.5, height_m=3.5)
    image = renderer.render(scene(road, [truck]))['front']
    magenta = is_colour(image, MAGENTA)
    assert magenta[:, :20].mean() > 0.5  # fills the left edge of the image
    u_end = project(6.0, 1.25, 0.0)[0]  # its right side ends 6 m ahead
    assert magenta[:, : round(u_end) - 2].any(axis=0).all()
    assert not magenta[:, round(u_end) + 2 :].any()  # and nothing mirrored elsewhere


@pytest.fixture(scope='module')
def highway():
    env = gymnasium.make('highway-v0').unwrapped
    env.reset(seed=0)
    return road_geometry_from_network(env.road.network)


def test_lane_lines_are_painted_where_the_road_network_puts_them(highway):
    # The ego drives in lane 1 (y = -4): a solid edge line at y = +2, a dashed line at y = -2.
    camera_x = 100.0
    image = CameraRenderer(front_rig()).render(scene(highway, ego=Pose2D(100.0, -4.0, 0.0)))
    image = image['front'].astype(float).mean(axis=2)

    def brightness(x: float, y: float) -> float:
        u, v = project(x, y + 4.0, 0.0, camera_x)  # the camera is at y = -4
        return image[round(v), round(u)]

    k = 26  # a dash 112.6 m along the line, about 12 m ahead
    dash, gap = k * DASH_PERIOD_M + DASH_LENGTH_M / 2, (k + 1) * DASH_PERIOD_M - 0.66
    asphalt = brightness(112.0, -4.0)
    assert asphalt < 110
    assert brightness(dash, -2.0) > asphalt + 80  # on a dash
    assert brightness(gap, -2.0) < asphalt + 15  # in the gap between two dashes
    assert brightness(112.0, 2.0) > asphalt + 80  # on the solid edge line
    assert brightness(112.0, 0.0) < asphalt + 15  # lane 0 beside it is asphalt


def test_the_same_scene_gives_the_same_pixels_and_rain_follows_the_stamp(road):
    look = {'night': True, 'fog_visibility_m': 80.0, 'rain_noise': 0.7}
    actors = [box(1, 20.0, 0.0, MAGENTA, kind=ActorKind.CAR)]
    renderer = CameraRenderer(front_rig())
    first = renderer.render(scene(road, actors, stamp_ns=5, **look))['front']
    later = renderer.render(scene(road, actors, stamp_ns=6, **look))['front']
    second = CameraRenderer(front_rig()).render(scene(road, actors, stamp_ns=5, **look))['front']
    np.testing.assert_array_equal(first, second)
    assert np.abs(first.astype(int) - later).mean() > 1.0


def test_night_is_dark_with_lamps_and_headlights_and_fog_hides_the_distance(renderer, road):
    car = box(1, 25.0, 0.0, (90, 90, 90), kind=ActorKind.CAR)
    day = renderer.render(scene(road, [car]))['front'].astype(float)
    night = renderer.render(scene(road, [car], night=True))['front'].astype(float)
    assert night.mean() < 0.4 * day.mean()
    assert night[190, 224].mean() > night[140, 40].mean() + 20  # the road lit ahead of the ego
    tail_lamp = np.array(project(23.0, 0.76, 0.75))  # rear face at x = 23 m
    red = night[round(tail_lamp[1]), round(tail_lamp[0])]
    assert red[0] > 200 and red[1] < 100
    fog = renderer.render(scene(road, [car], fog_visibility_m=50.0))['front'].astype(float)
    fog_rgb = fog[10, 224]  # the sky is all fog
    near, far = fog[250, 40], fog[HORIZON + 4, 40]  # ground 4 m and 120 m ahead, left
    assert np.abs(far - fog_rgb).max() < 10 < np.abs(near - fog_rgb).max()


def test_camera_faults_are_deterministic_for_a_seed():
    good = np.full((8, 8, 3), 100, np.uint8)
    noisy = [CameraFaultInjector(seed=3).apply('front', good, CameraFault.NOISE) for _ in range(2)]
    np.testing.assert_array_equal(*noisy)
    other = CameraFaultInjector(seed=4).apply('front', good, CameraFault.NOISE)
    assert not np.array_equal(noisy[0], other)
    injector = CameraFaultInjector()
    assert not injector.apply('back', good, CameraFault.FROZEN).any()  # nothing good seen yet
