"""`vla sim eval` runs seeded closed-loop episodes and writes metrics, plots and a GIF."""

import json
import subprocess

from PIL import Image

from repo_paths import run_vla


def eval_one_merge_episode(driver: str, *options: str) -> subprocess.CompletedProcess:
    """Run `vla sim eval` for one episode of the merge scenario."""
    return run_vla(
        'sim', 'eval', '--driver', driver, '--scenarios', 'merge', '--episodes', '1', *options
    )


def test_sim_eval_writes_the_report(tmp_path):
    report, summary = tmp_path / 'report', tmp_path / 'eval.json'
    result = eval_one_merge_episode('expert', '--json', str(summary), '--report', str(report))
    assert result.returncode == 0, result.stderr
    assert '| merge | 1 |' in result.stdout
    merge = json.loads(summary.read_text())['summary']['merge']
    assert merge['episodes'] == 1 and merge['collision_rate'] == 0.0
    assert merge['failed_rule_cycles'] == {}  # no monitor runs with the expert
    # Also per intent, and every episode for comparisons seed by seed.
    assert '| keep_lane | 1 |' in result.stdout
    written = json.loads(summary.read_text())
    assert written['by_intent']['keep_lane']['episodes'] == 1
    assert [e['seed'] for e in written['episodes']] == [0]
    episodes = json.loads((report / 'metrics.json').read_text())['episodes']
    assert episodes[0]['steps'] == 150 and episodes[0]['driver'] == 'expert'
    for name in ('metrics.md', 'tracks.png', 'speeds.png', 'rates.png'):
        assert (report / name).stat().st_size > 0, name
    gif = Image.open(report / 'merge_seed0.gif')
    assert gif.n_frames == 50


def test_sim_eval_rejects_an_unknown_scenario():
    result = run_vla('sim', 'eval', '--scenarios', 'atlantis', '--episodes', '1')
    assert result.returncode == 2
    assert "unknown scenario 'atlantis'" in result.stderr and 'highway' in result.stderr


def test_sim_eval_drives_the_pipeline_cores_and_counts_the_monitor(tmp_path):
    """The untrained student's plans fail the monitor's checks: it stops the car, counted."""
    summary = tmp_path / 'eval.json'
    result = eval_one_merge_episode('pipeline', '--untrained', '--json', str(summary))
    assert result.returncode == 0, result.stderr
    merge = json.loads(summary.read_text())['summary']['merge']
    assert json.loads(summary.read_text())['driver'] == 'pipeline'
    assert merge['minimal_risk_stops_per_km'] > 0 and merge['collision_rate'] == 0.0
    # Why: the rules that failed, by the number of cycles they failed in, most first.
    cycles = merge['failed_rule_cycles']
    assert cycles and all(0 < n <= 150 for n in cycles.values())
    assert list(cycles.values()) == sorted(cycles.values(), reverse=True)
    top, count = next(iter(cycles.items()))
    assert f'{top} {count}' in result.stdout


def test_workers_share_the_episodes_and_change_no_result(tmp_path):
    runs = {}
    for workers in ('1', '2'):
        summary = tmp_path / f'eval{workers}.json'
        result = run_vla(
            'sim', 'eval', '--scenarios', 'merge', 'highway', '--episodes', '2',
            '--workers', workers, '--json', str(summary),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        runs[workers] = json.loads(summary.read_text())['episodes']
    timing = {'mean_step_wall_ms', 'p99_step_wall_ms'}  # the only measurements of the machine
    for one, two in zip(runs['1'], runs['2'], strict=True):
        assert {k: v for k, v in one.items() if k not in timing} == {
            k: v for k, v in two.items() if k not in timing
        }
    assert [(e['scenario'], e['seed']) for e in runs['2']] == [
        ('merge', 0),
        ('merge', 1),
        ('highway', 0),
        ('highway', 1),
    ]
    missing = run_vla(
        'sim', 'eval', '--driver', 'teacher', '--weights', str(tmp_path / 'none'),
        '--workers', '2', '--episodes', '1',
    )  # fmt: skip
    assert missing.returncode == 1 and missing.stderr.strip().endswith('none does not exist')
    assert run_vla('sim', 'eval', '--workers', '0').returncode == 2
