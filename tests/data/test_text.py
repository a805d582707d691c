"""Shakespeare text: loading as the lesson prepares it, the character vocabulary, splits and batches."""

import gzip

import pytest
import torch

from rnnshapes import DataError
from rnnshapes.data import (
    CharVocab,
    load_shakespeare,
    random_windows,
    shakespeare_lines,
    split_train_val,
    teacher_forcing_pair,
    text_batches,
)


@pytest.fixture
def raw_text(data_dir) -> str:
    """The file, read independently of the package."""
    with gzip.open(data_dir / "shakespeare.txt.gz", "rt", encoding="utf-8", newline="") as f:
        return f.read()


def test_load_shakespeare_raw_and_prepared(raw_text):
    raw = load_shakespeare(lower=False, remove_spaces=False)
    assert raw == raw_text
    assert len(raw) == 1_115_394 and len(set(raw)) == 65 and raw.count("\n") == 40_000
    text = load_shakespeare()
    assert text == raw_text.lower().replace(" ", "")
    assert " " not in text and text == text.lower()
    assert text.count("\n") == 40_000  # newlines and blank lines are kept
    symbols = set(text)
    assert len(symbols) == 38  # 26 letters + 11 punctuation marks + newline (see _text.py)
    assert symbols == set("abcdefghijklmnopqrstuvwxyz") | set("!$&',-.3:;?") | {"\n"}


def test_shakespeare_lines_are_the_lessons(raw_text):
    lines = shakespeare_lines()
    lesson = [s.strip().lower().replace(" ", "") for s in raw_text.splitlines() if s.strip()]
    assert lines == lesson
    assert len(lines) == 32_777
    assert len(set("".join(lines))) == 37  # no newline inside the lines
    kept = shakespeare_lines(lower=False, remove_spaces=False)
    assert kept[0] == "First Citizen:" and all(kept)


def test_vocab_round_trips_the_whole_text(data_dir):
    text = load_shakespeare()
    vocab = CharVocab.from_text(text)
    assert len(vocab) == 38
    assert list(vocab.itos) == sorted(set(text))
    assert all(vocab.stoi[s] == i for i, s in enumerate(vocab.itos))
    ids = vocab.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert int(ids.min()) == 0 and int(ids.max()) == len(vocab) - 1
    assert vocab.decode(ids) == text
    assert CharVocab(list(vocab.itos)) == vocab  # rebuilt from a saved itos


def test_vocab_encode_decode_small():
    vocab = CharVocab.from_text("hello world")
    assert vocab.itos == (" ", "d", "e", "h", "l", "o", "r", "w")
    assert vocab.encode("hello").tolist() == [3, 2, 4, 4, 5]
    assert vocab.decode([3, 5]) == "ho"
    assert vocab.decode(torch.tensor([[3], [5]])) == "ho"
    assert vocab.encode("").shape == (0,)
    assert "h" in vocab and "z" not in vocab
    with pytest.raises(
        DataError, match=r"character 'z' \(U\+007A\) at position 4 is not in the vocabulary of 8"
    ):
        vocab.encode("hellz")
    with pytest.raises(DataError, match=r"character '€' \(U\+20AC\) at position 0 is not in the vocabulary"):
        vocab.encode("€")  # a code point beyond every symbol of the vocabulary
    with pytest.raises(DataError, match=r"index 8 is outside the vocabulary of 8 symbols \(0\.\.7\)"):
        vocab.decode([1, 8])
    with pytest.raises(DataError, match=r"index -1 is outside the vocabulary"):
        vocab.decode([-1])


def test_vocab_rejects_bad_symbols():
    with pytest.raises(DataError, match=r"repeated: \['a'\]"):
        CharVocab(["a", "b", "a"])
    with pytest.raises(DataError, match=r"single characters; got \['ab'\]"):
        CharVocab(["ab"])
    with pytest.raises(DataError, match=r"at least one symbol"):
        CharVocab([])


def test_ascii_vocab_is_ord():
    vocab = CharVocab.ascii()
    assert len(vocab) == 128
    assert vocab.encode("Wh!").tolist() == [ord("W"), ord("h"), ord("!")]


def test_split_train_val_is_contiguous():
    ids = torch.arange(1000)
    train, val = split_train_val(ids)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), ids)
    train, val = split_train_val(ids, val_fraction=0.25)
    assert val[0] == 750
    with pytest.raises(DataError, match=r"val_fraction must be between 0 and 1"):
        split_train_val(ids, 1.0)
    with pytest.raises(DataError, match=r"too short to split"):
        split_train_val(torch.arange(5))
    with pytest.raises(DataError, match=r"shape \(time,\), got shape \(2, 3\)"):
        split_train_val(torch.zeros(2, 3, dtype=torch.long))


def test_random_windows_are_contiguous_and_seeded():
    ids = torch.arange(500) * 3
    w = random_windows(ids, 20, 16, generator=torch.Generator().manual_seed(1))
    assert w.shape == (16, 21) and w.dtype == ids.dtype
    assert torch.all(w[:, 1:] - w[:, :-1] == 3)  # consecutive steps of the text
    assert int(w.max()) <= int(ids[-1])
    again = random_windows(ids, 20, 16, generator=torch.Generator().manual_seed(1))
    other = random_windows(ids, 20, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(w, again) and not torch.equal(w, other)
    # windows may start anywhere, up to the last possible place
    starts = random_windows(torch.arange(22), 20, 200, generator=torch.Generator().manual_seed(0))[:, 0]
    assert set(starts.tolist()) == {0, 1}
    with pytest.raises(DataError, match=r"the text has 10 steps, too short for one window of length 10 \+ 1"):
        random_windows(torch.arange(10), 10, 2)


def test_teacher_forcing_pair():
    inp, target = teacher_forcing_pair(torch.arange(12).view(2, 6))
    assert inp.shape == target.shape == (2, 5)
    assert torch.equal(target[:, :-1], inp[:, 1:])
    assert target[0, -1] == 5 and inp[1, 0] == 6
    with pytest.raises(DataError, match=r"windows of shape \(batch, time \+ 1\)"):
        teacher_forcing_pair(torch.arange(6))


def test_text_batches_cover_every_target_once():
    T, L, N = 1003, 10, 16
    ids = torch.arange(T)
    batches = list(text_batches(ids, L, N, generator=torch.Generator().manual_seed(0)))
    n_chunks = (T - 1) // L
    assert [b[0].shape[0] for b in batches] == [N] * (n_chunks // N) + [n_chunks % N]
    targets = torch.cat([t for _, t in batches]).reshape(-1)
    assert sorted(targets.tolist()) == list(range(1, n_chunks * L + 1))
    for inp, target in batches:
        assert inp.shape == target.shape and inp.shape[1] == L
        assert torch.equal(target, inp + 1)  # the target is the next step of the text
    ordered = list(text_batches(ids, L, N, shuffle=False))
    assert ordered[0][0][:, 0].tolist() == [i * L for i in range(N)]
    shuffled = [b[0][:, 0].tolist() for b in batches]
    again = [b[0][:, 0].tolist() for b in text_batches(ids, L, N, generator=torch.Generator().manual_seed(0))]
    assert shuffled == again and shuffled != [b[0][:, 0].tolist() for b in ordered]
    dropped = list(text_batches(ids, L, N, shuffle=False, drop_last=True))
    assert len(dropped) == n_chunks // N and all(b[0].shape[0] == N for b in dropped)
