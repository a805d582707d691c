"""The names data set: loading, ASCII encoding with normalisation, and the padded collate."""

import csv
import functools
import gzip

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader

from rnnshapes import DataError
from rnnshapes.data import (
    COUNTRIES,
    NAMES_VOCAB_SIZE,
    PAD_INDEX,
    NameDataset,
    collate_names,
    country_index,
    decode_name,
    encode_name,
    encode_names,
    load_names,
    normalize_name,
    read_names_file,
)


def raw_rows(data_dir, split):
    """The file read independently with the csv module: (name, country) strings."""
    with gzip.open(data_dir / f"names_{split}.csv.gz", "rt", encoding="utf-8", newline="") as f:
        return [tuple(row) for row in csv.reader(f)]


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_names_matches_the_file(data_dir, split):
    rows = load_names(split)  # found through RNNSHAPES_DATA
    raw = raw_rows(data_dir, split)
    assert len(rows) == len(raw) == {"train": 13_374, "test": 6_700}[split]
    assert [(n, COUNTRIES[c]) for n, c in rows] == raw
    assert {c for _, c in rows} == set(range(18))


def test_countries_are_the_sorted_set_of_both_splits(data_dir):
    seen = {c for split in ("train", "test") for _, c in raw_rows(data_dir, split)}
    assert COUNTRIES == tuple(sorted(seen))
    assert len(COUNTRIES) == 18
    assert [country_index(c) for c in COUNTRIES] == list(range(18))
    with pytest.raises(
        DataError, match=r"unknown country 'Klingon'; the names data set has these 18: \['Arabic'"
    ):
        country_index("Klingon")


def test_unknown_split():
    with pytest.raises(DataError, match=r"unknown names split 'dev'; use 'train' or 'test'"):
        load_names("dev")  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_first", [True, False])
def test_collate_round_trips_every_name_of_both_splits(names_rows, batch_first):
    for rows in names_rows.values():
        for begin in range(0, len(rows), 1000):
            chunk = rows[begin : begin + 1000]
            inputs, lengths, labels = collate_names(chunk, batch_first=batch_first)
            padded = inputs if batch_first else inputs.t()
            assert inputs.dtype == lengths.dtype == labels.dtype == torch.long
            assert lengths.device.type == "cpu"
            assert padded.shape == (len(chunk), max(len(n) for n, _ in chunk))
            assert lengths.tolist() == [len(n) for n, _ in chunk]
            assert labels.tolist() == [c for _, c in chunk]
            codes = padded.tolist()
            for (name, _), row, length in zip(chunk, codes, lengths.tolist(), strict=True):
                assert "".join(map(chr, row[:length])) == name
                assert all(v == PAD_INDEX for v in row[length:])
                assert all(0 < v < NAMES_VOCAB_SIZE for v in row[:length])
            assert decode_name(padded[0]) == chunk[0][0]


def test_name_data_facts(names_rows):
    names = [n for rows in names_rows.values() for n, _ in rows]
    assert "".join(sorted(set("".join(names)))) == " ',ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert min(map(len, names)) == 2
    assert max(map(len, names)) == 19


def test_dataloader_with_collate_and_pack(names_rows):
    ds = NameDataset(rows=names_rows["test"][:300])
    assert len(ds) == 300
    assert ds[5] == names_rows["test"][5]
    assert ds.countries == COUNTRIES
    collate = functools.partial(collate_names, batch_first=False)
    loader = DataLoader(ds, batch_size=128, shuffle=False, collate_fn=collate)
    batches = list(loader)
    assert [b.inputs.shape[1] for b in batches] == [128, 128, 44]
    emb = torch.nn.Embedding(NAMES_VOCAB_SIZE, 3, padding_idx=PAD_INDEX)
    first = batches[0]
    packed = pack_padded_sequence(emb(first.inputs), first.lengths, enforce_sorted=False)
    assert packed.data.shape == (int(first.lengths.sum()), 3)


def test_name_dataset_loads_a_split(data_dir):
    assert len(NameDataset("test")) == 6_700


@pytest.mark.parametrize(
    ("raw", "ascii"),
    [
        ("Jürgen", "Jurgen"),
        ("Émile", "Emile"),
        ("Dvořák", "Dvorak"),
        ("Nguyễn", "Nguyen"),
        ("O'Neil", "O'Neil"),
    ],
)
def test_non_ascii_letters_are_normalised(raw, ascii):
    assert normalize_name(raw) == ascii
    assert torch.equal(encode_name(raw), torch.tensor([ord(c) for c in ascii]))


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("Strauß", r"character 'ß' \(U\+00DF\) at position 5 of 'Strauß' is not ASCII"),
        (
            "Østergård",
            r"character 'Ø' \(U\+00D8\) at position 0 of 'Østergard' \(from 'Østergård'\) is not ASCII",
        ),
        ("李", r"character '李' \(U\+674E\) at position 0 of '李' is not ASCII"),
        ("Ab\x00c", r"character '\\x00' \(U\+0000\) at position 2 of 'Ab\\x00c' is the padding code 0"),
    ],
)
def test_unmappable_character_names_character_position_and_name(name, pattern):
    with pytest.raises(DataError, match=pattern + r".*ASCII codes 1-127"):
        encode_name(name)


def test_empty_name_is_refused():
    with pytest.raises(DataError, match=r"empty name"):
        encode_name("")
    with pytest.raises(DataError, match=r"no names to encode"):
        encode_names([])
    with pytest.raises(DataError, match=r"cannot collate an empty batch"):
        collate_names([])


@pytest.mark.parametrize("batch_first", [True, False])
def test_encode_names_for_prediction(batch_first):
    inputs, lengths = encode_names(["Sung", "Jungwoo", "Jürgen"], batch_first=batch_first)
    assert inputs.shape == ((3, 7) if batch_first else (7, 3))
    assert lengths.tolist() == [4, 7, 6]
    rows = inputs if batch_first else inputs.t()
    assert [decode_name(r) for r in rows] == ["Sung", "Jungwoo", "Jurgen"]


def test_read_names_file_reports_bad_rows(tmp_path):
    path = tmp_path / "names.csv.gz"
    path.write_bytes(gzip.compress(b'"Abl","Czech"\r\n"Abe","Czech","x"\r\n'))
    with pytest.raises(DataError, match=r"names\.csv\.gz, line 2: expected 2 fields 'name,country', got 3"):
        read_names_file(path)
    path.write_bytes(gzip.compress(b'"Abl","Czech"\r\n"Abe","Atlantis"\r\n'))
    with pytest.raises(DataError, match=r"line 2: unknown country 'Atlantis'"):
        read_names_file(path)
    plain = tmp_path / "names.csv"
    plain.write_text('"Jürgen","German"\n', encoding="utf-8")
    assert read_names_file(plain) == [("Jurgen", COUNTRIES.index("German"))]
    path.write_bytes(gzip.compress(b'"Abl","Czech"\r\n')[:-5])
    with pytest.raises(DataError, match=r"cannot read the names file .*EOFError"):
        read_names_file(path)
