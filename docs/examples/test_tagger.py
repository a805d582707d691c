"""A user's tests of two small recurrent models, written with the rnnshapes pytest plugin's fixtures.

`Tagger` scores every time step of a batch-first sequence; `Classifier` reads padded batches of token
indices, packs them with their lengths and scores each whole sequence. Every check of rnnshapes.testing is
used once, through the `rnn_checks` fixture. The sections between `--8<--` lines are shown one by one on the
documentation's pytest-plugin page.
"""

# --8<-- [start:models]
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class Tagger(nn.Module):
    def __init__(self, input=5, hidden=7, classes=3):
        super().__init__()
        self.rnn = nn.GRU(input, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # x: (batch, time, input)
        output, _ = self.rnn(x)
        return self.head(output)  # (batch, time, classes)


class Classifier(nn.Module):
    def __init__(self, vocab=20, embed=6, hidden=8, classes=4):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x, lengths):  # x: (batch, time) token indices, padded; lengths: (batch,) on the CPU
        packed = pack_padded_sequence(self.embedding(x), lengths, batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)  # h_n: (1, batch, hidden), each sequence's state at its own last token
        return self.head(h_n[-1])  # (batch, classes)


def padded_batch():
    lengths = torch.tensor([5, 2, 7, 1])  # batch=4, unsorted
    x = torch.randint(1, 20, (4, 7))  # time=7: the longest length
    for i, n in enumerate(lengths):
        x[i, n:] = 0  # padding
    return x, lengths


# --8<-- [end:models]
# --8<-- [start:batch_independence]
def test_examples_stay_apart(rnn_checks, rnn_device):
    model = Tagger().to(rnn_device)
    x = rnn_checks.to_device(torch.randn(4, 6, 5))  # batch=4, time=6, input=5
    rnn_checks.check_batch_independence(model, x)


# --8<-- [end:batch_independence]
# --8<-- [start:causal]
def test_no_peeking_ahead(rnn_checks):
    rnn_checks.check_causal(Tagger(), torch.randn(4, 6, 5), time_axis=1)


# --8<-- [end:causal]
# --8<-- [start:every_parameter_learns]
def test_every_parameter_learns(rnn_checks):
    x, lengths = padded_batch()
    rnn_checks.check_every_parameter_learns(Classifier(), (x, lengths))  # one backward pass, no dead weight


# --8<-- [end:every_parameter_learns]
# --8<-- [start:shape_contract]
def test_output_shapes(rnn_checks):
    sizes = rnn_checks.check_shape_contract(
        lambda s: Tagger(s["input"], s["hidden"], s["classes"]),  # built with the probe's sizes
        lambda s: torch.randn(s["batch"], s["time"], s["input"]),
        "batch time classes",
        sizes=["batch", "time", "input", "hidden", "classes"],
    )
    assert len(set(sizes.values())) == len(sizes)  # every axis had its own size


# --8<-- [end:shape_contract]
# --8<-- [start:init_loss]
def test_starts_unsure(rnn_checks):
    x, tags = torch.randn(8, 6, 5), torch.randint(0, 3, (8, 6))
    rnn_checks.check_init_loss(Tagger(), x, tags, classes=3)  # about log(3) before any training


# --8<-- [end:init_loss]
# --8<-- [start:overfits_batch]
def test_memorises_one_batch(rnn_checks):
    x, y = torch.randn(8, 6, 5), torch.randint(0, 3, (8, 6))

    def loss(logits, y):
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())

    rnn_checks.check_overfits_batch(Tagger(), x, y, loss, steps=500, lr=0.03)


# --8<-- [end:overfits_batch]
# --8<-- [start:converges]
def test_learns_to_tag_the_previous_step(rnn_checks):
    # the task needs memory: tag each step with the largest of the PREVIOUS step's first 3 features
    def batch(n):
        x = torch.randn(n, 6, 5)
        previous = torch.cat([torch.zeros(n, 1, 5), x[:, :-1]], dim=1)
        return x, previous[..., :3].argmax(-1)

    model, (x_test, y_test) = Tagger(hidden=16), batch(256)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)

    def train_step():
        x, y = batch(32)
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    def accuracy():
        with torch.no_grad():
            return (model(x_test).argmax(-1) == y_test).float().mean()

    # max_steps as written for --rnnshapes-budget=ci; rnn_checks scales it (full: x10); model= watches its
    # parameters: the result (and the end-of-run table) says which never received a gradient, if any
    rnn_checks.check_converges(train_step, accuracy, 0.9, max_steps=400, eval_every=20, model=model)


# --8<-- [end:converges]
# --8<-- [start:packed_matches_unbatched]
def test_padded_batch_equals_one_at_a_time(rnn_checks):
    x, lengths = padded_batch()
    rnn_checks.check_packed_matches_unbatched(Classifier(), x, lengths)


# --8<-- [end:packed_matches_unbatched]
# --8<-- [start:padding_invariance]
def test_padding_changes_nothing(rnn_checks):
    x, lengths = padded_batch()
    rnn_checks.check_padding_invariance(Classifier(), x, lengths)  # more padding, and random padding


# --8<-- [end:padding_invariance]
# --8<-- [start:state_dict_roundtrip]
def test_survives_save_and_load(rnn_checks):
    model = Classifier()
    # saved, then loaded into Classifier(), a fresh model: the outputs must not change a bit
    rnn_checks.check_state_dict_roundtrip(model, Classifier, padded_batch())


# --8<-- [end:state_dict_roundtrip]
# --8<-- [start:device_parity]
def test_same_on_cpu_and_cuda(rnn_checks):
    # skipped with the reason where torch finds no CUDA (an error under --rnnshapes-device=cuda or all)
    rnn_checks.check_device_parity(Classifier(), padded_batch())


# --8<-- [end:device_parity]
