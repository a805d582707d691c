"""The course's own recipes (hunkim/PyTorchZeroToAll, lectures 12-13), re-implemented for the benchmarks.

Each function trains the course's architecture with the course's hyper-parameters, its data pipeline and its
bugs where they define the recipe; only what no longer runs on modern torch is changed (``loss.item()``
instead of ``loss.data[0]``, no ``Variable``, lengths handed to ``pack_padded_sequence`` as a CPU tensor).
A ``device`` argument stands for the course's ``.cuda()`` calls.

==========  ===================================================================================================
12_2        one-hot "hihell", ``nn.RNN(5, 5, batch_first=True)`` fed ONE step per call, its tanh outputs used
            as logits, the step losses SUMMED, Adam lr=0.1, 100 epochs
12_3        the same RNN over the whole sequence in one call, mean cross-entropy
12_4        ``Embedding(5, 10) -> RNN(10, 5) -> Linear(5, 5)``, Adam lr=0.1, 100 epochs
13_2        ``Embedding(128, 100) -> GRU(100, 100, num_layers=2, bidirectional=True) -> Linear(100, 18)`` on
            ``hidden[-1]`` (the last layer's BACKWARD direction only), batches of 256 names sorted by length and
            packed, Adam lr=1e-3, test accuracy after each epoch (evaluated with autograd on, as the course does)
13_3        ``Embedding(128, 100) -> GRU(100, 100, num_layers=3) -> Linear(100, 128)``, one character per call,
            one line per step, each step's input is the model's own argmax prediction (the ``train`` the course
            runs, not its unused ``train_teacher_forching``), Adam lr=1e-3
==========  ===================================================================================================

These files are not imported by the package; they exist to measure the course side by side with the lessons.
"""

import csv
import gzip
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, Dataset

from rnnshapes import lessons
from rnnshapes.data import CharVocab, find_data_file, load_shakespeare, shakespeare_lines, split_train_val

IDX2CHAR = ["h", "i", "e", "l", "o"]
X_DATA = [0, 1, 0, 2, 3, 3]  # hihell
Y_DATA = [1, 0, 2, 3, 3, 4]  # ihello
IHELLO = "ihello"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- 12_2, 12_3, 12_4: hihell -> ihello -------------------------------------------------------------------


class Hello12_2(nn.Module):
    """12_2: ``nn.RNN(5, 5)``, one time step per call; the RNN's tanh output is the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(input_size=5, hidden_size=5, batch_first=True)

    def forward(self, hidden: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.view(1, 1, 5)  # (batch, seq_len=1, input_size)
        out, hidden = self.rnn(x, hidden)
        return hidden, out.view(-1, 5)


class Hello12_3(nn.Module):
    """12_3: the same RNN over the whole sequence; ``x.view(...)`` whose result the course throws away."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(input_size=5, hidden_size=5, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        h_0 = torch.zeros(1, x.size(0), 5, device=x.device)
        x.view(x.size(0), 6, 5)  # the course's no-op reshape
        out, _ = self.rnn(x, h_0)
        return out.view(-1, 5)


