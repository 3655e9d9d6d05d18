"""The inference runtime core: a synchronised frame, ego state and instruction in; a plan out.

ROS-free (the node, replay and the simulator loop call it). It keeps the model's temporal state
(the previous BEV) and resets it when time jumps (a new SensorFrame epoch) or frames are missing;
it builds the view look-up table once per rig calibration and leaves missing cameras out of it,
so a dead camera reads as "unseen" rather than as a black image; it keeps the chosen trajectory
within the plan's acceleration limits (vla_planning.plan_speeds) and derives its speed profile;
and it refuses non-finite network outputs instead of passing them on.
"""

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from vla_model.backends import Backend
from vla_model.bev_geometry import ViewLut, build_view_lut, view_weight
from vla_model.config import MAX_INSTRUCTION_AGE_S, ModelConfig
from vla_model.instruction_features import instruction_input
from vla_model.model_inputs import FrameInput, relative_motion
from vla_planning.plan_speeds import PlanAccelerationLimits, within_acceleration_limits

NS_PER_S = 1_000_000_000
DEFAULT_LIMITS = PlanAccelerationLimits()
LUT_CACHE_SIZE = 8
"""Look-up tables kept: all cameras, each one missing, and a calibration change or two."""


@dataclass(frozen=True)
class Plan:
    """The model's answer for one frame; trajectories in base_link at the frame's stamp."""

    stamp_ns: int
    epoch: int
    times_s: np.ndarray  # (T,) time_from_start of each point
    trajectory: np.ndarray  # (T, 3) x, y, heading: the selected candidate within the limits
    speeds_mps: np.ndarray  # (T,) along the path, from consecutive points
    accelerations_mps2: np.ndarray  # (T,)
    yaw_rates_rps: np.ndarray  # (T,)
    candidates: np.ndarray  # (K, T, 3)
    probabilities: np.ndarray  # (K,) softmax of the scores, sums to 1
    selected: int
    confidence: float  # probability of the selected candidate
    rationale_class: int
    rationale: str
    bev_probabilities: np.ndarray  # (classes, rows, cols) in [0, 1]
    temporal_reset: bool  # the previous BEV was dropped for this frame
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    def published_arrays(self) -> tuple[np.ndarray, ...]:
        """Return times, points, speeds, accelerations, yaw rates of the published trajectory."""
        return (
            self.times_s,
            self.trajectory,
            self.speeds_mps,
            self.accelerations_mps2,
            self.yaw_rates_rps,
        )


class InvalidModelOutputError(RuntimeError):
    """The network produced NaN or infinity: no plan is made from it."""


class UnplannableFrameError(ValueError):
    """The frame's cameras see the grid in a way the model cannot take (its look-up table)."""


def path_kinematics(trajectory: np.ndarray, step_s: float) -> tuple[np.ndarray, ...]:
    """Return speeds, accelerations and yaw rates of points spaced step_s apart from the origin.

    The speed at point k is the distance from point k-1 (the origin for the first) over step_s;
    accelerations and yaw rates are finite differences of speed and heading the same way.
    """
    points = np.vstack([np.zeros((1, 3), trajectory.dtype), trajectory])
    speeds = np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1) / step_s
    accelerations = np.diff(np.concatenate([[speeds[0]], speeds])) / step_s
    heading_change = np.diff(points[:, 2])
    yaw_rates = np.arctan2(np.sin(heading_change), np.cos(heading_change)) / step_s
    return speeds, accelerations, yaw_rates


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def plan_fields(
    config: ModelConfig,
    stamp_ns: int,
    epoch: int,
    outputs: dict[str, np.ndarray],
    reset: bool,
    limits: PlanAccelerationLimits,
) -> dict:
    """Return a Plan's fields (all but the stage times) from one frame's network outputs.

    The candidate with the highest score is selected and re-timed within `limits`; its speed
    profile comes from its points. `candidates` stay the network's own.
    Also used for the privileged teacher, which has the same plan head (a map of zeros where
    it predicts no `bev_semantics`).
    """
    candidates = outputs['trajectories'][0]
    probabilities = softmax(outputs['scores'][0].astype(np.float64))
    selected = int(np.argmax(probabilities))
    trajectory = within_acceleration_limits(candidates[selected], config.step_s, limits)
    speeds, accelerations, yaw_rates = path_kinematics(trajectory, config.step_s)
    rationale_class = int(np.argmax(outputs['rationale'][0]))
    semantics = outputs.get('bev_semantics')
    return {
        'stamp_ns': stamp_ns,
        'epoch': epoch,
        'times_s': np.arange(1, config.horizon_steps + 1) * config.step_s,
        'trajectory': trajectory,
        'speeds_mps': speeds,
        'accelerations_mps2': accelerations,
        'yaw_rates_rps': yaw_rates,
        'candidates': candidates,
        'probabilities': probabilities,
        'selected': selected,
        'confidence': float(probabilities[selected]),
        'rationale_class': rationale_class,
        'rationale': config.rationales[rationale_class],
        'bev_probabilities': np.zeros((len(config.bev_classes), *config.bev_size))
        if semantics is None
        else 1.0 / (1.0 + np.exp(-semantics[0])),
        'temporal_reset': reset,
    }


