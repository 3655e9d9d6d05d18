"""The ground floor's report writers (vla_ros.reports): every `vla` table goes through them."""

import json

from vla_ros.reports import markdown_table, write_json


def test_a_markdown_table_has_a_header_its_rule_and_a_row_per_item():
    table = markdown_table(
        ('scenario', 'episodes', 'rate'), [('highway', 20, '5%'), ('all', 0, '–')]
    )
    assert table.splitlines() == [
        '| scenario | episodes | rate |',
        '|---|---|---|',
        '| highway | 20 | 5% |',
        '| all | 0 | – |',
    ]
    assert markdown_table(('a',), []) == '| a |\n|---|'


def test_json_is_written_indented_and_announced(tmp_path, capsys):
    path = tmp_path / 'out.json'
    write_json(path, {'p50_ms': 1.5})
    assert json.loads(path.read_text(encoding='utf-8')) == {'p50_ms': 1.5}
    assert capsys.readouterr().out == f'wrote {path}\n'