class Hello12_4(nn.Module):
    """12_4: ``Embedding(5, 10) -> RNN(10, 5) -> Linear(5, 5)``."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(5, 10)
        self.rnn = nn.RNN(input_size=10, hidden_size=5, batch_first=True)
        self.fc = nn.Linear(5, 5)

    def forward(self, x: Tensor) -> Tensor:
        h_0 = torch.zeros(x.size(0), 1, 5, device=x.device)  # (batch, layers, hidden): works for batch 1 only
        emb = self.embedding(x).view(1, 6, -1)
        out, _ = self.rnn(emb, h_0)
        return self.fc(out.view(-1, 5))


@dataclass
class HelloRun:
    """One course run of 100 epochs on "hihell".

    ``first_step`` counts the optimizer steps taken before the prediction printed in an epoch (made before
    that epoch's step, as the course prints it) first read "ihello"; ``reached`` is the prediction of the
    final weights after all epochs.
    """

    course: str
    seed: int
    reached: bool
    final_text: str
    first_step: int | None
    seconds: float
    seconds_to_first: float | None


def hello_course(course: str, seed: int, device: str | torch.device = "cpu", epochs: int = 100) -> HelloRun:
    """Train the course's 12_2 / 12_3 / 12_4 recipe for ``epochs`` epochs from ``torch.manual_seed(seed)``."""
    dev = torch.device(device)
    torch.manual_seed(seed)
    model: nn.Module
    if course == "12_2":
        model = Hello12_2()
    elif course == "12_3":
        model = Hello12_3()
    elif course == "12_4":
        model = Hello12_4()
    else:
        raise ValueError(f"no hello recipe {course!r}; use 12_2, 12_3 or 12_4")
    model.to(dev)
    one_hot = torch.eye(5)[X_DATA]  # (6, 5)
    labels = torch.tensor(Y_DATA, device=dev)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)

    if course == "12_2":
        inputs = one_hot.to(dev)

        def outputs_and_loss() -> tuple[Tensor, Tensor]:
            hidden = torch.zeros(1, 1, 5, device=dev)
            loss: Any = 0
            outs = []
            for x_t, label in zip(inputs, labels, strict=True):
                hidden, output = model(hidden, x_t)
                outs.append(output)
                loss = loss + criterion(output, label.view(1))  # summed over the six steps, as the course
            return torch.cat(outs), loss

    else:
        inputs = (one_hot.unsqueeze(0) if course == "12_3" else torch.tensor([X_DATA])).to(dev)

        def outputs_and_loss() -> tuple[Tensor, Tensor]:
            outputs = model(inputs)
            return outputs, criterion(outputs, labels)

    def text(outputs: Tensor) -> str:
        return "".join(IDX2CHAR[c] for c in outputs.max(1)[1].tolist())

    first_step: int | None = None
    seconds_to_first: float | None = None
    _sync(dev)
    start = time.perf_counter()
    for epoch in range(epochs):
        optimizer.zero_grad()
        outputs, loss = outputs_and_loss()
        loss.backward()
        optimizer.step()
        loss.item()  # the course prints the loss every epoch
        if text(outputs) == IHELLO and first_step is None:  # ... and the predicted string
            first_step, seconds_to_first = epoch, time.perf_counter() - start
    _sync(dev)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        final = text(outputs_and_loss()[0])
    return HelloRun(course, seed, final == IHELLO, final, first_step, seconds, seconds_to_first)


# --- 13_2: a name's country ---------------------------------------------------------------------------------


class CourseNames(Dataset[tuple[str, str]]):
    """The course's ``NameDataset``: the csv rows as they are, countries sorted for the class ids."""

    def __init__(self, is_train_set: bool) -> None:
        path = find_data_file("names_train.csv.gz" if is_train_set else "names_test.csv.gz")
        with gzip.open(path, "rt") as f:
            rows = list(csv.reader(f))
        self.names = [row[0] for row in rows]
        self.countries = [row[1] for row in rows]
        self.country_list = sorted(set(self.countries))

    def __getitem__(self, index: int) -> tuple[str, str]:
        return self.names[index], self.countries[index]

    def __len__(self) -> int:
        return len(self.names)


class RNNClassifier(nn.Module):
    """13_2: embedding -> packed 2-layer bidirectional GRU (sequence first) -> ``fc(hidden[-1])``."""

    def __init__(self, input_size: int = 128, hidden_size: int = 100, output_size: int = 18) -> None:
        super().__init__()
        self.hidden_size, self.n_layers, self.n_directions = hidden_size, 2, 2
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, 2, bidirectional=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, input: Tensor, seq_lengths: Tensor) -> Tensor:
        input = input.t()  # (time, batch)
        batch_size = input.size(1)
        hidden = torch.zeros(
            self.n_layers * self.n_directions, batch_size, self.hidden_size, device=input.device
        )
        embedded = self.embedding(input)
        gru_input = pack_padded_sequence(embedded, seq_lengths.cpu())
        self.gru.flatten_parameters()
        _, hidden = self.gru(gru_input, hidden)
        return self.fc(hidden[-1])  # the course's bug: the last layer's backward direction only