class InferenceCore:
    """Run the driving model frame by frame, keeping its temporal state."""

    def __init__(
        self,
        config: ModelConfig,
        backend: Backend,
        encode_instruction: Callable[[str], np.ndarray],
        max_frame_gap_s: float = 0.5,
        limits: PlanAccelerationLimits = DEFAULT_LIMITS,
    ) -> None:
        self.config = config
        self.limits = limits
        self.backend = backend
        self.encode_instruction = encode_instruction
        self.max_frame_gap_ns = round(max_frame_gap_s * NS_PER_S)
        rows, cols = config.bev_size
        self._zero_bev = np.zeros((1, config.bev_channels, rows, cols), np.float32)
        self._previous_bev = self._zero_bev
        self._previous: FrameInput | None = None
        # key (cameras with an image, calibration) -> look-up table; the newest LUT_CACHE_SIZE
        self._luts: OrderedDict[bytes, ViewLut] = OrderedDict()
        self._no_map_prior = np.zeros((1, config.map_prior_channels, rows, cols), np.float32)
        # (network input, text, when given or None until the next frame), swapped whole: a
        # worker thread may set the instruction while a frame is planned.
        self._instruction: tuple[np.ndarray, str, int | None] = (
            self._instruction_input('', self.encode_instruction('')),
            '',
            None,
        )
        self.resets = 0

    @property
    def instruction_text(self) -> str:
        """The instruction in force."""
        return self._instruction[1]

    def set_instruction(self, text: str, given_ns: int | None = None) -> None:
        """Use this instruction from the next frame on (embedded once, then cached).

        `given_ns`: when it was given (its message's stamp); None or 0: with the next frame.
        A v2 model reads the instruction's age (EGO_STATE_FIELDS), which tells "change lane"
        just said from the same words after the change is made.
        """
        self.use_instruction(text, self.encode_instruction(text), given_ns)

    def use_instruction(
        self, text: str, embedding: np.ndarray, given_ns: int | None = None
    ) -> None:
        """Use this instruction, already embedded (by a worker off the frame path), from now on."""
        self._instruction = (self._instruction_input(text, embedding), text, given_ns or None)

    def _instruction_input(self, text: str, embedding: np.ndarray) -> np.ndarray:
        """Return the network's instruction input: the embedding, and the speed slot if used."""
        return instruction_input(embedding, text, self.config.speed_slot)

    def _ego_state(self, frame: FrameInput, given_ns: int) -> np.ndarray:
        """Return the ego-state input: the first `ego_state_dim` of EGO_STATE_FIELDS."""
        age_s = (frame.stamp_ns - given_ns) / NS_PER_S
        state = (*frame.ego_state, min(max(age_s, 0.0), MAX_INSTRUCTION_AGE_S))
        return np.asarray([state[: self.config.ego_state_dim]], np.float32)

    def step(self, frame: FrameInput, map_prior: np.ndarray | None = None) -> Plan:
        """Plan one frame; raise when it cannot be planned (nothing is published from it).

        InvalidModelOutputError: NaN/Inf outputs (the temporal state resets);
        UnplannableFrameError: the cameras see the grid in a way the model's look-up table
        cannot hold (more cameras per cell than `lut_samples`).

        `map_prior` (layers, rows, cols) in [0, 1]: the HD-map layers (MAP_PRIOR_LAYERS) on the
        BEV grid in base_link at the frame's stamp; None drives map-free.
        """
        expected = self._no_map_prior.shape[1:]
        if map_prior is not None and map_prior.shape != expected:
            raise ValueError(f'a map prior of shape {map_prior.shape}; the model takes {expected}')
        start = time.perf_counter()
        instruction = self._instruction
        embedding, text, given_ns = instruction
        if given_ns is None:  # given with this frame
            given_ns = frame.stamp_ns
            if self._instruction is instruction:
                self._instruction = (embedding, text, given_ns)
        reset = self._needs_reset(frame)
        if reset:
            self._previous_bev = self._zero_bev
            self.resets += 1
        motion = (
            np.zeros(3, np.float32) if reset else relative_motion(self._previous.pose, frame.pose)
        )
        inputs = {
            'images': frame.images[None],
            'previous_bev': self._previous_bev,
            'ego_motion': motion[None],
            'ego_state': self._ego_state(frame, given_ns),
            'instruction': embedding[None].astype(np.float32),
            'map_prior': self._no_map_prior
            if map_prior is None
            else np.asarray(map_prior, np.float32)[None],
            'map_prior_present': np.full((1, 1), map_prior is not None, np.float32),
            **self._lut(frame),
        }
        prepared = time.perf_counter()
        outputs = self.backend.run(inputs)
        inferred = time.perf_counter()
        if not all(np.isfinite(value).all() for value in outputs.values()):
            self._previous_bev, self._previous = self._zero_bev, None
            raise InvalidModelOutputError(
                f'the {self.backend.name} backend returned NaN or infinity '
                f'for the frame at {frame.stamp_ns} ns; no plan made'
            )
        self._previous_bev, self._previous = outputs['bev_features'], frame
        plan = plan_fields(self.config, frame.stamp_ns, frame.epoch, outputs, reset, self.limits)
        done = time.perf_counter()
        return Plan(
            **{
                **plan,
                'preprocess_ms': (prepared - start) * 1e3,
                'inference_ms': (inferred - prepared) * 1e3,
                'postprocess_ms': (done - inferred) * 1e3,
            }
        )

    def forget(self) -> None:
        """Drop the temporal state: the next frame starts afresh (a temporal reset).

        For a caller that skips frames it cannot plan on (invalid odometry): the next frame's
        motion since the last planned one would be measured against an ego state that was not
        there.
        """
        self._previous_bev, self._previous = self._zero_bev, None

    @classmethod
    def from_parameters(
        cls,
        config: ModelConfig,
        backend: Backend,
        encode_instruction: Callable[[str], np.ndarray],
        params: Mapping[str, object],
    ) -> 'InferenceCore':
        """Build the core as vla_inference_node's parameters (or their defaults) configure it."""
        limits = PlanAccelerationLimits(
            float(params['plan_max_acceleration_mps2']),
            float(params['plan_max_deceleration_mps2']),
        )
        return cls(config, backend, encode_instruction, float(params['max_frame_gap_s']), limits)

    def _needs_reset(self, frame: FrameInput) -> bool:
        previous = self._previous
        return (
            previous is None
            or frame.epoch != previous.epoch
            or not 0 < frame.stamp_ns - previous.stamp_ns <= self.max_frame_gap_ns
        )

    def _lut(self, frame: FrameInput) -> dict[str, np.ndarray]:
        """Return the view look-up table of the frame's calibration and cameras with an image.

        A camera without an image this frame has a placeholder calibration: it must see nothing.
        Tables are kept for the last few such sets, so a camera that drops out and comes back
        costs no rebuild (5-7 ms each on the 2-vCPU machine).
        """
        key = frame.camera_valid.tobytes() + b''.join(
            np.ascontiguousarray(a, np.float64).tobytes()
            for camera in frame.cameras
            for a in (camera.k, camera.rotation, camera.translation)
        )
        lut = self._luts.get(key)
        if lut is None:
            try:
                lut = build_view_lut(self.config, list(frame.cameras), frame.camera_valid)
            except ValueError as error:
                raise UnplannableFrameError(str(error)) from error
            self._luts[key] = lut
            if len(self._luts) > LUT_CACHE_SIZE:
                self._luts.popitem(last=False)
        self._luts.move_to_end(key)
        weight = view_weight(lut.cameras, frame.camera_valid)
        return {'lut_index': lut.index, 'lut_weight': weight}
