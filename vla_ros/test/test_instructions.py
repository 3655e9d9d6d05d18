"""Instruction paraphrases, their fixed train/validation/test split, and the generator."""

import math
import re
import unicodedata

import pytest

from repo_paths import REPO_ROOT
from vla_model.instruction_encoder import DEFAULT_INSTRUCTION
from vla_sim.instructions import (
    ALL_PARAPHRASES,
    SPEED_SLOT,
    InstructionGenerator,
    Intent,
    Split,
    paraphrases,
)


def normalised(text: str) -> str:
    """Lower-case words only, so 'Keep your lane.' and 'keep your lane' count as one text."""
    return ' '.join(re.findall(r'[a-z0-9{}]+', text.lower()))


def draw(generator: InstructionGenerator, intent: Intent, count: int) -> list:
    speed = 20.0 if intent is Intent.SET_SPEED else None
    return [generator.sample(intent, speed) for _ in range(count)]


@pytest.mark.parametrize('split', list(Split))
@pytest.mark.parametrize('intent', list(Intent))
def test_every_intent_has_paraphrases_in_every_split(intent, split):
    assert paraphrases(intent, split)
    assert all(p.intent is intent and p.split is split for p in paraphrases(intent, split))


@pytest.mark.parametrize('intent', list(Intent))
def test_enough_varied_paraphrases_mostly_for_training(intent):
    every = [p for p in ALL_PARAPHRASES if p.intent is intent]
    assert len(every) >= 8
    assert len(paraphrases(intent, Split.TRAIN)) / len(every) >= 0.6
    assert sum(len(paraphrases(intent, split)) for split in Split) == len(every)


def test_splits_are_disjoint_even_ignoring_case_and_punctuation():
    texts = [normalised(p.template) for p in ALL_PARAPHRASES]
    duplicates = {text for text in texts if texts.count(text) > 1}
    assert not duplicates


def test_paraphrase_ids_are_unique_and_name_the_intent():
    ids = [p.paraphrase_id for p in ALL_PARAPHRASES]
    assert len(set(ids)) == len(ids)
    for p in ALL_PARAPHRASES:
        assert p.paraphrase_id == f'{p.intent.value}/{p.index}'
    assert 'set_speed/3' in ids


def test_only_set_speed_templates_have_exactly_one_speed_slot():
    for p in ALL_PARAPHRASES:
        slots = p.template.count(SPEED_SLOT)
        assert slots == (1 if p.intent is Intent.SET_SPEED else 0), p.paraphrase_id
        assert p.template.replace(SPEED_SLOT, '').count('{') == 0, p.paraphrase_id


def test_split_is_fixed_not_drawn_at_import():
    # Pinned assignments: a reshuffle would move held-out wording into training.
    split_of = {p.paraphrase_id: p.split for p in ALL_PARAPHRASES}
    assert split_of['keep_lane/0'] is Split.TRAIN
    assert split_of['keep_lane/9'] is Split.VALIDATION
    assert split_of['set_speed/12'] is Split.TEST
    assert paraphrases(Intent.FOLLOW_LEAD, Split.TEST)[-1].template == 'follow the lead'


def test_the_models_default_instruction_is_a_keep_lane_training_text():
    train = [p.template for p in paraphrases(Intent.KEEP_LANE, Split.TRAIN)]
    assert DEFAULT_INSTRUCTION in train


@pytest.mark.parametrize('split', list(Split))
def test_generator_returns_only_texts_of_its_split(split):
    generator = InstructionGenerator(split, seed=7)
    for intent in Intent:
        allowed = {p.paraphrase_id: p for p in paraphrases(intent, split)}
        samples = draw(generator, intent, 200)
        for sample in samples:
            assert sample.split is split
            assert sample.intent is intent
            paraphrase = allowed[sample.paraphrase_id]
            assert sample.text == paraphrase.template.replace(SPEED_SLOT, '70')
        # Every paraphrase of the split is reachable.
        assert {s.paraphrase_id for s in samples} == set(allowed)


def test_same_seed_gives_the_same_instructions():
    def sequence(seed: int) -> list:
        generator = InstructionGenerator(Split.TRAIN, seed)
        return [s for intent in Intent for s in draw(generator, intent, 10)]

    assert sequence(3) == sequence(3)
    assert [s.text for s in sequence(3)] != [s.text for s in sequence(4)]


