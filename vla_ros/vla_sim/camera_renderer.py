"""Pinhole camera images of a `Scene`, rendered on the CPU with numpy and OpenCV.

Fast because almost everything is precomputed per camera from the rig: the ray of every pixel
centre and where it meets the ground (z = 0 in base_link). A frame then moves those ground points
by the ego pose into the world, which is one affine map, and samples the road raster with one
cv2.remap per band of rows. Actors are boxes drawn over the road far to near (painter's order),
with back faces culled and faces that cross the camera plane clipped at NEAR_M.

The world is flat: the ego's base_link lies on the ground plane, so the horizon is where the
rays become horizontal in base_link. Pixel convention as CameraInfo and OpenCV: a point (X, Y, Z)
of the optical frame lands on u = fx X / Z + cx, v = fy Y / Z + cy, pixel centres at integers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vla_model.bev_geometry import rotation_from_quaternion
from vla_perception.rig import CameraIntrinsics, CameraSpec, RigConfig
from vla_sim.road_raster import LEVEL_CELLS_M, RoadRaster, mip_level
from vla_sim.scene import ActorKind, Pose2D, Scene

MAX_RANGE_M = 250.0
"""Ground farther than this from a camera is not drawn: the pixel shows the distant haze."""
HAZE_START_M = 120.0
"""The ground fades into the haze colour from here to MAX_RANGE_M (aerial perspective)."""
NEAR_M = 0.1
"""Near clipping plane of actor faces, along the optical axis."""
FOG_CONTRAST_LN = math.log(20.0)
"""At the fog visibility distance contrast has fallen to 5 %: exp(-3.0 d / visibility)."""

_SHIFT = 4  # fixed-point bits of cv2 polygon coordinates (1/16 pixel)
_SUN = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])  # towards the sun
_SKY = {  # (horizon, zenith) RGB
    False: (np.array([196.0, 211.0, 228.0]), np.array([86.0, 136.0, 206.0])),
    True: (np.array([24.0, 27.0, 38.0]), np.array([4.0, 6.0, 14.0])),
}
_FOG_RGB = {False: (196, 200, 204), True: (26, 28, 33)}
_NIGHT_AMBIENT = 0.22  # share of daylight left at night (moon, street glow)
_HEADLIGHT_X_M = 3.6  # ego headlights, m ahead of base_link (front of a 4.9 m car)
_LAMP_RGB = {  # (rear, front) lamp colours by night
    False: ((120, 22, 22), (205, 205, 195)),
    True: ((255, 45, 30), (255, 250, 228)),
}
_BOX_CORNERS = np.array(  # unit box about the footprint centre: x, y in [-0.5, 0.5], z in [0, 1]
    [
        [x, y, z]
        for z in (0.0, 1.0)
        for x, y in ((0.5, 0.5), (0.5, -0.5), (-0.5, -0.5), (-0.5, 0.5))
    ]
)
_FACES = np.array([[0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7], [4, 5, 6, 7]])
"""Corner indices of the visible-from-above faces: front, right, back, left, top."""
_FACE_NORMALS = np.array([[1.0, 0, 0], [0, -1.0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
_FRONT, _BACK = 0, 2
_LAMP_FACES = (_BACK, _FRONT)  # faces with two lamps each, of cars and trucks


def _lamp_template() -> tuple[np.ndarray, np.ndarray]:
    """Return (scale, offset), (16, 3) each: lamp corners = box size * scale + offset, local.

    Two lamps per face, 0.28 m x 0.18 m, 0.1 m in from the sides, at the height of real rear
    lamps (0.75 m) and headlamps (0.62 m), 2 cm proud of the face so they are drawn over it.
    """
    half_w, half_h = 0.14, 0.09
    scale, offset = [], []
    for side, height in ((-1.0, 0.75), (1.0, 0.62)):  # the _LAMP_FACES: back, front
        for lateral in (1.0, -1.0):
            for dy, dz in ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)):
                scale.append([side / 2.0, lateral / 2.0, 0.0])
                offset.append(
                    [side * 0.02, lateral * (-0.1 - half_w) + dy * half_w, height + dz * half_h]
                )
    return np.array(scale), np.array(offset)


_LAMP_SCALE, _LAMP_OFFSET = _lamp_template()


@dataclass(frozen=True)
class _Band:
    """Rows of a camera whose ground is sampled from one raster level."""

    rows: slice
    level: int
    step: int  # 1: every pixel; 2: every other pixel and row, scaled up
    ground_xy: np.ndarray  # (rows, width, 2) / step, float32, base_link; (0, 0) if no ground


@dataclass(frozen=True)
class _Camera:
    """Everything about one camera that does not change from frame to frame."""

    spec: CameraSpec
    intrinsics: CameraIntrinsics
    rotation: np.ndarray  # optical frame -> base_link
    bands: tuple[_Band, ...]
    ground_rows: slice  # rows that have ground in them
    haze_rows: slice  # rows where ground fades into haze (or has none)
    haze_weights: tuple[np.ndarray, np.ndarray]  # (ground, sky) float32 weights of haze_rows
    sky: dict[bool, np.ndarray]  # by night: (H, W, 3) uint8 sky and haze, also the canvas
    headlight_gain: np.ndarray  # ground_rows (h, W, 3) uint8, night light x 128
    distance_m: np.ndarray  # (H, W) float32 ray length to the ground; inf where none


class CameraRenderer:
    """Renders every camera of a rig; the rig must give intrinsics for each camera.

    `render` returns fresh arrays each frame. `last_timing_ms` holds the time of the last frame's
    shared work ('road': raster and actor geometry) and of each camera; `last_actors_in_view`
    how many actors at least one camera drew.
    """

    def __init__(self, rig: RigConfig) -> None:
        missing = [camera.name for camera in rig.cameras if camera.intrinsics is None]
        if missing:
            raise ValueError(
                f'the renderer needs intrinsics for every camera; none for {", ".join(missing)}'
            )
        self.rig = rig
        self._cameras: list[_Camera] = []
        radii = np.zeros(len(LEVEL_CELLS_M))
        for spec in rig.cameras:
            camera, camera_radii = _prepare_camera(spec)
            self._cameras.append(camera)
            radii = np.maximum(radii, camera_radii)
        self._radii = radii
        self._reach_m = MAX_RANGE_M + max(np.linalg.norm(c.translation) for c in rig.cameras)
        self._raster: RoadRaster | None = None
        self._fog: tuple[float, list[tuple[np.ndarray, np.ndarray]]] | None = None
        height = max(camera.intrinsics.height for camera in self._cameras)
        width = max(camera.intrinsics.width for camera in self._cameras)
        grain = np.random.default_rng(0).normal(128.0, 40.0, (2 * height, 2 * width, 3))
        self._grain = np.clip(grain, 0, 255).astype(np.uint8)  # rain's sensor noise, offset/frame
        self.last_timing_ms: dict[str, float] = {}
        self.last_actors_in_view = 0

    def render(self, scene: Scene) -> dict[str, np.ndarray]:
        """Return camera name -> (H, W, 3) uint8 RGB image; equal scenes give equal pixels."""
        start = time.perf_counter()
        if self._raster is None or self._raster.road is not scene.road:
            self._raster = RoadRaster(scene.road, self._radii)
        self._raster.update(scene.ego.x, scene.ego.y)
        actors = _ActorGeometry(scene, self._reach_m, self._cameras)
        timing = {'road': 1e3 * (time.perf_counter() - start)}
        in_view = np.zeros(actors.count, dtype=bool)
        images = {}
        for index, camera in enumerate(self._cameras):
            start = time.perf_counter()
            images[camera.spec.name] = self._render_camera(index, camera, scene, actors, in_view)
            timing[camera.spec.name] = 1e3 * (time.perf_counter() - start)
        self.last_timing_ms = timing
        self.last_actors_in_view = int(in_view.sum())
        return images

    def _render_camera(
        self,
        index: int,
        camera: _Camera,
        scene: Scene,
        actors: _ActorGeometry,
        in_view: np.ndarray,
    ) -> np.ndarray:
        """Draw one camera: sky, ground, night light, haze, fog, actors, rain."""
        look = scene.appearance
        sky = camera.sky[look.night]
        image = sky.copy()
        for band in camera.bands:
            rows = image[band.rows]
            if band.step == 1:
                self._raster.sample(band.level, band.ground_xy, scene.ego, rows)
            else:
                coarse = np.empty((*band.ground_xy.shape[:2], 3), dtype=np.uint8)
                self._raster.sample(band.level, band.ground_xy, scene.ego, coarse)
                cv2.resize(coarse, rows.shape[1::-1], dst=rows, interpolation=cv2.INTER_LINEAR)
        if look.night and camera.bands:
            rows = image[camera.ground_rows]
            cv2.multiply(rows, camera.headlight_gain, dst=rows, scale=1.0 / 128.0)
        rows = camera.haze_rows
        if rows.stop > rows.start:
            image[rows] = cv2.blendLinear(image[rows], sky[rows], *camera.haze_weights)
        if look.fog_visibility_m > 0.0:
            keep, fog = self._fog_weights(look.fog_visibility_m)[index]
            colour = np.empty_like(image)
            colour[:] = _FOG_RGB[look.night]
            image = cv2.blendLinear(image, colour, keep, fog)
        in_view[actors.draw(image, index, camera.intrinsics)] = True
        if look.rain_noise > 0.0:
            rng = np.random.default_rng([scene.stamp_ns, index])
            _rain(image, look.rain_noise, rng, self._grain)
        return image

    def _fog_weights(self, visibility_m: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return per camera the (image, fog) blend weights of a visibility; cached per episode."""
        if self._fog is None or self._fog[0] != visibility_m:
            weights = []
            for camera in self._cameras:
                fog = 1.0 - np.exp(-FOG_CONTRAST_LN * camera.distance_m / visibility_m)
                weights.append(((1.0 - fog).astype(np.float32), fog.astype(np.float32)))
            self._fog = (visibility_m, weights)
        return self._fog[1]


