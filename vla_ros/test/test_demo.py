"""`vla demo`, reduced to one short episode: the shipped model drives and a report is written."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from repo_paths import run_vla
from vla_model.config import ModelConfig
from vla_sim.bev_ground_truth import BevGrid
from vla_sim.evaluation import RecordedStep
from vla_sim.report import bev_panel, gif_frame
from vla_tools import demo


def test_the_demo_drives_the_shipped_model_and_writes_the_report(tmp_path):
    report = tmp_path / 'demo'
    result = run_vla('demo', '--scenarios', 'merge', '--report', str(report))
    assert result.returncode == 0, result.stderr
    episodes = json.loads((report / 'metrics.json').read_text())['episodes']
    assert [(e['scenario'], e['seed'], e['driver']) for e in episodes] == [
        ('merge', demo.DEMO_SEED, 'pipeline')
    ]
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith('demo: 1 episodes driven by the shipped model')
    assert f'{report}/report.md' in last_line
    page = (report / 'report.md').read_text()
    assert '| merge | 1 |' in page and '![merge_seed100](merge_seed100.gif)' in page
    for name in ('tracks.png', 'speeds.png', 'rates.png', 'merge_seed100.gif'):
        assert (report / name).stat().st_size > 0, name
    assert Image.open(report / 'merge_seed100.gif').n_frames > 10


def test_a_missing_shipped_model_names_the_recipe(tmp_path, monkeypatch, capsys):
    def missing() -> None:
        raise FileNotFoundError(
            'the shipped model is missing; scripts/train_default_model.sh trains it again'
        )

    monkeypatch.setattr('vla_model.shipped.shipped_model', missing)
    parser = argparse.ArgumentParser()
    demo.add_demo_arguments(parser)
    args = parser.parse_args(['--scenarios', 'merge', '--report', str(tmp_path / 'r')])
    assert demo.run_demo(args) == 1
    assert 'vla demo: the shipped model is missing' in capsys.readouterr().err
    assert not (tmp_path / 'r').exists()


def recorded_step(neural_map: dict[str, np.ndarray] | None) -> RecordedStep:
    grid = BevGrid.from_model(ModelConfig())
    empty = {name: np.zeros(grid.shape, bool) for name in ('drivable', 'lane_marking', 'vehicle')}
    image = np.full((256, 448, 3), 128, np.uint8)
    return RecordedStep(
        {'front': image, 'back': image},
        empty,
        (0.0, 0.0, 0.0),
        10.0,
        np.empty((0, 2)),
        'keeping the lane',
        'NOMINAL',
        neural_map,
    )


def test_the_gif_shows_the_neural_map_beside_the_ground_truth():
    grid = BevGrid.from_model(ModelConfig())
    belief = {name: np.zeros(grid.shape) for name in ('drivable', 'lane_marking', 'vehicle')}
    belief['vehicle'][:] = 1.0  # the model is sure of a vehicle everywhere: a red panel
    without = gif_frame(recorded_step(None), grid, 't', 0.1)
    with_map = gif_frame(recorded_step(belief), grid, 't', 0.1)
    assert with_map.shape[0] == without.shape[0] and with_map.shape[1] > without.shape[1]
    panel = bev_panel(belief, recorded_step(belief), grid)
    centre = panel[panel.shape[0] // 4, panel.shape[1] // 4]
    assert tuple(centre) == (220, 50, 50)
    half = bev_panel({'vehicle': np.full(grid.shape, 0.5)}, recorded_step(None), grid)
    assert tuple(half[half.shape[0] // 4, half.shape[1] // 4]) == pytest.approx(
        (130, 45, 45), abs=1
    )
