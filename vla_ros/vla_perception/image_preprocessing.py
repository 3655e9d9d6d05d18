"""Turn one camera message into a model-ready RGB image and the intrinsics that go with it.

The ROS-free core of the camera synchroniser: it runs unchanged in nodes, offline bag replay and
training, so it takes messages by duck typing (rclpy's sensor_msgs and rosbags' typestore types
share field names) and never imports rclpy. Inputs are checked cheaply before any decoding, and
every unusable input raises `ImageRejected` with a stable reason code for diagnostics counters.

Speed matters (the budget is about 1-2 ms per 1280x720 raw image on one core), so the
full-resolution buffer is never copied. Formats that are already whole pixels (rgb8, bgr8,
rgba8, bgra8, mono8) are resized first, on a strided view of the message buffer, and only the
small image is colour-converted. Packed YUV 4:2:2 and Bayer mosaics cannot be resized before
conversion, so they are converted at full resolution first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

MAX_DIMENSION = 16384

# Bytes per pixel of every supported raw encoding (ROS names; sensor_msgs/image_encodings.hpp).
_BYTES_PER_PIXEL: dict[str, int] = {
    'rgb8': 3,
    'bgr8': 3,
    'rgba8': 4,
    'bgra8': 4,
    'mono8': 1,
    'yuv422': 2,
    'uyvy': 2,
    'yuv422_yuy2': 2,
    'yuyv': 2,
    'bayer_rggb8': 1,
    'bayer_bggr8': 1,
    'bayer_gbrg8': 1,
    'bayer_grbg8': 1,
}

SUPPORTED_ENCODINGS: frozenset[str] = frozenset(_BYTES_PER_PIXEL)

# Whole-pixel encodings: resized first, then converted to RGB with this code (None: already RGB).
_RESIZE_FIRST: dict[str, int | None] = {
    'rgb8': None,
    'bgr8': cv2.COLOR_BGR2RGB,
    'rgba8': cv2.COLOR_RGBA2RGB,
    'bgra8': cv2.COLOR_BGRA2RGB,
    'mono8': cv2.COLOR_GRAY2RGB,
}

# Packed and mosaic encodings: converted to RGB at full resolution, then resized. ROS 'yuv422' is
# UYVY byte order and 'yuv422_yuy2' is YUYV (as cv_bridge and rosbags.image read them). OpenCV
# names a Bayer pattern by the second row's second and third pixels, so ROS RGGB is its BayerBG.
_CONVERT_FIRST: dict[str, int] = {
    'yuv422': cv2.COLOR_YUV2RGB_UYVY,
    'uyvy': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUYV,
    'yuyv': cv2.COLOR_YUV2RGB_YUYV,
    'bayer_rggb8': cv2.COLOR_BayerBG2RGB,
    'bayer_bggr8': cv2.COLOR_BayerRG2RGB,
    'bayer_gbrg8': cv2.COLOR_BayerGR2RGB,
    'bayer_grbg8': cv2.COLOR_BayerGB2RGB,
}

_PACKED_YUV = frozenset({'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'})

_COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')

# Distortion models that cv2.initUndistortRectifyMap handles (OpenCV's coefficient order is the
# ROS one: k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]]).
_UNDISTORT_MODELS = frozenset({'plumb_bob', 'rational_polynomial'})
_OPENCV_DISTORTION_LENGTHS = frozenset({4, 5, 8, 12, 14})

# Undistortion maps kept per preprocessor; more than this many cameras/calibrations is a sign the
# intrinsics change every frame, and the oldest maps are dropped instead of growing forever.
_MAX_CACHED_MAPS = 16

REJECT_REASONS: frozenset[str] = frozenset(
    {
        'malformed',  # serialized bytes that are not the message they claim to be
        'data_size',
        'encoding',
        'dimensions',
        'camera_info_size',
        'corrupt_compressed',
        'distortion_model',
    }
)


class ImageRejected(ValueError):  # noqa: N818 (the name is the agreed interface)
    """An input image that cannot be used; str() says what is wrong, with the numbers.

    `reason` is a short stable code (one of REJECT_REASONS) so that callers can count rejections
    per cause in their diagnostics without parsing the message.
    """

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f'unknown rejection reason {reason!r}')
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[ImageRejected], tuple[str, str]]:
        # Keep the exception picklable (worker processes of offline replay and training).
        return (type(self), (self.reason, self.detail))


def _readonly_float_array(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Copy values into a read-only float64 array of the given shape (intrinsics stay frozen)."""
    array = np.array(values, dtype=np.float64).reshape(shape)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Intrinsics:
    """Pinhole intrinsics of one camera image, in the CameraInfo conventions (K, D, P).

    Kept separate from any message type so the same geometry travels through nodes, replay and
    training; arrays are float64 and read-only, so an instance can be shared safely.
    """

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray
    distortion_model: str
    p: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, 'width', int(self.width))
        object.__setattr__(self, 'height', int(self.height))
        object.__setattr__(self, 'k', _readonly_float_array(self.k, (3, 3)))
        object.__setattr__(self, 'd', _readonly_float_array(self.d, (-1,)))
        object.__setattr__(self, 'distortion_model', str(self.distortion_model))
        object.__setattr__(self, 'p', _readonly_float_array(self.p, (3, 4)))

    @classmethod
    def from_camera_info(cls, msg: Any) -> Intrinsics:
        """Read a CameraInfo (rclpy or rosbags), refusing sizes and matrices that cannot be real.

        Raises ImageRejected('dimensions') for a zero or absurd image size, or a K or P that is
        not 9 (12) finite numbers with positive focal lengths; ImageRejected('distortion_model')
        for non-finite distortion coefficients.
        """
        width, height = int(msg.width), int(msg.height)
        _check_dimensions(width, height, 'camera_info size')
        k = np.asarray(msg.k, dtype=np.float64).ravel()
        if k.size != 9 or not np.all(np.isfinite(k)):
            raise ImageRejected(
                'dimensions', f'camera_info k must be 9 finite numbers, got {k.size}: {k.tolist()}'
            )
        if not (k[0] > 0 and k[4] > 0):
            raise ImageRejected(
                'dimensions',
                f'camera_info k has non-positive focal lengths fx={k[0]}, fy={k[4]} '
                '(uncalibrated camera?)',
            )
        p = np.asarray(msg.p, dtype=np.float64).ravel()
        if p.size != 12 or not np.all(np.isfinite(p)):
            raise ImageRejected(
                'dimensions',
                f'camera_info p must be 12 finite numbers, got {p.size}: {p.tolist()}',
            )
        d = np.asarray(msg.d, dtype=np.float64).ravel()
        if not np.all(np.isfinite(d)):
            raise ImageRejected(
                'distortion_model', f'camera_info d has non-finite coefficients: {d.tolist()}'
            )
        return cls(
            width=width,
            height=height,
            k=k,
            d=d,
            distortion_model=str(msg.distortion_model),
            p=p,
        )

    def scaled(self, width: int, height: int) -> Intrinsics:
        """Return the intrinsics of this camera's image resized to width x height.

        Uses the pixel-centre convention of cv2.resize, u' = (u + 0.5) * sx - 0.5, so K and P are
        premultiplied by [[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]]; D is unchanged
        because distortion acts in normalised coordinates.
        """
        width, height = int(width), int(height)
        if width == self.width and height == self.height:
            return self
        sx = width / self.width
        sy = height / self.height
        s = np.array(
            [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]],
        )
        return Intrinsics(
            width=width,
            height=height,
            k=s @ self.k,
            d=self.d,
            distortion_model=self.distortion_model,
            p=s @ self.p,
        )

    def undistorted(self) -> Intrinsics:
        """Return the intrinsics of this image after undistortion with new camera matrix K.

        D becomes all zero ('plumb_bob', 5 coefficients) and P's left 3x3 becomes K, because the
        undistorted image is a pinhole image with exactly K; P's last column (stereo Tx) is kept.
        Use it for a camera's output geometry even in frames where the camera has no image.
        """
        return Intrinsics(
            width=self.width,
            height=self.height,
            k=self.k,
            d=np.zeros(5),
            distortion_model='plumb_bob',
            p=np.hstack([self.k, self.p[:, 3:]]),
        )

    def has_distortion(self) -> bool:
        """Tell whether any distortion coefficient is non-zero (else the image is pinhole)."""
        return bool(np.any(self.d != 0.0))


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """A model-ready image and the intrinsics of exactly that image (None when none were given).

    `rgb` is (out_h, out_w, 3) uint8, C-contiguous, RGB order, and never shares memory with the
    input message, so it may outlive or be modified independently of the message.
    """

    rgb: np.ndarray
    intrinsics: Intrinsics | None


