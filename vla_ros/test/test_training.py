"""Training on recorded bags: losses, schedule, data order, resume, and a torchrun DDP run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional

from vla_model.losses import (
    bev_loss,
    candidate_errors,
    neural_map_loss,
    path_derivatives,
    planning_loss,
    rationale_loss,
)
from vla_model.training import TrainConfig, train
from vla_model.training_loop import Distributed, StepBatches, learning_rate


@pytest.fixture(scope='module')
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('cache')


def run_config(bag: Path, cache: Path, out_dir: Path, **overrides) -> TrainConfig:
    values = {
        'bags': [str(bag)],
        'out_dir': str(out_dir),
        'cache_dir': str(cache),
        'steps': 4,
        'batch_size': 2,
        'warmup_steps': 2,
        'log_every': 1,
        'checkpoint_every': 100,
        **overrides,
    }
    return TrainConfig.from_dict(values, Path('/'))


def test_only_the_closest_candidate_is_regressed_and_scored():
    target = torch.zeros(1, 6, 3)
    candidates = torch.zeros(1, 3, 6, 3)
    candidates[0, 0, :, 1] = 3.5  # a lane to the left
    candidates[0, 1, :, 0] = 0.2  # close to the logged future
    candidates[0, 2, :, 2] = 0.5  # right place, wrong heading
    candidates.requires_grad_(True)
    scores = torch.zeros(1, 3, requires_grad=True)
    assert candidate_errors(candidates, target).argmin().item() == 1
    regression, kinematics, score = planning_loss(candidates, scores, target, 0.5)
    (regression + kinematics + score).backward()
    moved = candidates.grad.abs().sum(dim=(2, 3))[0]
    assert moved[1] > 0 and moved[0] == 0 and moved[2] == 0
    assert scores.grad[0, 1] < 0 < scores.grad[0, 0]  # raises the winner's score only


def test_a_zig_zag_costs_more_kinematics_than_an_offset_of_the_same_size():
    target = torch.zeros(1, 6, 3)
    target[0, :, 0] = 10.0 * 0.5 * torch.arange(1, 7)  # 10 m/s straight ahead
    offset = target.clone()
    offset[0, :, 1] = 1.0
    zig_zag = target.clone()
    zig_zag[0, :, 1] = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    scores = torch.zeros(1, 1)
    exact = planning_loss(target[:, None], scores, target, 0.5)
    shifted = planning_loss(offset[:, None], scores, target, 0.5)
    zig_zagged = planning_loss(zig_zag[:, None], scores, target, 0.5)
    assert exact[0] == 0 and exact[1] == 0
    assert shifted[0] == pytest.approx(zig_zagged[0].item())  # the same pose error
    assert zig_zagged[1] > 5 * shifted[1] > 0  # but the zig-zag's speeds are far off


def test_a_plan_that_starts_too_fast_costs_kinematics():
    target = torch.zeros(1, 6, 3)
    target[0, :, 0] = 10.0 * 0.5 * torch.arange(1, 7)
    fast_start = target.clone()
    fast_start[0, 0, 0] += 2.0  # 14 m/s over the first step, then 6 m/s
    velocities, accelerations = path_derivatives(fast_start[0], 0.5)
    assert velocities[:2, 0].tolist() == pytest.approx([14.0, 6.0])
    assert accelerations[0, 0].item() == pytest.approx(-16.0)
    kinematics = planning_loss(fast_start[:, None], torch.zeros(1, 1), target, 0.5)[1]
    assert kinematics > 1.0


def test_unlabelled_samples_add_no_bev_or_rationale_loss():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.ones(2, 3, 4, 4)
    only_first = bev_loss(logits, target, torch.tensor([True, False]))
    assert only_first == bev_loss(logits[:1], target[:1], torch.tensor([True]))
    assert bev_loss(logits, target, torch.tensor([False, False])) == 0
    rationale = torch.randn(2, 8)
    assert rationale_loss(rationale, torch.tensor([-1, -1])) == 0
    assert rationale_loss(rationale, torch.tensor([3, -1])) == rationale_loss(
        rationale[:1], torch.tensor([3])
    )


def test_a_weighted_map_loss_prefers_drawing_a_rare_class_to_missing_it():
    """A rare class is worth drawing only when its positive cells are weighted up.

    Unweighted, a map that never draws a class covering 1 % of the cells beats one that draws
    it where it is and a little around; weighted 10, the drawing one wins.
    """
    truth = torch.zeros(1, 1, 10, 10)
    truth[0, 0, 0, 0] = 1.0
    never = torch.full_like(truth, -4.0)
    drawn = never.clone()
    drawn[0, 0, :2, :2] = 1.0  # the vehicle and three cells around it, at p = 0.73
    one = torch.tensor([1.0])
    assert neural_map_loss(never, truth, one) < neural_map_loss(drawn, truth, one)
    ten = torch.tensor([10.0])
    assert neural_map_loss(drawn, truth, ten) < neural_map_loss(never, truth, ten)
    # a class weighted 1 is plain binary cross-entropy
    assert torch.isclose(
        neural_map_loss(drawn, truth, one),
        functional.binary_cross_entropy_with_logits(drawn, truth),
    )


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    rates = [learning_rate(1e-3, 10, 100, step) for step in range(100)]
    assert rates[0] == pytest.approx(1e-3 / 10)
    assert rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))
    assert learning_rate(1e-3, 10, 100, 100) == pytest.approx(1e-3 / 10)


def test_processes_share_each_pass_without_overlap():
    steps = range(0, 6)
    shares = [
        [i for s in StepBatches(12, 2, 7, Distributed(rank, 2, rank), steps) for i in s]
        for rank in (0, 1)
    ]
    first_pass = [set(share[:6]) for share in shares]  # 6 samples per process per pass
    assert first_pass[0].isdisjoint(first_pass[1])
    assert first_pass[0] | first_pass[1] == set(range(12))
    again = [i for s in StepBatches(12, 2, 7, Distributed(0, 2, 0), steps) for i in s]
    assert again == shares[0]  # the order is a function of the seed and step only


def test_a_short_run_fits_the_bag(highway_bag, cache, tmp_path):
    config = run_config(highway_bag, cache, tmp_path, steps=30, learning_rate=3e-3)
    result = train(config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    first = sum(row['loss_total'] for row in rows[:5]) / 5
    last = sum(row['loss_total'] for row in rows[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    assert result.weights.is_file() and len(result.sha256) == 64
    assert (tmp_path / 'training.png').stat().st_size > 10_000


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(highway_bag, cache, tmp_path):
    straight = train(run_config(highway_bag, cache, tmp_path / 'straight'), progress=False)
    interrupted = run_config(highway_bag, cache, tmp_path / 'resumed')
    partial = train(interrupted, progress=False, stop_after=2)
    assert partial.steps == 2 and not partial.weights.exists()
    log = tmp_path / 'resumed' / 'metrics.jsonl'
    with log.open('a') as handle:  # logged after the last checkpoint, before the interruption
        handle.write(json.dumps({'step': 3, 'loss_total': 99.0}) + '\n')
    resumed = train(interrupted, progress=False)
    assert [json.loads(row)['step'] for row in log.read_text().splitlines()] == [1, 2, 3, 4]
    a, b = load_file(straight.weights), load_file(resumed.weights)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert straight.sha256 == resumed.sha256


def test_bad_run_files_are_refused_by_name(highway_bag, tmp_path):
    with pytest.raises(ValueError, match='unknown key.*batchsize'):
        TrainConfig.from_dict({'bags': ['b'], 'out_dir': 'o', 'batchsize': 3}, tmp_path)
    with pytest.raises(ValueError, match='map_prior_dropout'):
        TrainConfig.from_dict({'bags': ['b'], 'out_dir': 'o', 'map_prior_dropout': 2}, tmp_path)
    with pytest.raises(FileNotFoundError, match='nowhere'):
        TrainConfig(bags=(str(tmp_path / 'nowhere*'),), out_dir='o').bag_paths()
    missing = subprocess.run(
        [Path(sys.executable).with_name('vla'), 'train', str(tmp_path / 'run.yaml')],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f'vla train: training configuration {tmp_path / "run.yaml"} does not exist'
    ]


def test_torchrun_trains_on_two_processes(highway_bag, cache, tmp_path):
    run_file = tmp_path / 'run.yaml'
    run_file.write_text(
        json.dumps(
            {
                'bags': [str(highway_bag)],
                'out_dir': 'out',
                'cache_dir': str(cache),
                'steps': 2,
                'batch_size': 1,
                'log_every': 1,
            }
        )
    )
    vla = Path(sys.executable).with_name('vla')
    torchrun = Path(sys.executable).with_name('torchrun')
    result = subprocess.run(
        [str(torchrun), '--standalone', '--nproc_per_node=2', str(vla), 'train', str(run_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert '2 process(es) on cpu' in result.stderr
    assert (tmp_path / 'out' / 'vla-student.safetensors').is_file()
    rows = (tmp_path / 'out' / 'metrics.jsonl').read_text().splitlines()
    assert [json.loads(row)['step'] for row in rows] == [1, 2]  # one writer, not two
