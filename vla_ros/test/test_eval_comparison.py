"""`vla sim compare`: drivers side by side on the episodes they share, the expert as reference."""

import json
from pathlib import Path

import pytest

from vla_sim.eval_comparison import (
    ComparisonError,
    Evaluation,
    compare,
    comparison_markdown,
    wilson_interval,
)
from vla_tools.cli import build_parser


def episode(scenario: str, seed: int, progress: float, success: bool = True, **flags) -> dict:
    return {
        'scenario': scenario,
        'seed': seed,
        'intent': 'keep_lane' if scenario == 'roundabout' else 'take_exit',
        'collision': flags.get('collision', False),
        'off_road': flags.get('off_road', False),
        'instruction_success': success,
        'progress_m': progress,
    }


def write_eval(path: Path, driver: str, episodes: list[dict], split: str | None = 'test') -> Path:
    data = {'driver': driver, 'summary': {}, 'by_intent': {}, 'episodes': episodes}
    if split is not None:
        data['split'] = split
    path.write_text(json.dumps(data), encoding='utf-8')
    return path


def test_the_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 15 of 20 gives 0.5313-0.8881; 0 of 10 gives 0-0.2775.
    assert wilson_interval(15, 20) == pytest.approx((0.5313, 0.8881), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_drivers_are_compared_on_the_episodes_they_share_with_progress_against_the_expert(
    tmp_path,
):
    expert = write_eval(
        tmp_path / 'expert.json',
        'expert',
        [episode('roundabout', 100, 100.0), episode('roundabout', 101, 50.0)]
        + [episode('exit', 100, 400.0)],
    )
    teacher = write_eval(
        tmp_path / 'teacher.json',
        'teacher',
        [
            episode('roundabout', 100, 90.0, success=False, off_road=True),
            episode('roundabout', 101, 45.0),
            episode('roundabout', 102, 10.0),  # the expert never drove seed 102
        ],
    )
    keys, tables = compare([Evaluation.from_file(expert), Evaluation.from_file(teacher)])
    assert keys == [('roundabout', 100), ('roundabout', 101)]
    figures = tables['scenario']['roundabout']['teacher']
    assert figures.episodes == 2
    assert figures.progress_vs_expert == pytest.approx(135.0 / 150.0)  # sums, not mean ratios
    assert figures.rates['off_road'][0] == 0.5
    assert figures.rates['instruction_success'][0] == 0.5
    assert tables['scenario']['all']['expert'].progress_vs_expert == 1.0
    assert list(tables['intent']) == ['keep_lane']
    text = comparison_markdown(tables, ['expert', 'teacher'])
    assert (
        '| roundabout | 2 | 0% / 0% / 100% [34%, 100%] / 100% | 0% / 50% / 50% [9%, 91%] / 90% |'
        in text
    )


def test_evaluations_of_other_splits_or_no_evaluation_at_all_are_refused(tmp_path):
    test_split = write_eval(tmp_path / 'a.json', 'expert', [episode('exit', 1, 1.0)])
    train_split = write_eval(tmp_path / 'b.json', 'teacher', [episode('exit', 1, 1.0)], 'train')
    older = write_eval(tmp_path / 'c.json', 'teacher', [episode('exit', 1, 1.0)], split=None)
    other_seeds = write_eval(tmp_path / 'd.json', 'teacher', [episode('exit', 2, 1.0)])
    with pytest.raises(ComparisonError, match='different instruction splits'):
        compare([Evaluation.from_file(test_split), Evaluation.from_file(train_split)])
    compare([Evaluation.from_file(test_split), Evaluation.from_file(older)])  # split unknown
    with pytest.raises(ComparisonError, match='share no'):
        compare([Evaluation.from_file(test_split), Evaluation.from_file(other_seeds)])
    (tmp_path / 'not.json').write_text('{"rows": []}', encoding='utf-8')
    with pytest.raises(ComparisonError, match='not.json: not a `vla sim eval --json` file'):
        Evaluation.from_file(tmp_path / 'not.json')


def run_compare(*argv: str) -> int:
    args = build_parser().parse_args(['sim', 'compare', *argv])
    return args.handler(args)


def test_vla_sim_compare_labels_columns_writes_tables_and_a_plot(tmp_path, capsys):
    first = write_eval(tmp_path / 'r0.json', 'teacher', [episode('exit', 1, 10.0)])
    second = write_eval(tmp_path / 'r1.json', 'teacher', [episode('exit', 1, 20.0)])
    assert run_compare(str(first), str(second)) == 1
    assert 'both labelled' in capsys.readouterr().err
    markdown, plot = tmp_path / 'table.md', tmp_path / 'plot.png'
    code = run_compare(
        f'round0={first}', f'round1={second}', '--markdown', str(markdown), '--plot', str(plot)
    )
    out = capsys.readouterr().out
    assert code == 0
    assert '| scenario | episodes | round0 | round1 |' in out
    assert '1 episodes matched by (scenario, seed); 0 left out' in out
    assert markdown.read_text(encoding='utf-8') in out
    assert plot.stat().st_size > 0
