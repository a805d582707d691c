import torch

from rnnshapes.data import COUNTRIES, encode_names


def test_the_hello_model_spells_ihello(rnn_lesson):
    trained = rnn_lesson("hello-sequence")  # trained here, or loaded if this run (or cache) has it
    trained.assert_reached()  # fails with the curve and a rerun line if the target was missed
    assert trained.target == "text == 'ihello'"
    assert trained.value == "ihello"  # the target metric's last value: here, the text the model spells
    assert trained.steps <= 50  # the lesson's step budget (--rnnshapes-budget=ci)
    assert not trained.model.training  # handed over in eval mode


def test_the_names_model_reads_raw_names(rnn_lesson):
    trained = rnn_lesson("names")  # the 13_2 classifier: under half a minute on one CPU thread, once per run
    trained.assert_reached()  # test accuracy >= 0.85
    names = ["Nakamura", "Kowalski", "Papadopoulos", "O'Brien"]
    inputs, lengths = encode_names(names)  # (batch, time) ASCII codes padded with 0, and (batch,) lengths
    with torch.no_grad():
        logits = trained.model(inputs, lengths)  # (batch, countries); the model packs the batch itself
    assert logits.shape == (len(names), len(COUNTRIES))
    guesses = [COUNTRIES[i] for i in logits.argmax(dim=-1).tolist()]
    assert guesses == ["Japanese", "Polish", "Greek", "Irish"]
