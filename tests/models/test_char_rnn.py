"""CharRNN (lesson 13_3): batched teacher forcing over chunks, and generation that keeps its state."""

import pytest
import torch
from torch.testing import assert_close

from rnnshapes.models import ASCII, CharRNN

ALPHABET = "\n!$&',-.3:;?abcdefghijklmnopqrstuvwxyz"


def small(**kw: object) -> CharRNN:
    return CharRNN(**{"alphabet": ALPHABET, "embed": 8, "hidden": 16, "layers": 2, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(("batch", "time"), [(1, 1), (4, 10), (3, 2)])
def test_logits_cover_the_vocabulary_at_every_step(batch_first: bool, batch: int, time: int) -> None:
    model = small(batch_first=batch_first)
    lead = (batch, time) if batch_first else (time, batch)
    logits, h_n = model(torch.randint(0, len(ALPHABET), lead))
    assert logits.shape == (*lead, len(ALPHABET))
    assert h_n.shape == (2, batch, 16)


@pytest.mark.parametrize("batch_first", [True, False])
def test_chunks_with_the_hidden_state_carried_equal_one_long_call(batch_first: bool) -> None:
    model = small(batch_first=batch_first)
    time_axis = 1 if batch_first else 0
    x = torch.randint(0, len(ALPHABET), (3, 12) if batch_first else (12, 3))
    whole, h_whole = model(x)
    hidden = None
    parts = []
    for chunk in x.split(5, dim=time_axis):  # chunks of 5, 5, 2 steps
        logits, hidden = model(chunk, hidden)
        parts.append(logits)
    assert_close(torch.cat(parts, dim=time_axis), whole)
    assert_close(hidden, h_whole)


def test_default_alphabet_is_ascii_with_index_equal_to_code() -> None:
    model = CharRNN(embed=4, hidden=4, layers=1)
    assert model.alphabet == ASCII and len(ASCII) == 128
    assert model.encode("Wh").tolist() == [ord("W"), ord("h")]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("length", [0, 1, 25])
def test_generate_writes_the_requested_number_of_alphabet_characters(batch_first: bool, length: int) -> None:
    model = small(batch_first=batch_first)
    text = model.generate("tobe", length, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert len(text) == length
    assert set(text) <= set(ALPHABET)


def test_greedy_generation_is_deterministic_and_sampling_follows_the_generator() -> None:
    model = small()
    greedy = model.generate("wh", 30, temperature=0)
    assert greedy == model.generate("wh", 30, temperature=0)
    a = model.generate("wh", 30, temperature=1.5, generator=torch.Generator().manual_seed(1))
    b = model.generate("wh", 30, temperature=1.5, generator=torch.Generator().manual_seed(1))
    assert a == b


def test_generate_keeps_the_hidden_state_across_steps() -> None:
    # Greedy generation must equal re-reading the whole text so far at every step (the slow, stateless way).
    model = small()
    text = "the"
    expected = ""
    for _ in range(10):
        logits, _ = model(model.encode(text + expected)[None, :])  # (1, time, vocab)
        expected += ALPHABET[int(logits[0, -1].argmax())]
    assert model.generate(text, 10, temperature=0) == expected


def test_generate_restores_the_training_mode_and_tracks_no_gradients() -> None:
    model = small(dropout=0.5)
    seen: list[bool] = []
    model.head.register_forward_hook(lambda m, inp, out: seen.append(out.requires_grad))
    model.train()
    # dropout (between the 2 layers) is off while generating: greedy output is the same every time
    assert model.generate("a", 20, temperature=0) == model.generate("a", 20, temperature=0)
    assert model.training
    assert seen and not any(seen)
    model.eval()
    model.generate("a", 5)
    assert not model.training


def test_generate_rejects_bad_primes_and_arguments() -> None:
    model = small()
    with pytest.raises(ValueError, match=r"characters \['A', 'Z'\] are not in the model's alphabet"):
        model.generate("ZoA", 5)
    with pytest.raises(ValueError, match="prime must hold at least one character"):
        model.generate("", 5)
    with pytest.raises(ValueError, match="length and temperature must be >= 0"):
        model.generate("a", 5, temperature=-1)


def test_alphabet_with_a_repeated_character_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"every character appears once; got 4 characters, repeated: \['a'\]"
    ):
        CharRNN(alphabet="abca")