def make_variables(
    names: list[str], countries: list[str], country_list: list[str], device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """The course's ``make_variables``: ASCII codes, zero-padded, sorted by length (longest first)."""
    seqs = [[ord(c) for c in name] for name in names]
    seq_lengths = torch.LongTensor([len(s) for s in seqs])
    seq_tensor = torch.zeros((len(seqs), int(seq_lengths.max()))).long()
    for idx, (seq, seq_len) in enumerate(zip(seqs, seq_lengths, strict=True)):
        seq_tensor[idx, :seq_len] = torch.LongTensor(seq)
    seq_lengths, perm_idx = seq_lengths.sort(0, descending=True)
    seq_tensor = seq_tensor[perm_idx]
    target = torch.LongTensor([country_list.index(c) for c in countries])
    if len(countries):
        target = target[perm_idx]
    return seq_tensor.to(device), seq_lengths.to(device), target.to(device)


@dataclass
class NamesEpoch:
    epoch: int
    train_seconds: float
    seconds: float  # training and evaluation so far (the course evaluates after every epoch)
    accuracy: float
    mean_loss: float


@dataclass
class NamesRun:
    seed: int
    epochs: list[NamesEpoch] = field(default_factory=list)

    @property
    def best(self) -> float:
        return max(e.accuracy for e in self.epochs)

    def seconds_to(self, accuracy: float) -> float | None:
        """Wall clock (training and evaluations) until the test accuracy first reached ``accuracy``."""
        return next((e.seconds for e in self.epochs if e.accuracy >= accuracy), None)


def names_course(
    epochs: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_batches: int | None = None,
    test_limit: int | None = None,
) -> NamesRun:
    """Train the course's 13_2 classifier for ``epochs`` epochs, evaluating the test accuracy after each.

    ``max_batches`` and ``test_limit`` cut an epoch and the test set short (smoke runs only).
    """
    dev = torch.device(device)
    torch.manual_seed(seed)
    train_set, test_set = CourseNames(True), CourseNames(False)
    if test_limit is not None:
        test_set.names, test_set.countries = test_set.names[:test_limit], test_set.countries[:test_limit]
    country_list = train_set.country_list
    train_loader = DataLoader(dataset=train_set, batch_size=256, shuffle=True)
    test_loader = DataLoader(dataset=test_set, batch_size=256, shuffle=True)
    classifier = RNNClassifier(128, 100, len(country_list)).to(dev)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()
    run = NamesRun(seed)
    elapsed = 0.0
    for epoch in range(1, epochs + 1):
        _sync(dev)
        start = time.perf_counter()
        total_loss, batches = 0.0, 0
        for i, (names, countries) in enumerate(train_loader, 1):
            inputs, seq_lengths, target = make_variables(list(names), list(countries), country_list, dev)
            loss = criterion(classifier(inputs, seq_lengths), target)
            total_loss += loss.item()
            classifier.zero_grad()
            loss.backward()
            optimizer.step()
            batches = i
            if max_batches is not None and i >= max_batches:
                break
        _sync(dev)
        train_seconds = time.perf_counter() - start
        correct = 0
        for names, countries in test_loader:  # autograd on, as in the course's test()
            inputs, seq_lengths, target = make_variables(list(names), list(countries), country_list, dev)
            pred = classifier(inputs, seq_lengths).data.max(1, keepdim=True)[1]
            correct += int(pred.eq(target.data.view_as(pred)).cpu().sum())
        elapsed += time.perf_counter() - start
        run.epochs.append(
            NamesEpoch(epoch, train_seconds, elapsed, correct / len(test_set), total_loss / max(batches, 1))
        )
    return run


# --- 13_3: char-RNN -----------------------------------------------------------------------------------------


class CharRNN13_3(nn.Module):
    """13_3: ASCII embedding -> 3-layer GRU -> Linear, ONE character per call (batch 1, length 1)."""

    def __init__(self, input_size: int = 128, hidden_size: int = 100, output_size: int = 128) -> None:
        super().__init__()
        self.hidden_size, self.n_layers = hidden_size, 3
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, 3)
        self.linear = nn.Linear(hidden_size, output_size)

    def forward(self, input: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        embed = self.embedding(input.view(1, -1)).view(1, 1, -1)  # (time=1, batch=1, embed)
        output, hidden = self.gru(embed, hidden)
        return self.linear(output.view(1, -1)), hidden

    def init_hidden(self, device: torch.device) -> Tensor:
        return torch.zeros(self.n_layers, 1, self.hidden_size, device=device)


class CourseCharAsLesson(nn.Module):
    """The course's char-RNN behind the ``char-rnn`` lesson's model interface, so that the lesson's own
    evaluation scores it: ``(x, hidden) -> (logits, hidden)``, batch first, x in the lesson's vocabulary.

    The course predicts 128 ASCII classes; the logits returned are its log-probabilities of the lesson's V
    symbols plus one column holding the log of everything else (they sum to 1), so a cross-entropy over them
    is exactly the course's 128-way cross-entropy of the same characters (no renormalisation over V).
    The whole batch runs through the GRU in one call per chunk: the same numbers as feeding one character
    per call from the carried hidden state, as the course's ``train_teacher_forching`` does.
    """

    def __init__(self, decoder: CharRNN13_3, alphabet: str) -> None:
        super().__init__()
        self.decoder = decoder
        codes = torch.tensor([ord(c) for c in alphabet])
        rest = torch.ones(128, dtype=torch.bool)
        rest[codes] = False
        self.register_buffer("codes", codes)
        self.register_buffer("rest", rest)

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        inputs = self.codes[x].t()  # (time, batch) ASCII codes, sequence first like the course's GRU
        if hidden is None:
            hidden = torch.zeros(
                self.decoder.n_layers, inputs.size(1), self.decoder.hidden_size, device=x.device
            )
        output, hidden = self.decoder.gru(self.decoder.embedding(inputs), hidden)
        logp = torch.log_softmax(self.decoder.linear(output), dim=-1)  # (time, batch, 128)
        other = torch.logsumexp(logp[..., self.rest], dim=-1, keepdim=True)
        return torch.cat([logp[..., self.codes], other], dim=-1).transpose(0, 1), hidden  # (batch, time, V+1)


class FrequencyModel(nn.Module):
    """A model that knows only how often each symbol occurs: the same log-probabilities at every step."""

    def __init__(self, train_ids: Tensor, vocab_size: int) -> None:
        super().__init__()
        counts = torch.bincount(train_ids, minlength=vocab_size).double()
        self.register_buffer("logp", (counts / counts.sum()).log().float())

    def forward(self, x: Tensor, hidden: Any = None) -> tuple[Tensor, Any]:
        return self.logp.to(x.device).expand(*x.shape, -1), hidden


def str2tensor(string: str, device: torch.device) -> Tensor:
    return torch.LongTensor([ord(c) for c in string]).to(device)


def held_out_split() -> tuple[CharVocab, Tensor, Tensor]:
    """The char-rnn lesson's text cut as the lesson cuts it: the lower-cased, spaces-removed Shakespeare,
    its vocabulary, the first 90% (training) and the last 10% (held out), as vocabulary indices."""
    text = load_shakespeare(lower=True, remove_spaces=True)
    vocab = CharVocab.from_text(text)
    train_ids, val_ids = split_train_val(vocab.encode(text), 0.1)
    return vocab, train_ids, val_ids


def lesson_evaluator(device: str | torch.device = "cpu") -> Callable[[nn.Module], float]:
    """The ``char-rnn`` lesson's own evaluation (its held-out loss, nats/char) for any model with its
    interface, run in eval mode without gradients."""
    lesson = lessons.get("char-rnn")
    assert lesson.build_task is not None
    task = lesson.build_task(lesson, torch.device(device), torch.Generator().manual_seed(0))

    def evaluate(model: nn.Module) -> float:
        model.eval()
        with torch.no_grad():
            return float(task.evaluate(model)["loss"])

    return evaluate


@dataclass
class CharRun:
    seconds: float
    lines: int
    characters: int  # predicted characters (the sum of len(line) - 1)
    mean_train_loss: float  # over the last 100 lines
    decoder: CharRNN13_3 = field(repr=False)

    @property
    def ms_per_char(self) -> float:
        return 1000 * self.seconds / max(self.characters, 1)


def char_course(seconds: float, *, seed: int = 0, device: str | torch.device = "cpu") -> CharRun:
    """Train the course's 13_3 char-RNN for ``seconds`` of wall clock.

    Training as the course's ``train(line)``: shuffled lines (batch 1), each character's input is the
    previous step's argmax prediction, the losses summed over the line, one Adam step per line.
    """
    dev = torch.device(device)
    torch.manual_seed(seed)
    decoder = CharRNN13_3(128, 100, 128).to(dev)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()
    train_loader = DataLoader(dataset=shakespeare_lines(), batch_size=1, shuffle=True)

    def train(line: str) -> float:
        inputs, target = str2tensor(line[:-1], dev), str2tensor(line[1:], dev)
        hidden = decoder.init_hidden(dev)
        decoder_in = inputs[0]
        loss: Any = 0
        for c in range(len(inputs)):
            output, hidden = decoder(decoder_in, hidden)
            loss = loss + criterion(output, target[c].view(1))
            decoder_in = output.max(1)[1]  # the course feeds its own prediction back
        decoder.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item() / len(inputs)

    lines = characters = 0
    recent: list[float] = []
    _sync(dev)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for (line,) in train_loader:
            recent = (recent + [train(line)])[-100:]
            lines += 1
            characters += len(line) - 1
            if time.perf_counter() - start >= seconds:
                break
    _sync(dev)
    elapsed = time.perf_counter() - start
    mean_loss = sum(recent) / len(recent) if recent else math.nan
    return CharRun(elapsed, lines, characters, mean_loss, decoder)
