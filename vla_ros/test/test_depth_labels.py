"""Depth targets of the lift: each feature pixel's first hit in the raster, ground or vehicle."""

import numpy as np
import pytest
import torch

from vla_model.bev_geometry import cell_centres, depth_bin, rig_cameras
from vla_model.depth_labels import depth_rays, depth_targets
from vla_model.student_network import student_v2
from vla_perception.rig import RigConfig, default_rig_path

CONFIG = student_v2()


@pytest.fixture(scope='module')
def rays():
    return depth_rays(CONFIG, rig_cameras(RigConfig.from_file(default_rig_path()), CONFIG))


def front_column_pixels() -> np.ndarray:
    """Flat pixel indices of the front camera's (camera 0) centre column, top to bottom."""
    feature_h, feature_w = CONFIG.feature_size
    return np.arange(feature_h) * feature_w + feature_w // 2


def car_ahead(x_from: float, x_to: float) -> torch.Tensor:
    """Return a (1, rows, cols) vehicle layer with one car's footprint straight ahead."""
    centres = cell_centres(CONFIG)
    footprint = (
        (centres[..., 0] >= x_from) & (centres[..., 0] <= x_to) & (np.abs(centres[..., 1]) < 1.0)
    )
    return torch.from_numpy(footprint[None].astype(np.float32))


def test_on_an_empty_road_a_pixel_s_depth_is_where_its_ray_meets_the_ground(rays):
    rows, cols = CONFIG.bev_size
    target, on_vehicle = depth_targets(rays, torch.zeros(1, rows, cols))
    assert not on_vehicle.any()
    target = target[0, front_column_pixels()].numpy()
    feature_h = CONFIG.feature_size[0]
    stride = CONFIG.feature_stride
    camera = RigConfig.from_file(default_rig_path()).cameras[0]
    k, height = camera.intrinsics, camera.translation[2]
    for row in range(feature_h):
        below_centre = (row + 0.5) * stride - k.cy  # pixels below the optical axis
        ground = height * k.fy / below_centre if below_centre > 0 else np.inf
        if ground > CONFIG.bev_x_range[1] - camera.translation[0]:
            assert target[row] == -1, f'row {row}: sky or ground beyond the grid has no target'
        else:
            assert target[row] == depth_bin(np.array([ground]), CONFIG.depth_bins)[0], row


def test_a_car_ahead_takes_the_depth_of_its_front_face_from_the_ground_behind_it(rays):
    rows, cols = CONFIG.bev_size
    empty = depth_targets(rays, torch.zeros(1, rows, cols))[0][0, front_column_pixels()]
    with_car, on_vehicle = depth_targets(rays, car_ahead(12.0, 16.0))
    with_car, on_vehicle = with_car[0, front_column_pixels()], on_vehicle[0, front_column_pixels()]
    front_face = depth_bin(np.array([12.0 - 1.7]), CONFIG.depth_bins)[0]  # optical depth, m
    changed = np.flatnonzero((with_car != empty).numpy())
    assert len(changed) >= 2, 'the car hides the ground from some rows'
    np.testing.assert_array_equal(np.flatnonzero(on_vehicle.numpy()), changed)
    for row in changed:
        assert with_car[row] in (front_face, front_face + 1), row
        assert with_car[row] < empty[row] or empty[row] == -1
    # rows that meet the ground before the car keep the ground's depth
    assert (with_car[changed.max() + 1 :] == empty[changed.max() + 1 :]).all()
