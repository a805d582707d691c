"""Lecture 14's pairs: the course's TextDataset, a fixed held-out split, batches, and the edit distance."""

import random

import pytest

from rnnshapes import DataError
from rnnshapes.data._pairs import (
    BOS,
    EOS,
    PAD,
    PAIRS_ALPHABET,
    Pair,
    character_error_rate,
    decode_indices,
    encode_pairs,
    encode_text,
    line_edit_distances,
    restore_pairs,
    source_of,
    split_pairs,
)
from rnnshapes.lessons._seq2seq_task import lesson_pairs


def test_pairs_are_the_course_text_dataset(data_dir):
    pairs = restore_pairs(max_source=None)
    assert len(pairs) == 32_777  # the course's TextDataset: every stripped, non-empty line
    assert pairs[0] == Pair("firstcitizen:", "First Citizen:")
    assert all(p.source == p.target.lower().replace(" ", "") for p in pairs)
    assert "".join(sorted(set("".join(p.target for p in pairs)))) == PAIRS_ALPHABET
    bounded = restore_pairs()
    assert len(bounded) == 29_793 and max(len(p.source) for p in bounded) == 40


def test_held_out_lines_are_fixed_and_never_seen_in_training(data_dir):
    train, held_out = lesson_pairs()
    assert (len(train), len(held_out)) == (26_814, 2_117)
    assert not {p.target for p in train} & {p.target for p in held_out}
    assert len({p.target for p in held_out}) == len(held_out)
    assert lesson_pairs() == (train, held_out)  # fixed: no randomness


def test_split_keeps_the_order_and_drops_repeats():
    pairs = [Pair(source_of(t), t) for t in ["A b", "C", "A b", "D e", "D e", "F"]]
    train, held = split_pairs(pairs, held_out=0.5)
    assert [p.target for p in train] == ["A b", "C", "A b"]
    assert [p.target for p in held] == ["D e", "F"]
    with pytest.raises(DataError, match="between 0 and 1"):
        split_pairs(pairs, held_out=1.0)


def test_encode_pairs_pads_and_frames_with_bos_and_eos():
    batch = encode_pairs([Pair("ab", "A b"), Pair("c", "C")])
    assert batch.source.tolist() == [[encode_text("a")[0], encode_text("b")[0]], [encode_text("c")[0], PAD]]
    assert batch.source_lengths.tolist() == [2, 1]
    assert batch.target_in[:, 0].tolist() == [BOS, BOS]
    assert batch.target_lengths.tolist() == [4, 2]
    assert decode_indices(batch.target_out[0]) == "A b"
    assert batch.target_out[1].tolist()[1:] == [EOS, PAD, PAD]


def test_unknown_characters_are_named():
    with pytest.raises(DataError, match="character 'é' at position 1"):
        encode_text("hé")
    with pytest.raises(DataError, match="empty"):
        encode_pairs([Pair("", "")])


def _levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_batched_edit_distance_matches_the_textbook_one():
    rng = random.Random(0)
    a = ["".join(rng.choice("abc ") for _ in range(rng.randint(0, 12))) for _ in range(300)]
    b = ["".join(rng.choice("abc ") for _ in range(rng.randint(0, 12))) for _ in range(300)]
    assert line_edit_distances(a, b) == [_levenshtein(x, y) for x, y in zip(a, b, strict=True)]
    assert line_edit_distances(["kitten", "", "abc"], ["sitting", "ab", "abc"]) == [3, 2, 0]


def test_character_error_rate_and_exact_match():
    cer, exact = character_error_rate(["This is", "ROMEO"], ["This is", "ROMEO:"])
    assert cer == pytest.approx(1 / 13) and exact == 0.5
    with pytest.raises(DataError):
        character_error_rate([], [])
