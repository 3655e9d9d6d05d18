"""Open-loop evaluation on bags: L2 and collision definitions, and `vla eval-bags` end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_model.artifacts import save_weights
from vla_model.bag_cache import DatasetSettings, load_bag
from vla_model.config import student
from vla_model.network import VlaNet
from vla_perception.rig import RigConfig
from vla_planning.collision import Obstacles
from vla_planning.inference_core import InferenceCore
from vla_planning.plan_speeds import PlanAccelerationLimits
from vla_ros.install_paths import vla_ros_file
from vla_tools.open_loop_eval import (
    collisions,
    evaluate_bag,
    read_obstacles,
    scenario_of,
    summarise,
)


def encode(text: str) -> np.ndarray:
    return np.full(384, len(text), np.float32)


@pytest.fixture(scope='module')
def cached(highway_bag, tmp_path_factory):
    rig = RigConfig.from_file(vla_ros_file('config/rig_surround.yaml'))
    settings = DatasetSettings.defaults(student(), rig)
    return load_bag(
        highway_bag, tmp_path_factory.mktemp('cache'), settings, encode, progress=False
    )


class ReplayingBackend:
    """Plans, frame after frame, the bag's own logged future moved sideways by `offset_m`."""

    name = 'replay'

    def __init__(self, futures: np.ndarray, offset_m: float = 0.0) -> None:
        self.futures = futures
        self.offset_m = offset_m
        self.calls = 0
        self.inputs: list[dict[str, np.ndarray]] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return the next logged future as the only confident candidate."""
        self.inputs.append(inputs)
        config = student()
        rows, cols = config.bev_size
        plan = self.futures[self.calls].copy()
        plan[:, 1] += self.offset_m
        self.calls += 1
        candidates = np.zeros((1, config.num_anchors, config.horizon_steps, 3), np.float32)
        candidates[0, 3] = plan
        scores = np.zeros((1, config.num_anchors), np.float32)
        scores[0, 3] = 10.0
        return {
            'trajectories': candidates,
            'scores': scores,
            'bev_semantics': np.zeros((1, 3, rows, cols), np.float32),
            'rationale': np.zeros((1, len(config.rationales)), np.float32),
            'bev_features': np.zeros((1, config.bev_channels, rows, cols), np.float32),
        }


def evaluate_with(cached, obstacles, offset_m: float = 0.0):
    backend = ReplayingBackend(cached.arrays['trajectory'], offset_m)
    # Limits that never bind: the 2 m sideways jump to an offset plan's first point would
    # otherwise be re-timed, and these tests are of the metrics, not of the limits.
    core = InferenceCore(student(), backend, encode, limits=PlanAccelerationLimits(1e3, 1e3))
    return summarise(evaluate_bag(cached, core, obstacles))


def test_scenario_is_the_bag_name_without_its_seed():
    assert scenario_of(Path('/x/hard_braking_lead_seed12')) == 'hard_braking_lead'
    assert scenario_of(Path('/x/drive_2026_11_03')) == 'drive_2026_11_03'


def test_the_map_prior_reaches_the_model_only_when_asked_for(cached, highway_bag):
    assert cached.arrays['map_prior_valid'].all()
    for use_prior in (False, True):
        backend = ReplayingBackend(cached.arrays['trajectory'])
        seen = backend.inputs
        core = InferenceCore(student(), backend, encode)
        evaluate_bag(cached, core, {}, map_prior=use_prior)
        assert [float(i['map_prior_present'][0, 0]) for i in seen] == [use_prior] * cached.frames
        if use_prior:
            np.testing.assert_array_equal(seen[7]['map_prior'][0], cached.arrays['map_prior'][7])


def test_a_plan_that_is_the_logged_future_has_no_error(cached, highway_bag):
    result = evaluate_with(cached, read_obstacles(highway_bag))
    assert result['frames'] == int(cached.arrays['trajectory_valid'].sum()) > 0
    assert result['l2_1s_m'] == result['l2_3s_m'] == 0.0
    for horizon in (1, 2, 3):
        assert result[f'collision_{horizon}s_pct'] == result[f'log_collision_{horizon}s_pct']


def test_l2_is_the_distance_at_each_horizon(cached, highway_bag):
    result = evaluate_with(cached, read_obstacles(highway_bag), offset_m=2.0)
    for horizon in (1, 2, 3):
        assert result[f'l2_{horizon}s_m'] == pytest.approx(2.0, abs=1e-5)


def test_a_collision_counts_from_the_step_it_happens_on():
    pose = np.array([100.0, 5.0, np.pi / 2])  # heading +y in odom
    plan = np.column_stack([np.arange(1, 7) * 5.0, np.zeros(6), np.zeros(6)])  # 5 m per step
    step_ns = 500_000_000
    times = step_ns * np.arange(1, 7)
    car = Obstacles(
        np.array([[100.0, 24.0]]), np.array([0.0]), np.array([[4.5, 1.8]]), np.zeros((1, 2))
    )
    obstacles = {int(t): car for t in times}
    hits = collisions(plan, pose, times, obstacles, np.array(sorted(obstacles)))
    # ego box centre at y = 6.4 + 5 k (1.4 m ahead of the rear axle); boxes overlap along y
    # when |centre - 24| <= 2.4 + 0.9 m: at steps 3 (21.4) and 4 (26.4) only
    assert hits.tolist() == [False, False, True, True, False, False]
    elsewhere = {
        int(t): Obstacles(car.centres + [10.0, 0.0], car.yaws, car.sizes, car.velocities)
        for t in times
    }
    assert not collisions(plan, pose, times, elsewhere, np.array(sorted(elsewhere))).any()


def test_command_line_writes_the_metrics_of_a_model(highway_bag, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / 'student.safetensors'
    save_weights(VlaNet(student()).eval(), weights)
    vla = Path(sys.executable).with_name('vla')
    out = tmp_path / 'eval.json'
    result = subprocess.run(
        [
            vla,
            'eval-bags',
            str(highway_bag),
            '--weights',
            str(weights),
            '--json',
            str(out),
            '--cache',
            str(tmp_path / 'cache'),
            '--no-progress',
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '| highway |' in result.stdout
    metrics = json.loads(out.read_text())
    for mode in ('map_free', 'with_map_prior'):  # the simulator records the map layers
        results = metrics[mode]
        assert results['scenarios']['highway']['frames'] == results['all']['frames'] > 0
        assert results['all']['l2_3s_m'] > results['all']['l2_1s_m'] > 0
    assert metrics['map_free']['all'] != metrics['with_map_prior']['all']


def test_command_line_refuses_a_missing_bag(tmp_path):
    vla = Path(sys.executable).with_name('vla')
    result = subprocess.run(
        [vla, 'eval-bags', str(tmp_path / 'nothing'), '--weights', str(tmp_path / 'w')],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith('vla eval-bags: ')
