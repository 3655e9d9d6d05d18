"""Tests of the ROS-free image preprocessing core: every encoding, geometry, and every rejection.

Each encoding is built from one known RGB image and wrapped in both a real rclpy message and a
rosbags typestore message, because the core must accept both (nodes vs. offline replay/training).
"""

import array
import pickle

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rosbags.image.image import ENCODINGMAP
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo as RclpyCameraInfo
from sensor_msgs.msg import CompressedImage as RclpyCompressedImage
from sensor_msgs.msg import Image as RclpyImage

from vla_perception import image_preprocessing as ip
from vla_perception.image_preprocessing import (
    MAX_DIMENSION,
    REJECT_REASONS,
    SUPPORTED_ENCODINGS,
    ImagePreprocessor,
    ImageRejected,
    Intrinsics,
    PreparedImage,
    area_resize,
    validate_compressed_image,
    validate_raw_image,
)

TS = get_typestore(Stores.ROS2_KILTED)
BagImage = TS.types['sensor_msgs/msg/Image']
BagCompressedImage = TS.types['sensor_msgs/msg/CompressedImage']
BagCameraInfo = TS.types['sensor_msgs/msg/CameraInfo']
BagHeader = TS.types['std_msgs/msg/Header']
BagTime = TS.types['builtin_interfaces/msg/Time']
BagRoi = TS.types['sensor_msgs/msg/RegionOfInterest']

# Bytes per pixel from an independent implementation of the ROS encodings (rosbags.image).
BPP = {name: depth // 8 * channels for name, (depth, _, _, channels) in ENCODINGMAP.items()}

# A 48x64 test card of 3 x 4 blocks of 16 x 16 px, each a distinct colour with R != B (so a
# red/blue swap or a wrong Bayer phase shows) and distinct grey levels for mono8.
BLOCK = 16
COLOURS = np.array(
    [
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]],
        [[0, 255, 128], [255, 0, 255], [200, 120, 40], [40, 120, 200]],
        [[128, 64, 32], [30, 200, 90], [250, 180, 100], [90, 20, 160]],
    ],
    dtype=np.uint8,
)
GREYS = np.array([[0, 20, 40, 60], [90, 110, 130, 150], [180, 200, 230, 255]], dtype=np.uint8)
IN_H, IN_W = COLOURS.shape[0] * BLOCK, COLOURS.shape[1] * BLOCK  # 48 x 64
OUT_H, OUT_W = IN_H // 2, IN_W // 2  # 24 x 32: each block is 8 x 8 px in the output

# Colour tolerance (grey levels) per family: whole-pixel formats are exact; YUV 4:2:2 loses to
# 8-bit rounding of the limited-range BT.601 round trip; demosaicing is exact inside flat blocks.
TOLERANCE = {'yuv': 3, 'bayer': 0, 'exact': 0}

BAYER_PHASE = {  # channel (0=R, 1=G, 2=B) at (row % 2, col % 2)
    'bayer_rggb8': ((0, 1), (1, 2)),
    'bayer_bggr8': ((2, 1), (1, 0)),
    'bayer_gbrg8': ((1, 2), (0, 1)),
    'bayer_grbg8': ((1, 0), (2, 1)),
}


def card_rgb() -> np.ndarray:
    return np.repeat(np.repeat(COLOURS, BLOCK, axis=0), BLOCK, axis=1)


def card_grey() -> np.ndarray:
    return np.repeat(np.repeat(GREYS, BLOCK, axis=0), BLOCK, axis=1)


def rgb_to_yuv444_bt601(rgb: np.ndarray) -> np.ndarray:
    """Limited-range BT.601 (Y 16..235, UV 16..240), what UYVY cameras send and OpenCV reads."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.clip(np.rint(np.stack([y, u, v], axis=-1)), 0, 255).astype(np.uint8)


def pack_yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """Pack to (h, w * 2) bytes: 'uyvy' = U0 Y0 V0 Y1, 'yuyv' = Y0 U0 Y1 V0 (chroma averaged)."""
    yuv = rgb_to_yuv444_bt601(rgb).astype(np.uint16)
    y = yuv[..., 0]
    u = (yuv[:, 0::2, 1] + yuv[:, 1::2, 1] + 1) // 2
    v = (yuv[:, 0::2, 2] + yuv[:, 1::2, 2] + 1) // 2
    out = np.empty((rgb.shape[0], rgb.shape[1] // 2, 4), dtype=np.uint8)
    if order == 'uyvy':
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    return out.reshape(rgb.shape[0], -1)


def mosaic(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Sample the RGB image through a Bayer colour filter array of the given ROS pattern."""
    out = np.empty(rgb.shape[:2], dtype=np.uint8)
    for dy in range(2):
        for dx in range(2):
            channel = BAYER_PHASE[encoding][dy][dx]
            out[dy::2, dx::2] = rgb[dy::2, dx::2, channel]
    return out


def encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Return (h, w * bpp) bytes of the RGB image in a ROS raw encoding."""
    h, w = rgb.shape[:2]
    if encoding == 'rgb8':
        packed = rgb
    elif encoding == 'bgr8':
        packed = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding == 'rgba8':
        packed = np.dstack([rgb, np.full((h, w), 77, np.uint8)])
    elif encoding == 'bgra8':
        packed = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.full((h, w), 77, np.uint8)])
    elif encoding == 'mono8':
        packed = rgb[..., 0]  # callers pass a grey card replicated to 3 channels
    elif encoding in ('yuv422', 'uyvy'):
        packed = pack_yuv422(rgb, 'uyvy')
    elif encoding in ('yuv422_yuy2', 'yuyv'):
        packed = pack_yuv422(rgb, 'yuyv')
    else:
        packed = mosaic(rgb, encoding)
    return np.ascontiguousarray(packed).reshape(h, -1)


def pad_rows(rows: np.ndarray, padding: int) -> np.ndarray:
    """Append `padding` garbage bytes to each row (drivers align rows this way)."""
    if padding == 0:
        return rows
    garbage = np.full((rows.shape[0], padding), 0xAB, dtype=np.uint8)
    return np.hstack([rows, garbage])


def raw_message(kind: str, rows: np.ndarray, width: int, encoding: str, step=None, data=None):
    """Wrap (h, step) bytes in an rclpy or a rosbags sensor_msgs/Image."""
    height = rows.shape[0]
    step = rows.shape[1] if step is None else step
    payload = rows.tobytes() if data is None else data
    if kind == 'rclpy':
        return RclpyImage(
            height=height,
            width=width,
            encoding=encoding,
            is_bigendian=0,
            step=step,
            data=array.array('B', payload),
        )
    return BagImage(
        header=BagHeader(stamp=BagTime(sec=1, nanosec=0), frame_id='camera'),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=np.frombuffer(payload, dtype=np.uint8).copy(),
    )


def compressed_message(kind: str, fmt: str, payload: bytes):
    if kind == 'rclpy':
        return RclpyCompressedImage(format=fmt, data=array.array('B', payload))
    return BagCompressedImage(
        header=BagHeader(stamp=BagTime(sec=1, nanosec=0), frame_id='camera'),
        format=fmt,
        data=np.frombuffer(payload, dtype=np.uint8).copy(),
    )


def camera_info(kind: str, width: int, height: int, k, d=(), model='plumb_bob', p=None):
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    p = np.hstack([k, np.zeros((3, 1))]) if p is None else np.asarray(p, dtype=np.float64)
    if kind == 'rclpy':
        return RclpyCameraInfo(
            width=width,
            height=height,
            distortion_model=model,
            d=list(map(float, d)),
            k=k.ravel(),
            p=p.ravel(),
        )
    return BagCameraInfo(
        header=BagHeader(stamp=BagTime(sec=1, nanosec=0), frame_id='camera'),
        height=height,
        width=width,
        distortion_model=model,
        d=np.asarray(d, dtype=np.float64),
        k=k.ravel(),
        r=np.eye(3).ravel(),
        p=p.ravel(),
        binning_x=0,
        binning_y=0,
        roi=BagRoi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def message_bytes(msg) -> bytes:
    return bytes(np.frombuffer(msg.data, dtype=np.uint8))


def pinhole_k(fx, fy, cx, cy) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def family(encoding: str) -> str:
    if encoding in ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'):
        return 'yuv'
    return 'bayer' if encoding.startswith('bayer') else 'exact'


def assert_block_colours(rgb: np.ndarray, expected: np.ndarray, tolerance: int, margin: int):
    """Each output block (8 x 8 px), `margin` px in from its edges, has its expected colour."""
    out_block = BLOCK // 2
    for row in range(expected.shape[0]):
        for col in range(expected.shape[1]):
            y0, x0 = row * out_block + margin, col * out_block + margin
            inner = rgb[y0 : y0 + out_block - 2 * margin, x0 : x0 + out_block - 2 * margin]
            error = np.abs(inner.astype(int) - expected[row, col].astype(int)).max()
            assert error <= tolerance, (
                f'block ({row}, {col}): expected {expected[row, col].tolist()}, got '
                f'{inner.reshape(-1, 3)[0].tolist()} (max error {error} > {tolerance})'
            )


def dot_image(height: int, width: int, u: float, v: float, sigma: float = 2.0) -> np.ndarray:
    """Grey image with one Gaussian dot whose intensity centroid is at pixel (u, v)."""
    ys, xs = np.mgrid[0:height, 0:width]
    blob = np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * sigma**2))
    return np.rint(255 * blob).astype(np.uint8)


def centroid(rgb: np.ndarray) -> tuple[float, float]:
    weights = rgb.astype(np.float64).sum(axis=2)
    weights[weights < 0.1 * weights.max()] = 0  # ignore resampling dust far from the dot
    ys, xs = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
    return float((xs * weights).sum() / weights.sum()), float((ys * weights).sum() / weights.sum())


def project(k: np.ndarray, point: np.ndarray) -> np.ndarray:
    uvw = k[:, :3] @ point + (k[:, 3] if k.shape[1] == 4 else 0)
    return uvw[:2] / uvw[2]


# --- every encoding, both message flavours ----------------------------------------------------


@pytest.mark.parametrize('kind', ['rclpy', 'rosbags'])
@pytest.mark.parametrize('encoding', sorted(SUPPORTED_ENCODINGS))
def test_every_encoding_decodes_to_expected_rgb(encoding, kind):
    if encoding == 'mono8':
        source = np.dstack([card_grey()] * 3)
        expected = np.dstack([GREYS] * 3)
    else:
        source, expected = card_rgb(), COLOURS
    msg = raw_message(kind, encode(source, encoding), IN_W, encoding)
    before = message_bytes(msg)

    prepared = ImagePreprocessor(OUT_W, OUT_H).prepare(msg, None)

    assert isinstance(prepared, PreparedImage)
    assert prepared.intrinsics is None
    assert prepared.rgb.shape == (OUT_H, OUT_W, 3)
    assert prepared.rgb.dtype == np.uint8
    assert prepared.rgb.flags.c_contiguous
    fam = family(encoding)
    # Demosaicing blends across a block edge by ~1 input px: skip 1 output px at block edges.
    assert_block_colours(prepared.rgb, expected, TOLERANCE[fam], margin=1 if fam != 'exact' else 0)
    assert message_bytes(msg) == before, 'prepare() modified the input message'
    assert not np.may_share_memory(prepared.rgb, np.frombuffer(msg.data, dtype=np.uint8))


@pytest.mark.parametrize('encoding', sorted(SUPPORTED_ENCODINGS))
def test_row_padding_gives_the_same_image(encoding):
    rows = encode(card_rgb(), encoding)
    pre = ImagePreprocessor(OUT_W, OUT_H)
    tight = pre.prepare(raw_message('rclpy', rows, IN_W, encoding), None)
    padded = pre.prepare(raw_message('rosbags', pad_rows(rows, 13), IN_W, encoding), None)
    assert padded.rgb.shape == tight.rgb.shape
    np.testing.assert_array_equal(padded.rgb, tight.rgb)


@pytest.mark.parametrize('kind', ['rclpy', 'rosbags'])
def test_raw_view_is_zero_copy_and_skips_padding(kind):
    rows = pad_rows(encode(card_rgb(), 'bgr8'), 16)
    msg = raw_message(kind, rows, IN_W, 'bgr8')
    view = ip._pixel_view(msg)
    assert view.shape == (IN_H, IN_W, 3)
    assert np.shares_memory(view, np.frombuffer(msg.data, dtype=np.uint8))


def test_output_size_equal_to_input_does_not_alias_the_message():
    msg = raw_message('rosbags', encode(card_rgb(), 'rgb8'), IN_W, 'rgb8')
    prepared = ImagePreprocessor(IN_W, IN_H).prepare(msg, None)
    np.testing.assert_array_equal(prepared.rgb, card_rgb())
    assert prepared.rgb.flags.c_contiguous
    assert not np.shares_memory(prepared.rgb, msg.data)


def test_upscaling_is_allowed():
    msg = raw_message('rclpy', encode(card_rgb(), 'bgr8'), IN_W, 'bgr8')
    prepared = ImagePreprocessor(IN_W * 2, IN_H * 2).prepare(msg, None)
    assert prepared.rgb.shape == (IN_H * 2, IN_W * 2, 3)
    np.testing.assert_array_equal(prepared.rgb[8, 8], COLOURS[0, 0])


def smooth_scene(width: int, height: int, sigma: float) -> np.ndarray:
    """Full-contrast random scene with no detail finer than about sigma px (like optics blur)."""
    noise = np.random.default_rng(3).integers(0, 256, (height, width, 3), np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), sigma), None, 0, 255, cv2.NORM_MINMAX)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'bgra8', 'mono8'])
def test_default_resize_is_exactly_one_inter_area_pass(encoding):
    scene = smooth_scene(640, 360, 1.0)
    if encoding == 'mono8':
        scene = np.dstack([scene[..., 0]] * 3)
    msg = raw_message('rosbags', encode(scene, encoding), 640, encoding)
    prepared = ImagePreprocessor(224, 128).prepare(msg, None)
    expected = cv2.resize(scene, (224, 128), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(prepared.rgb, expected)


@pytest.mark.parametrize(
    ('in_size', 'out_size', 'max_error', 'mean_error'),
    [
        ((1280, 720), (448, 256), 8, 1.2),  # measured 6 and 0.95
        ((1920, 1080), (448, 256), 16, 2.2),  # measured 12 and 1.7
        ((641, 361), (200, 100), 0, 0.0),  # no integer factor divides 641 or 361: one pass
    ],
)
def test_two_pass_area_resize_stays_close_to_one_pass(in_size, out_size, max_error, mean_error):
    # Detail down to about one output pixel: the hardest case that a camera image still has.
    scene = smooth_scene(*in_size, sigma=in_size[0] / out_size[0])
    ours = area_resize(scene, *out_size, two_pass=True).astype(int)
    reference = cv2.resize(scene, out_size, interpolation=cv2.INTER_AREA).astype(int)
    assert ours.shape == reference.shape == (out_size[1], out_size[0], 3)
    assert np.abs(ours - reference).max() <= max_error
    assert np.abs(ours - reference).mean() <= mean_error
    assert area_resize(scene, *in_size, two_pass=True) is scene


# --- compressed ----------------------------------------------------------------------------


@pytest.mark.parametrize('kind', ['rclpy', 'rosbags'])
@pytest.mark.parametrize(
    ('fmt', 'ext', 'tolerance'),
    [('jpeg', '.jpg', 12), ('rgb8; jpeg compressed bgr8', '.jpg', 12), ('png', '.png', 0)],
)
def test_compressed_colour_decodes_to_rgb(kind, fmt, ext, tolerance):
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(card_rgb(), cv2.COLOR_RGB2BGR))
    assert ok
    msg = compressed_message(kind, fmt, encoded.tobytes())
    prepared = ImagePreprocessor(OUT_W, OUT_H).prepare(msg, None)
    assert prepared.rgb.shape == (OUT_H, OUT_W, 3)
    assert prepared.rgb.flags.c_contiguous
    assert_block_colours(prepared.rgb, COLOURS, tolerance, margin=1)


@pytest.mark.parametrize(('fmt', 'ext', 'tolerance'), [('jpeg', '.jpg', 4), ('PNG', '.png', 0)])
def test_compressed_grey_decodes_to_rgb(fmt, ext, tolerance):
    ok, encoded = cv2.imencode(ext, card_grey())
    assert ok
    msg = compressed_message('rclpy', fmt, encoded.tobytes())
    prepared = ImagePreprocessor(OUT_W, OUT_H).prepare(msg, None)
    assert prepared.rgb.shape == (OUT_H, OUT_W, 3)
    assert_block_colours(prepared.rgb, np.dstack([GREYS] * 3), tolerance, margin=1)


# --- intrinsics ----------------------------------------------------------------------------


@pytest.mark.parametrize('kind', ['rclpy', 'rosbags'])
def test_intrinsics_from_camera_info(kind):
    k = pinhole_k(910.0, 905.0, 641.5, 358.25)
    p = np.hstack([k, np.array([[-54.6], [0.0], [0.0]])])
    d = [-0.3, 0.1, 0.001, -0.002, 0.0]
    intr = Intrinsics.from_camera_info(camera_info(kind, 1280, 720, k, d, 'plumb_bob', p))
    assert (intr.width, intr.height, intr.distortion_model) == (1280, 720, 'plumb_bob')
    np.testing.assert_array_equal(intr.k, k)
    np.testing.assert_array_equal(intr.p, p)
    np.testing.assert_array_equal(intr.d, d)
    assert intr.k.dtype == intr.d.dtype == intr.p.dtype == np.float64
    assert not intr.k.flags.writeable


def test_scaled_intrinsics_follow_the_pixel_centre_rule():
    k = pinhole_k(910.0, 905.0, 641.5, 358.25)
    p = np.hstack([k, np.array([[-54.6], [3.0], [0.0]])])
    intr = Intrinsics(1280, 720, k, [-0.3, 0.1, 0.0, 0.0, 0.0], 'plumb_bob', p)
    out = intr.scaled(448, 256)
    sx, sy = 448 / 1280, 256 / 720
    assert (out.width, out.height) == (448, 256)
    np.testing.assert_array_equal(out.d, intr.d)
    assert out.distortion_model == 'plumb_bob'
    rng = np.random.default_rng(7)
    points = np.column_stack(
        [rng.uniform(-5, 5, 20), rng.uniform(-3, 3, 20), rng.uniform(2, 50, 20)]
    )
    for point in points:
        for before, after in ((intr.k, out.k), (intr.p, out.p)):
            u, v = project(before, point)
            expected = np.array([(u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5])
            np.testing.assert_allclose(project(after, point), expected, atol=1e-9)
    assert intr.scaled(1280, 720) is intr


@pytest.mark.parametrize('fast_resize', [False, True])
def test_dot_lands_where_the_scaled_intrinsics_say(fast_resize):
    in_w, in_h, out_w, out_h = 640, 360, 224, 128  # non-integer scale: 0.35 x 0.356
    k = pinhole_k(500.0, 500.0, 319.5, 179.5)
    intr = Intrinsics(in_w, in_h, k, [], '', np.hstack([k, np.zeros((3, 1))]))
    pre = ImagePreprocessor(out_w, out_h, fast_resize=fast_resize)
    for point in (np.array([0.2, -0.1, 1.0]), np.array([-0.45, 0.25, 1.0])):
        u, v = project(k, point)
        image = dot_image(in_h, in_w, u, v)
        msg = raw_message('rosbags', image, in_w, 'mono8')
        prepared = pre.prepare(msg, intr)
        expected = project(prepared.intrinsics.k, point)
        np.testing.assert_allclose(centroid(prepared.rgb), expected, atol=1.0)


# --- undistortion --------------------------------------------------------------------------

DISTORTIONS = {
    'plumb_bob': [-0.28, 0.09, 0.0012, -0.0008, 0.0],
    'rational_polynomial': [-0.2, 0.05, 0.001, -0.001, 0.0, 0.12, 0.0, 0.0],
}


@pytest.mark.parametrize('model', sorted(DISTORTIONS))
def test_undistortion_puts_a_dot_at_its_pinhole_projection(model):
    in_w, in_h, out_w, out_h = 640, 480, 320, 240
    k = pinhole_k(500.0, 505.0, 321.0, 238.0)
    d = np.array(DISTORTIONS[model])
    intr = Intrinsics.from_camera_info(camera_info('rosbags', in_w, in_h, k, d, model))
    point = np.array([0.5, 0.36, 1.0])  # far from the centre, where distortion is large
    distorted, _ = cv2.projectPoints(point.reshape(1, 1, 3), np.zeros(3), np.zeros(3), k, d)
    u, v = distorted.ravel()
    msg = raw_message(
        'rclpy', encode(np.dstack([dot_image(in_h, in_w, u, v)] * 3), 'bgr8'), in_w, 'bgr8'
    )

    straight = ImagePreprocessor(out_w, out_h, undistort=True).prepare(msg, intr)
    bent = ImagePreprocessor(out_w, out_h, undistort=False).prepare(msg, intr)

    ideal = project(straight.intrinsics.k, point)
    np.testing.assert_allclose(centroid(straight.rgb), ideal, atol=1.5)
    # Without undistortion the dot is far from the pinhole projection: the check above can fail.
    assert np.linalg.norm(np.array(centroid(bent.rgb)) - ideal) > 5.0
    out = straight.intrinsics
    assert out.distortion_model == 'plumb_bob'
    assert not out.d.any()
    np.testing.assert_allclose(out.k, intr.scaled(out_w, out_h).k)
    np.testing.assert_allclose(out.p[:, :3], out.k)
    assert bent.intrinsics.distortion_model == model
    np.testing.assert_array_equal(bent.intrinsics.d, d)


def test_undistorted_intrinsics_are_pinhole_with_k_and_keep_the_stereo_baseline():
    k = pinhole_k(900.0, 905.0, 640.5, 360.5)
    p = np.array([[880.0, 0.0, 650.0, -52.8], [0.0, 880.0, 355.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    intr = Intrinsics(1280, 720, k, DISTORTIONS['rational_polynomial'], 'rational_polynomial', p)
    out = intr.undistorted()
    assert (out.width, out.height, out.distortion_model) == (1280, 720, 'plumb_bob')
    np.testing.assert_array_equal(out.d, np.zeros(5))
    np.testing.assert_array_equal(out.k, k)
    np.testing.assert_array_equal(out.p, np.hstack([k, p[:, 3:]]))


def test_undistortion_maps_are_computed_once_per_camera(monkeypatch):
    calls = []
    original = cv2.initUndistortRectifyMap

    def counting(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(cv2, 'initUndistortRectifyMap', counting)
    k = pinhole_k(60.0, 60.0, 31.5, 23.5)
    cam_a = Intrinsics(IN_W, IN_H, k, DISTORTIONS['plumb_bob'], 'plumb_bob', np.zeros((3, 4)))
    cam_b = Intrinsics(
        IN_W, IN_H, k * [[1.1], [1.1], [1]], [0.1, 0, 0, 0, 0], 'plumb_bob', np.zeros((3, 4))
    )
    pre = ImagePreprocessor(OUT_W, OUT_H, undistort=True)
    msg = raw_message('rosbags', encode(card_rgb(), 'bgr8'), IN_W, 'bgr8')

    pre.prepare(msg, cam_a)
    first_maps = next(iter(pre._map_cache.values()))
    for _ in range(3):
        pre.prepare(msg, cam_a)
    assert len(calls) == 1
    assert next(iter(pre._map_cache.values())) is first_maps
    pre.prepare(msg, cam_b)
    pre.prepare(msg, cam_b)
    assert len(calls) == 2


@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial', ''])
def test_zero_distortion_skips_the_remap(monkeypatch, model):
    def fail(*args, **kwargs):
        raise AssertionError('remap called for an undistorted camera')

    monkeypatch.setattr(cv2, 'remap', fail)
    k = pinhole_k(60.0, 60.0, 31.5, 23.5)
    intr = Intrinsics(IN_W, IN_H, k, np.zeros(5 if model != '' else 0), model, np.zeros((3, 4)))
    msg = raw_message('rclpy', encode(card_rgb(), 'bgr8'), IN_W, 'bgr8')
    prepared = ImagePreprocessor(OUT_W, OUT_H, undistort=True).prepare(msg, intr)
    assert_block_colours(prepared.rgb, COLOURS, 0, margin=0)
    assert prepared.intrinsics.distortion_model == 'plumb_bob'
    assert not prepared.intrinsics.d.any()


# --- rejections ----------------------------------------------------------------------------


def rejection(call, *args) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        call(*args)
    assert caught.value.reason in REJECT_REASONS
    assert isinstance(caught.value, ValueError)
    return caught.value


@pytest.mark.parametrize('kind', ['rclpy', 'rosbags'])
@pytest.mark.parametrize(('delta', 'actual'), [(-1, 9215), (1, 9217), (-9216, 0)])
def test_wrong_data_length_is_rejected_with_both_counts(kind, delta, actual):
    rows = encode(card_rgb(), 'rgb8')  # step 192, height 48: 9216 bytes
    msg = raw_message(
        kind, rows, IN_W, 'rgb8', data=rows.tobytes()[: 9216 + delta] + b'\0' * max(delta, 0)
    )
    error = rejection(ImagePreprocessor(OUT_W, OUT_H).prepare, msg, None)
    assert error.reason == 'data_size'
    assert '9216' in str(error) and str(actual) in str(error)


def test_step_shorter_than_a_row_is_rejected():
    rows = encode(card_rgb(), 'rgb8')
    msg = raw_message('rclpy', rows, IN_W, 'rgb8', step=191, data=rows.tobytes()[: 191 * IN_H])
    error = rejection(validate_raw_image, msg)
    assert error.reason == 'data_size'
    assert '191' in str(error) and '192' in str(error)


@pytest.mark.parametrize('encoding', ['16UC1', 'weird', 'mono16', 'nv12', ''])
def test_unknown_encoding_is_rejected_by_name(encoding):
    msg = raw_message('rosbags', encode(card_rgb(), 'rgb8'), IN_W, encoding)
    error = rejection(ImagePreprocessor(OUT_W, OUT_H).prepare, msg, None)
    assert error.reason == 'encoding'
    assert repr(encoding) in str(error)
    assert all(name in str(error) for name in SUPPORTED_ENCODINGS)


@pytest.mark.parametrize(
    ('width', 'height', 'numbers'),
    [(0, 48, ['0x48', '16384']), (64, 100000, ['64x100000', '16384']), (64, 0, ['64x0'])],
)
def test_absurd_dimensions_are_rejected(width, height, numbers):
    msg = raw_message('rclpy', np.zeros((1, 192), np.uint8), width, 'rgb8', step=192)
    msg.height = height
    error = rejection(validate_raw_image, msg)
    assert error.reason == 'dimensions'
    assert all(n in str(error) for n in numbers), str(error)


def test_odd_width_packed_yuv_is_rejected():
    msg = raw_message('rclpy', np.zeros((4, 6), np.uint8), 3, 'yuv422')
    error = rejection(validate_raw_image, msg)
    assert error.reason == 'dimensions'
    assert '3' in str(error)


@pytest.mark.parametrize('compressed', [False, True])
def test_camera_info_of_another_size_is_rejected(compressed):
    k = pinhole_k(900.0, 900.0, 639.5, 359.5)
    intr = Intrinsics.from_camera_info(camera_info('rclpy', 1280, 720, k))
    if compressed:
        ok, encoded = cv2.imencode('.png', card_rgb())
        msg = compressed_message('rosbags', 'png', encoded.tobytes())
    else:
        msg = raw_message('rosbags', encode(card_rgb(), 'rgb8'), IN_W, 'rgb8')
    error = rejection(ImagePreprocessor(OUT_W, OUT_H).prepare, msg, intr)
    assert error.reason == 'camera_info_size'
    assert '1280x720' in str(error) and f'{IN_W}x{IN_H}' in str(error)


@pytest.mark.parametrize('kind', ['rclpy', 'rosbags'])
@pytest.mark.parametrize(
    ('fmt', 'payload', 'reason', 'fragment'),
    [
        ('jpeg', b'\xff\xd8garbage', 'corrupt_compressed', '9 bytes'),
        ('png', b'\x89PNG\r\n\x1a\n' + b'\0' * 20, 'corrupt_compressed', '28 bytes'),
        ('jpeg', b'', 'data_size', '0 bytes'),
        ('tiff', b'II*\0', 'encoding', "'tiff'"),
        ('', b'\xff\xd8', 'encoding', "''"),
        ('16UC1; compressedDepth png', b'\0' * 32, 'encoding', 'compressedDepth'),
    ],
)
def test_bad_compressed_images_are_rejected(kind, fmt, payload, reason, fragment):
    msg = compressed_message(kind, fmt, payload)
    error = rejection(ImagePreprocessor(OUT_W, OUT_H).prepare, msg, None)
    assert error.reason == reason
    assert fragment in str(error), str(error)


def test_validate_compressed_image_accepts_known_formats():
    for fmt in ('jpeg', 'JPG', 'png', 'bgr8; jpeg compressed bgr8', 'mono8; png compressed '):
        validate_compressed_image(compressed_message('rclpy', fmt, b'\xff\xd8'))


@pytest.mark.parametrize('model', ['equidistant', 'fisheye', ''])
def test_unsupported_distortion_model_is_rejected_when_undistorting(model):
    k = pinhole_k(60.0, 60.0, 31.5, 23.5)
    intr = Intrinsics(IN_W, IN_H, k, [0.1, 0.01, 0.0, 0.0], model, np.zeros((3, 4)))
    msg = raw_message('rclpy', encode(card_rgb(), 'bgr8'), IN_W, 'bgr8')
    error = rejection(ImagePreprocessor(OUT_W, OUT_H, undistort=True).prepare, msg, intr)
    assert error.reason == 'distortion_model'
    assert repr(model) in str(error)
    # Without undistortion the image is usable: the distortion travels on in the intrinsics.
    prepared = ImagePreprocessor(OUT_W, OUT_H).prepare(msg, intr)
    assert prepared.intrinsics.distortion_model == model


def test_distortion_coefficient_count_opencv_cannot_use_is_rejected():
    k = pinhole_k(60.0, 60.0, 31.5, 23.5)
    intr = Intrinsics(IN_W, IN_H, k, [0.1, 0.01, 0.0], 'plumb_bob', np.zeros((3, 4)))
    msg = raw_message('rclpy', encode(card_rgb(), 'bgr8'), IN_W, 'bgr8')
    error = rejection(ImagePreprocessor(OUT_W, OUT_H, undistort=True).prepare, msg, intr)
    assert error.reason == 'distortion_model'
    assert '3 coefficients' in str(error)


@pytest.mark.parametrize(
    ('width', 'height', 'k', 'd', 'reason', 'fragment'),
    [
        (0, 720, pinhole_k(900, 900, 640, 360), [], 'dimensions', '0x720'),
        (1280, 100000, pinhole_k(900, 900, 640, 360), [], 'dimensions', '1280x100000'),
        (1280, 720, np.zeros((3, 3)), [], 'dimensions', 'fx=0.0'),
        (1280, 720, pinhole_k(np.nan, 900, 640, 360), [], 'dimensions', 'nan'),
        (1280, 720, pinhole_k(900, 900, 640, 360), [0.1, np.inf], 'distortion_model', 'inf'),
    ],
)
def test_bad_camera_info_is_rejected(width, height, k, d, reason, fragment):
    msg = camera_info('rosbags', width, height, k, d)
    error = rejection(Intrinsics.from_camera_info, msg)
    assert error.reason == reason
    assert fragment in str(error), str(error)


def test_camera_info_k_of_wrong_length_is_rejected():
    msg = camera_info('rosbags', 1280, 720, pinhole_k(900, 900, 640, 360))
    msg.k = np.ones(8)
    error = rejection(Intrinsics.from_camera_info, msg)
    assert error.reason == 'dimensions' and '8' in str(error)


def test_rejection_survives_pickling():
    error = ImageRejected('data_size', 'image data is 1 bytes, expected 2')
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, str(copy)) == ('data_size', 'image data is 1 bytes, expected 2')
    with pytest.raises(ValueError, match='unknown rejection reason'):
        ImageRejected('bad_code', 'x')


def test_preprocessor_refuses_an_impossible_output_size():
    with pytest.raises(ValueError, match='0x10'):
        ImagePreprocessor(0, 10)
    with pytest.raises(ValueError, match=str(MAX_DIMENSION)):
        ImagePreprocessor(10, MAX_DIMENSION + 1)


# --- properties over random sizes ----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(sorted(SUPPORTED_ENCODINGS)),
    width=st.integers(1, 40),
    height=st.integers(1, 12),
    padding=st.integers(0, 9),
    delta=st.integers(-3, 3),
)
def test_validation_accepts_exactly_the_consistent_layouts(
    encoding, width, height, padding, delta
):
    bpp = BPP[encoding]
    step = width * bpp + padding
    size = max(step * height + delta, 0)
    msg = raw_message(
        'rosbags', np.zeros((height, step), np.uint8), width, encoding, data=bytes(size)
    )
    odd_yuv = bpp == 2 and width % 2 == 1
    if delta == 0 and not odd_yuv:
        validate_raw_image(msg)
    else:
        error = rejection(validate_raw_image, msg)
        assert error.reason == ('dimensions' if odd_yuv else 'data_size')


@settings(max_examples=40, deadline=None)
@given(
    encoding=st.sampled_from(sorted(SUPPORTED_ENCODINGS)),
    width=st.integers(1, 30).map(lambda w: 2 * w),
    height=st.integers(2, 30),
    padding=st.integers(1, 9),
    out_w=st.integers(1, 40),
    out_h=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_padding_never_changes_the_result(encoding, width, height, padding, out_w, out_h, seed):
    rows = np.random.default_rng(seed).integers(0, 256, (height, width * BPP[encoding]), np.uint8)
    pre = ImagePreprocessor(out_w, out_h, fast_resize=seed % 2 == 1)
    tight = pre.prepare(raw_message('rclpy', rows, width, encoding), None)
    padded = pre.prepare(raw_message('rosbags', pad_rows(rows, padding), width, encoding), None)
    assert tight.rgb.shape == (out_h, out_w, 3) and tight.rgb.flags.c_contiguous
    np.testing.assert_array_equal(padded.rgb, tight.rgb)