def _as_bytes(data: Any) -> np.ndarray:
    """View a message's data field (numpy array, array.array, bytes) as flat uint8, no copy."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        # A plain list of ints (only hand-built messages): copying is the only way.
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _check_dimensions(width: int, height: int, what: str) -> None:
    """Refuse a zero or absurd size (a corrupt header would otherwise allocate gigabytes)."""
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise ImageRejected(
            'dimensions',
            f'{what} is {width}x{height} (width x height); each side must be 1..{MAX_DIMENSION}',
        )


def validate_raw_image(msg: Any) -> None:
    """Cheap structural checks of a raw Image, without decoding: raises ImageRejected.

    Checks the encoding is supported, the size is sane, the step covers a row and the data holds
    exactly step * height bytes, so decoding can never read outside the buffer or guess a layout.
    """
    encoding = str(msg.encoding)
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageRejected(
            'encoding',
            f'unsupported image encoding {encoding!r}; supported: '
            + ', '.join(sorted(SUPPORTED_ENCODINGS)),
        )
    width, height = int(msg.width), int(msg.height)
    _check_dimensions(width, height, 'image size')
    if encoding in _PACKED_YUV and width % 2:
        raise ImageRejected(
            'dimensions', f'{encoding} packs two pixels per 4 bytes: width {width} must be even'
        )
    bpp = _BYTES_PER_PIXEL[encoding]
    step = int(msg.step)
    if step < width * bpp:
        raise ImageRejected(
            'data_size',
            f'step {step} is shorter than a row: {width} px * {bpp} bytes ({encoding}) '
            f'= {width * bpp} bytes',
        )
    size = _as_bytes(msg.data).size
    if size != step * height:
        raise ImageRejected(
            'data_size',
            f'image data is {size} bytes, expected step * height = {step} * {height} '
            f'= {step * height} bytes',
        )


def validate_compressed_image(msg: Any) -> None:
    """Cheap checks of a CompressedImage before decoding: raises ImageRejected.

    Only JPEG and PNG colour/grey images are model inputs; compressedDepth (a depth image behind
    a private header) is refused by name rather than failing later as a corrupt image.
    """
    fmt = str(msg.format)
    lowered = fmt.lower()
    if 'compresseddepth' in lowered or not any(name in lowered for name in _COMPRESSED_FORMATS):
        raise ImageRejected(
            'encoding', f'unsupported compressed format {fmt!r}; supported: jpeg, png'
        )
    if _as_bytes(msg.data).size == 0:
        raise ImageRejected('data_size', f'compressed image ({fmt!r}) has 0 bytes of data')


def _pixel_view(msg: Any) -> np.ndarray:
    """Zero-copy view of a validated raw Image: (h, w, bpp), or (h, w) for mono and Bayer.

    Row padding (step > width * bpp) is skipped by striding, not by copying.
    """
    encoding = str(msg.encoding)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    bpp = _BYTES_PER_PIXEL[encoding]
    rows = _as_bytes(msg.data).reshape(height, step)[:, : width * bpp]
    if bpp == 1:
        return rows
    return rows.reshape(height, width, bpp)


@lru_cache(maxsize=256)
def _integer_factor(size: int, out: int) -> int:
    """Largest integer factor f <= size / out that divides size exactly (1 when there is none)."""
    for factor in range(size // out, 1, -1):
        if size % factor == 0:
            return factor
    return 1


def area_resize(
    image: np.ndarray, width: int, height: int, *, two_pass: bool = False
) -> np.ndarray:
    """Resize by area averaging (cv2.INTER_AREA: no aliasing when shrinking); same size: as is.

    two_pass trades a little sharpness for speed. OpenCV's INTER_AREA is fast for exact integer
    ratios (block averaging) but several times slower per pixel for fractional ones (1280x720 to
    448x256 takes ~4 ms on one core). With two_pass the image is first block-averaged by the
    largest integer factor that divides its size, and only the remaining ratio (< 2 in practice)
    is resampled fractionally: about half the time. Both passes keep the pixel-centre convention,
    so the geometry (Intrinsics.scaled) is exactly that of one pass; the pixels differ from one
    pass by slightly more smoothing of detail near the output resolution.
    """
    in_h, in_w = image.shape[:2]
    if (in_w, in_h) == (width, height):
        return image
    if two_pass:
        mid_w = in_w // _integer_factor(in_w, width) if in_w > width else in_w
        mid_h = in_h // _integer_factor(in_h, height) if in_h > height else in_h
        if (mid_w, mid_h) not in ((in_w, in_h), (width, height)):
            image = cv2.resize(image, (mid_w, mid_h), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _check_size(intrinsics: Intrinsics | None, width: int, height: int) -> None:
    """Refuse intrinsics that describe a different image size than the one decoded."""
    if intrinsics is not None and (intrinsics.width, intrinsics.height) != (width, height):
        raise ImageRejected(
            'camera_info_size',
            f'camera_info is {intrinsics.width}x{intrinsics.height} but the image is '
            f'{width}x{height} (width x height)',
        )


class ImagePreprocessor:
    """Decode, resize, colour-convert and optionally undistort camera images for the model.

    One instance per output configuration; it caches undistortion maps per camera calibration,
    so the expensive map computation happens once per camera, not per frame. fast_resize selects
    the two-pass area resize (see area_resize): about half the time for non-integer ratios.
    """

    def __init__(
        self,
        output_width: int,
        output_height: int,
        undistort: bool = False,
        *,
        fast_resize: bool = False,
    ) -> None:
        output_width, output_height = int(output_width), int(output_height)
        if not (0 < output_width <= MAX_DIMENSION and 0 < output_height <= MAX_DIMENSION):
            raise ValueError(
                f'output size {output_width}x{output_height} must be 1..{MAX_DIMENSION} per side'
            )
        self.output_width = output_width
        self.output_height = output_height
        self.undistort = bool(undistort)
        self.fast_resize = bool(fast_resize)
        self._map_cache: dict[tuple[bytes, bytes, int, int], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def output_size(self) -> tuple[int, int]:
        """Output (width, height), in OpenCV's order."""
        return (self.output_width, self.output_height)

    def prepare(self, msg: Any, intrinsics: Intrinsics | None) -> PreparedImage:
        """Turn one Image or CompressedImage into a model-ready RGB image and its intrinsics.

        Raises ImageRejected (with a reason code) for anything that cannot be used; the input
        message is never modified and the output never aliases it.
        """
        if hasattr(msg, 'format'):
            rgb = self._prepare_compressed(msg, intrinsics)
        else:
            rgb = self._prepare_raw(msg, intrinsics)
        out_intrinsics = None
        if intrinsics is not None:
            out_intrinsics = intrinsics.scaled(self.output_width, self.output_height)
            if self.undistort:
                rgb, out_intrinsics = self._undistort(rgb, out_intrinsics)
        return PreparedImage(rgb=rgb, intrinsics=out_intrinsics)

    def _resize(self, image: np.ndarray) -> np.ndarray:
        """Resize to the output size by area averaging (no aliasing when shrinking)."""
        return area_resize(image, self.output_width, self.output_height, two_pass=self.fast_resize)

    def _prepare_raw(self, msg: Any, intrinsics: Intrinsics | None) -> np.ndarray:
        """Validate and convert a raw Image, in the order that is cheapest for its encoding."""
        validate_raw_image(msg)
        _check_size(intrinsics, int(msg.width), int(msg.height))
        encoding = str(msg.encoding)
        view = _pixel_view(msg)
        if encoding in _RESIZE_FIRST:
            small = self._resize(view)
            code = _RESIZE_FIRST[encoding]
            rgb = small if code is None else cv2.cvtColor(small, code)
        else:
            rgb = self._resize(cv2.cvtColor(view, _CONVERT_FIRST[encoding]))
        # rgb8 already at the output size is still the message's buffer: copy it (it is small) so
        # the result is C-contiguous and independent of the message. cv2 results are fresh arrays.
        if np.may_share_memory(rgb, view):
            rgb = rgb.copy()
        return rgb

    def _prepare_compressed(self, msg: Any, intrinsics: Intrinsics | None) -> np.ndarray:
        """Validate and decode a JPEG/PNG CompressedImage; grey images come out RGB too."""
        validate_compressed_image(msg)
        data = _as_bytes(msg.data)
        try:
            bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        except cv2.error as err:
            raise ImageRejected(
                'corrupt_compressed',
                f'{msg.format!r} image of {data.size} bytes failed to decode: {err}',
            ) from err
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ImageRejected(
                'corrupt_compressed',
                f'{msg.format!r} image of {data.size} bytes could not be decoded',
            )
        height, width = bgr.shape[:2]
        if width > MAX_DIMENSION or height > MAX_DIMENSION:
            raise ImageRejected(
                'dimensions',
                f'decoded image size is {width}x{height} (width x height); '
                f'each side must be 1..{MAX_DIMENSION}',
            )
        _check_size(intrinsics, width, height)
        return cv2.cvtColor(self._resize(bgr), cv2.COLOR_BGR2RGB)

    def _undistort(self, rgb: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, Intrinsics]:
        """Remove lens distortion from the output-size image, keeping K: pinhole out, D zero.

        Works at output resolution with the scaled K, because distortion coefficients act in
        normalised coordinates and so do not change with resizing.
        """
        model = intrinsics.distortion_model
        distorted = intrinsics.has_distortion()
        if model not in _UNDISTORT_MODELS and not (model == '' and not distorted):
            raise ImageRejected(
                'distortion_model',
                f'cannot undistort distortion_model {model!r} with {intrinsics.d.size} '
                'coefficients; supported: plumb_bob, rational_polynomial',
            )
        if distorted and intrinsics.d.size not in _OPENCV_DISTORTION_LENGTHS:
            raise ImageRejected(
                'distortion_model',
                f'{model} with {intrinsics.d.size} coefficients; expected one of '
                + ', '.join(str(n) for n in sorted(_OPENCV_DISTORTION_LENGTHS)),
            )
        if distorted:
            map1, map2 = self._undistort_maps(intrinsics)
            rgb = cv2.remap(
                rgb, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
            )
        return rgb, intrinsics.undistorted()

    def _undistort_maps(self, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
        """Return the remap tables for this calibration, computing them only the first time."""
        key = (
            intrinsics.k.tobytes(),
            intrinsics.d.tobytes(),
            intrinsics.width,
            intrinsics.height,
        )
        maps = self._map_cache.get(key)
        if maps is None:
            if len(self._map_cache) >= _MAX_CACHED_MAPS:
                self._map_cache.pop(next(iter(self._map_cache)))
            maps = cv2.initUndistortRectifyMap(
                intrinsics.k,
                intrinsics.d,
                None,
                intrinsics.k,
                (intrinsics.width, intrinsics.height),
                cv2.CV_16SC2,
            )
            self._map_cache[key] = maps
        return maps