def _ground_hits(
    spec: CameraSpec, rotation: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Cast the rays of pixel positions u (columns) x v (rows) onto the ground plane.

    Returns the rays in base_link (not normalised; optical z = 1), their optical depth Z where
    they meet z = 0 (inf if never), the ground points (x, y) in base_link, and whether the ground
    is hit within MAX_RANGE_M of the camera.
    """
    k = spec.intrinsics
    origin = np.asarray(spec.translation, dtype=np.float64)
    optical = np.broadcast_arrays(((u - k.cx) / k.fx)[None, :], ((v - k.cy) / k.fy)[:, None], 1.0)
    rays = np.stack(optical, axis=-1) @ rotation.T
    with np.errstate(divide='ignore', invalid='ignore'):
        depth = np.where(rays[..., 2] < -1e-9, -origin[2] / rays[..., 2], np.inf)
        ground = origin[:2] + depth[..., None] * rays[..., :2]
        reach = depth * np.hypot(rays[..., 0], rays[..., 1])  # horizontal distance
    hit = np.isfinite(depth) & (reach <= MAX_RANGE_M)
    return rays, depth, ground, hit


def _bands(
    spec: CameraSpec, rotation: np.ndarray, depth: np.ndarray, ground: np.ndarray, hit: np.ndarray
) -> tuple[list[_Band], np.ndarray]:
    """Split a camera's ground rows into bands of one raster level; also each level's radius.

    depth, ground and hit are _ground_hits of every pixel centre.

    Adjacent pixels of a row are Z / fx apart on the ground: that footprint picks the level.
    Rows whose footprint is at most half the finest cell (the near road, magnified) are sampled
    at every other pixel and row and scaled up, which looks the same and costs a quarter.
    """
    k = spec.intrinsics
    rows = np.arange(k.height, dtype=np.float64)
    keys = []
    for row_depth, row_hit in zip(depth, hit, strict=True):
        if not row_hit.any():
            keys.append(None)
            continue
        footprint = float(np.median(row_depth[row_hit])) / k.fx
        coarse = row_hit.all() and k.width % 2 == 0 and footprint <= LEVEL_CELLS_M[0] / 2
        keys.append((int(mip_level(footprint)), 2 if coarse else 1))
    bands, radii = [], np.zeros(len(LEVEL_CELLS_M))
    start = 0
    while start < k.height:
        end = start + 1
        while end < k.height and keys[end] == keys[start]:
            end += 1
        key = keys[start]
        if key is not None and key[1] == 2 and (end - start) % 2:
            key = (key[0], 1)  # an odd run: its first row alone at full resolution
            end = start + 1
        if key is not None:
            level, step = key
            u = np.arange(k.width // step) * step + (step - 1) / 2.0
            v = rows[start:end:step] + (step - 1) / 2.0
            _, _, points, inside = _ground_hits(spec, rotation, u, v)
            ground_xy = np.where(inside[..., None], points, 0.0).astype(np.float32)
            bands.append(_Band(slice(start, end), level, step, ground_xy))
            span = np.linalg.norm(ground[start:end][hit[start:end]], axis=-1)
            radii[level] = max(radii[level], float(span.max()) + 1.0)
        start = end
    return bands, radii


def _prepare_camera(spec: CameraSpec) -> tuple[_Camera, np.ndarray]:
    """Precompute a camera's ground bands, sky and weights; also its radius per level."""
    k = spec.intrinsics
    rotation = rotation_from_quaternion(spec.rotation)
    rays, depth, ground, hit = _ground_hits(
        spec, rotation, np.arange(k.width, dtype=float), np.arange(k.height, dtype=float)
    )
    bands, radii = _bands(spec, rotation, depth, ground, hit)
    distance = np.where(hit, depth * np.linalg.norm(rays, axis=-1), np.inf)
    ground_rows = np.flatnonzero(hit.any(axis=1))
    ground_slice = (
        slice(int(ground_rows.min()), int(ground_rows.max()) + 1) if hit.any() else slice(0, 0)
    )
    haze = np.clip((distance - HAZE_START_M) / (MAX_RANGE_M - HAZE_START_M), 0.0, 1.0) ** 2
    haze = np.where(hit, haze, 1.0)
    faded = np.flatnonzero((haze[ground_slice] > 0.0).any(axis=1)) + ground_slice.start
    haze_slice = slice(int(faded.min()), int(faded.max()) + 1) if faded.size else slice(0, 0)
    # Sky: a gradient with the ray's elevation; below the horizon (no ground within range) the
    # horizon colour, which is also the haze the far ground fades into.
    elevation = np.arcsin(np.clip(rays[..., 2] / np.linalg.norm(rays, axis=-1), -1.0, 1.0))
    blend = (np.clip(elevation / 0.6, 0.0, 1.0) ** 0.6)[..., None]
    sky = {
        night: np.ascontiguousarray(np.rint(horizon + (zenith - horizon) * blend).astype(np.uint8))
        for night, (horizon, zenith) in _SKY.items()
    }
    camera = _Camera(
        spec=spec,
        intrinsics=k,
        rotation=rotation,
        bands=tuple(bands),
        ground_rows=ground_slice,
        haze_rows=haze_slice,
        haze_weights=(
            np.ascontiguousarray(1.0 - haze[haze_slice], dtype=np.float32),
            np.ascontiguousarray(haze[haze_slice], dtype=np.float32),
        ),
        sky=sky,
        headlight_gain=_headlight_gain(ground[ground_slice], hit[ground_slice]),
        distance_m=distance.astype(np.float32),
    )
    return camera, radii


def _headlight_gain(ground: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Return the night light on base_link ground points: ambient plus the ego's low beams.

    Stored x 128 as uint8 RGB, for cv2.multiply with scale 1/128; 1 (128) where there is no
    ground, since those pixels are replaced by the sky.
    """
    ahead = ground[..., 0] - _HEADLIGHT_X_M
    angle = np.arctan2(np.abs(ground[..., 1]), np.maximum(ahead, 1e-3))
    beam = np.where(
        ahead > 0.0,
        np.exp(-((angle / 0.35) ** 2)) * ahead / (ahead + 3.0) / (1.0 + (ahead / 40.0) ** 2),
        0.0,
    )
    light = _NIGHT_AMBIENT + 1.6 * beam[..., None] * np.array([1.0, 0.96, 0.85])
    light = np.where(hit[..., None], light, 1.0)
    return np.ascontiguousarray(np.clip(np.rint(128.0 * light), 0, 255).astype(np.uint8))


class _ActorGeometry:
    """The actors of one frame projected into every camera at once, ready to draw.

    All the numpy work is done here for all cameras together (a frame has tens of actors and a
    handful of cameras, so per-camera numpy calls would cost more than their arithmetic); what
    is left per camera is the fill of each visible face.
    """

    def __init__(self, scene: Scene, reach_m: float, cameras: list[_Camera]) -> None:
        ego, look = scene.ego, scene.appearance
        rows = [
            (a.pose.x, a.pose.y, a.pose.yaw, a.length_m, a.width_m, a.height_m, *a.colour, a.kind)
            for a in scene.actors
        ]
        data = np.array([row[:9] for row in rows], dtype=np.float64).reshape(-1, 9)
        size = data[:, 3:6]
        # Only actors that may be within reach_m of base_link (range plus camera mounting).
        near = np.hypot(data[:, 0] - ego.x, data[:, 1] - ego.y) <= reach_m + 0.5 * np.linalg.norm(
            size, axis=1
        )
        self.lamps = np.array([row[9] in (ActorKind.CAR, ActorKind.TRUCK) for row in rows])[near]
        data, size = data[near], size[near]
        self.count = count = len(data)
        self.lamp_rgb = _LAMP_RGB[look.night]
        if not count:
            return
        # Local corners (8 box, 16 lamp) rotated by each actor's yaw and moved to its position.
        turn = np.zeros((count, 3, 3))
        turn[:, 0, 0] = turn[:, 1, 1] = np.cos(data[:, 2])
        turn[:, 0, 1] = np.sin(data[:, 2])
        turn[:, 1, 0] = -turn[:, 0, 1]
        turn[:, 2, 2] = 1.0
        local = np.concatenate(
            [_BOX_CORNERS * size[:, None], _LAMP_SCALE * size[:, None] + _LAMP_OFFSET], axis=1
        )
        world = local @ turn + np.column_stack([data[:, :2], np.zeros(count)])[:, None]
        normals = _FACE_NORMALS @ turn  # (n, 5, 3)
        centres = world[:, _FACES].mean(axis=2)  # (n, 5, 3)
        light = 0.55 + 0.45 * np.clip(normals @ _SUN, 0.0, None)  # (n, 5)
        if look.night:
            light = _NIGHT_AMBIENT * light + _headlights(ego, centres, normals)
        colours = np.clip(data[:, None, 6:9] * light[..., None], 0.0, 255.0)  # (n, 5, 3)
        # Every camera's pose in the world, and the points in its optical frame: (C, n, 24, 3).
        c, s = math.cos(ego.yaw), math.sin(ego.yaw)
        ego_rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        rotation = ego_rotation @ np.stack([camera.rotation for camera in cameras])
        translation = np.stack([camera.spec.translation for camera in cameras])
        position = np.array([ego.x, ego.y, 0.0]) + translation @ ego_rotation.T  # (C, 3)
        points = (world[None] - position[:, None, None]) @ rotation[:, None]
        x, y, z = points[..., :8, 0], points[..., :8, 1], points[..., :8, 2]
        k = np.array(
            [
                [
                    c.intrinsics.fx,
                    c.intrinsics.fy,
                    c.intrinsics.cx,
                    c.intrinsics.cy,
                    c.intrinsics.width,
                    c.intrinsics.height,
                ]
                for c in cameras
            ]
        )[:, None, None]
        fx, fy, cx, cy, width, height = (k[..., i] for i in range(6))
        distance = np.linalg.norm(data[None, :, :2] - position[:, None, :2], axis=-1)  # (C, n)
        outside = (  # all eight corners beyond one plane of the view frustum, or out of range
            (z < NEAR_M).all(-1)
            | (fx * x + (cx + 0.5) * z < 0.0).all(-1)
            | (-fx * x + (width - 0.5 - cx) * z < 0.0).all(-1)
            | (fy * y + (cy + 0.5) * z < 0.0).all(-1)
            | (-fy * y + (height - 0.5 - cy) * z < 0.0).all(-1)
            | (distance - 0.5 * np.linalg.norm(size, axis=1) > MAX_RANGE_M)
        )
        self.facing = ((position[:, None, None] - centres) * normals).sum(-1) > 0.0  # (C, n, 5)
        self.crossing = (z < NEAR_M).any(-1)  # (C, n): faces to clip against the near plane
        if look.fog_visibility_m > 0.0:
            depth = np.linalg.norm(centres - position[:, None, None], axis=-1)[..., None]
            fog = 1.0 - np.exp(-FOG_CONTRAST_LN * depth / look.fog_visibility_m)
            colours = colours * (1.0 - fog) + np.array(_FOG_RGB[look.night]) * fog
        else:
            colours = np.broadcast_to(colours, (len(cameras), *colours.shape))
        self.colours = colours.tolist()
        with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
            pixels = points[..., :2] / points[..., 2:] * k[..., :2] + k[..., 2:4]
            pixels = np.rint(pixels * (1 << _SHIFT)).astype(np.int32)  # garbage where z <= 0
        self.faces = np.ascontiguousarray(pixels[:, :, _FACES])  # (C, n, 5, 4, 2)
        self.lamp_pixels = pixels[:, :, 8:].reshape(len(cameras), count, 2, 2, 4, 2)
        self.points = points
        order = np.argsort(-distance, axis=1, kind='stable')  # far to near: near faces paint over
        self.order = [row[~outside[c][row]].tolist() for c, row in enumerate(order)]

    def draw(self, image: np.ndarray, index: int, k: CameraIntrinsics) -> list[int]:
        """Draw the actors camera `index` sees, far to near; return their indices."""
        if not self.count:
            return []
        facing, crossing, colours = self.facing[index], self.crossing[index], self.colours[index]
        faces, points = self.faces[index], self.points[index]
        for i in self.order[index]:
            for face in np.flatnonzero(facing[i]).tolist():
                if crossing[i]:  # clip what is behind the camera (the slow path, rarely)
                    _fill_clipped(image, points[i, _FACES[face]], colours[i][face], k)
                else:
                    cv2.fillConvexPoly(image, faces[i, face], colours[i][face], cv2.LINE_8, _SHIFT)
            if self.lamps[i] and not crossing[i]:
                for slot, face in enumerate(_LAMP_FACES):
                    if facing[i, face]:
                        lamps = list(self.lamp_pixels[index, i, slot])
                        cv2.fillPoly(image, lamps, self.lamp_rgb[slot], cv2.LINE_8, _SHIFT)
        return self.order[index]


def _headlights(ego: Pose2D, centres: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Return the ego's low-beam light on each face (n, 5): lit faces turned towards it."""
    heading = np.array([math.cos(ego.yaw), math.sin(ego.yaw)])
    to_face = centres[..., :2] - (np.array([ego.x, ego.y]) + _HEADLIGHT_X_M * heading)
    dist = np.maximum(np.linalg.norm(to_face, axis=-1), 1e-6)
    angle = np.arccos(np.clip(to_face @ heading / dist, -1.0, 1.0))
    facing = np.clip(-(normals[..., :2] * to_face).sum(-1) / dist, 0.0, 1.0)
    return 1.4 * facing * np.exp(-((angle / 0.35) ** 2)) / (1.0 + (dist / 40.0) ** 2)


def _fixed_point(points: np.ndarray, k: CameraIntrinsics) -> np.ndarray:
    """Project optical-frame points (..., 3) in front of the camera to 1/16 px int32 (..., 2)."""
    z = points[..., 2:3]
    uv = points[..., :2] / z * np.array([k.fx, k.fy]) + np.array([k.cx, k.cy])
    return np.rint(uv * (1 << _SHIFT)).astype(np.int32)


def _fill_clipped(
    image: np.ndarray, polygon: np.ndarray, colour: Sequence[float], k: CameraIntrinsics
) -> None:
    """Fill a convex optical-frame polygon, clipped to z >= NEAR_M (Sutherland-Hodgman)."""
    if polygon[:, 2].min() < NEAR_M:
        clipped = []
        for current, following in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
            if current[2] >= NEAR_M:
                clipped.append(current)
            if (current[2] >= NEAR_M) != (following[2] >= NEAR_M):
                t = (NEAR_M - current[2]) / (following[2] - current[2])
                clipped.append(current + t * (following - current))
        if len(clipped) < 3:
            return
        polygon = np.array(clipped)
    cv2.fillConvexPoly(image, _fixed_point(polygon, k), colour, cv2.LINE_8, _SHIFT)


def _rain(image: np.ndarray, strength: float, rng: np.random.Generator, grain: np.ndarray) -> None:
    """Overlay rain in place: a grey veil, drops on the lens, streaks and sensor grain."""
    height, width = image.shape[:2]
    cv2.convertScaleAbs(image, dst=image, alpha=1.0 - 0.3 * strength, beta=30.0 * strength)
    for _ in range(round(10 * strength)):  # drops: a small upside-down lens of the scene
        radius = int(rng.integers(5, 18))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        x0, x1 = max(cx - radius, 0), min(cx + radius + 1, width)
        y0, y1 = max(cy - radius, 0), min(cy + radius + 1, height)
        patch = image[y0:y1, x0:x1]
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2).astype(np.uint8)
        lens = cv2.convertScaleAbs(np.ascontiguousarray(patch[::-1, ::-1]), alpha=0.85, beta=30)
        cv2.copyTo(lens, inside, patch)
    count = round(160 * strength)
    starts = rng.uniform((0, 0), (width, height), (count, 2))
    lengths = rng.uniform(8.0, 30.0, count)
    angles = rng.normal(0.2, 0.05, count)  # from the vertical, blown by the relative wind
    ends = starts + lengths[:, None] * np.column_stack([np.sin(angles), np.cos(angles)])
    shades = rng.uniform(170.0, 225.0, count)
    for start, end, shade in zip(starts.astype(int), ends.astype(int), shades, strict=True):
        cv2.line(image, tuple(start.tolist()), tuple(end.tolist()), (shade,) * 3, 1, cv2.LINE_AA)
    dy, dx = (
        int(rng.integers(0, grain.shape[0] - height)),
        int(rng.integers(0, grain.shape[1] - width)),
    )
    gain = 0.35 * strength
    cv2.addWeighted(
        image, 1.0, grain[dy : dy + height, dx : dx + width], gain, -128.0 * gain, dst=image
    )