def test_different_seeds_give_varied_instructions():
    first_texts = {
        InstructionGenerator(Split.TRAIN, seed).sample(Intent.KEEP_LANE).text for seed in range(30)
    }
    assert len(first_texts) >= 5


def test_set_speed_text_says_50_kmh_and_stores_it_in_mps():
    sample = InstructionGenerator(Split.TEST, seed=0).sample(Intent.SET_SPEED, 13.8889)
    assert re.search(r'\b50\b', sample.text), sample.text
    assert sample.target_speed_mps == pytest.approx(13.889, abs=1e-3)


@pytest.mark.parametrize(
    ('speed_mps', 'kmh'),
    [(13.0, 45), (13.8, 50), (22.2, 80), (30.0, 110), (36.1, 130), (1.4, 5), (20.8, 75)],
)
def test_set_speed_rounds_to_5_kmh_and_stores_what_the_text_says(speed_mps, kmh):
    generator = InstructionGenerator(Split.TRAIN, seed=1)
    for _ in range(30):
        sample = generator.sample(Intent.SET_SPEED, speed_mps)
        assert re.findall(r'\d+', sample.text) == [str(kmh)], sample.text
        assert sample.target_speed_mps == pytest.approx(kmh / 3.6)


@pytest.mark.parametrize('intent', [i for i in Intent if i is not Intent.SET_SPEED])
def test_other_intents_have_no_speed(intent):
    sample = InstructionGenerator(Split.VALIDATION, seed=2).sample(intent)
    assert sample.target_speed_mps is None
    assert not re.search(r'\d', sample.text)


def test_set_speed_without_a_speed_is_refused():
    with pytest.raises(ValueError, match='SET_SPEED'):
        InstructionGenerator(Split.TRAIN, seed=0).sample(Intent.SET_SPEED)


@pytest.mark.parametrize('speed_mps', [0.0, 0.5, -10.0, math.nan, math.inf])
def test_set_speed_that_cannot_be_said_is_refused(speed_mps):
    with pytest.raises(ValueError, match='SET_SPEED'):
        InstructionGenerator(Split.TRAIN, seed=0).sample(Intent.SET_SPEED, speed_mps)


@pytest.mark.parametrize('intent', [i for i in Intent if i is not Intent.SET_SPEED])
def test_a_speed_for_another_intent_is_refused(intent):
    with pytest.raises(ValueError, match=intent.name):
        InstructionGenerator(Split.TRAIN, seed=0).sample(intent, 10.0)


def test_refused_calls_do_not_consume_the_random_stream():
    clean = InstructionGenerator(Split.TRAIN, seed=5)
    refused = InstructionGenerator(Split.TRAIN, seed=5)
    with pytest.raises(ValueError):
        refused.sample(Intent.PULL_OVER, 3.0)
    assert draw(refused, Intent.PULL_OVER, 5) == draw(clean, Intent.PULL_OVER, 5)


def test_texts_are_short_printable_ascii():
    for p in ALL_PARAPHRASES:
        text = p.template.replace(SPEED_SLOT, '130')
        assert text.strip() == text and text, p.paraphrase_id
        assert len(text) <= 200, p.paraphrase_id
        assert text.isascii(), p.paraphrase_id
        assert not any(unicodedata.category(c).startswith('C') for c in text), p.paraphrase_id


def test_docs_list_every_paraphrase_in_its_split():
    doc = (REPO_ROOT / 'docs' / 'INSTRUCTIONS.md').read_text()
    sections = dict(re.findall(r'^### (\w+)\n(.*?)(?=^#|\Z)', doc, flags=re.M | re.S))
    assert set(sections) == {split.value for split in Split}
    rows = {
        split: re.findall(r'^\| (\S+/\d+) \| (.+) \|$', sections[split.value], flags=re.M)
        for split in Split
    }
    for split in Split:
        expected = [(p.paraphrase_id, p.template) for p in ALL_PARAPHRASES if p.split is split]
        assert rows[split] == expected, f'docs/INSTRUCTIONS.md is out of date ({split.value})'
