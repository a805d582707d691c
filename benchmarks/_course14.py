"""The course's lecture 14 recipes (14_1_seq2seq.py, 14_2_seq2seq_att.py, seq2seq_models.py), re-implemented
for the benchmarks, beside the lessons ``seq2seq`` and ``seq2seq-attention``.

What the course does, kept: characters are ASCII codes (128 rows), ``SOS = chr(0)`` is the decoder's first
input and ``EOS = 1`` is appended to every target; batch size 1, the encoder over one line, the decoder one
character per call under teacher forcing, the per-character losses SUMMED, one Adam(1e-3) step per line.
14_1: ``EncoderRNN(128, 100)`` (Embedding(128, 100) -> GRU(100, 100)) and ``DecoderRNN(100, 128)``
(Embedding(128, 100) -> GRU(100, 100) -> Linear(100, 128)). 14_2: hidden size 128 and ``AttnDecoderRNN``, whose
scores ``h . (W m_s)`` are computed one source position at a time in a Python loop, softmaxed over the
source, and whose output layer reads ``[h; context]``. Its GRU's ``dropout=0.1`` does nothing with one layer.

What is changed, because it no longer runs or to measure it: ``loss.item()`` for ``loss.data[0]``; no
``Variable``; an explicit ``dim`` in the softmax (the course's guess of it is the same axis); the lines are
the lessons' training lines (the course trains on every line; here the held-out lines stay unseen), in a
shuffled order. Two decoders are measured: the course's own ``translate`` (sampling at temperature 0.9,
and, since ``top_i is EOS_token`` is never true, never stopping before 100 characters), and greedy decoding
that stops at EOS (the course's model given the benefit of the doubt). Both are scored by the lessons'
character error rate on the lessons' evaluation lines.
"""

import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SOS, EOS = 0, 1


def str2tensor(text: str, eos: bool = False) -> Tensor:
    codes = [ord(c) for c in text] + ([EOS] if eos else [])
    return torch.tensor(codes, dtype=torch.long)


class Encoder(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(128, hidden)
        self.gru = nn.GRU(hidden, hidden)

    def forward(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        embedded = self.embedding(codes).view(len(codes), 1, -1)  # (time, batch=1, hidden)
        return self.gru(embedded, torch.zeros(1, 1, self.gru.hidden_size))


class Decoder(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(128, hidden)
        self.gru = nn.GRU(hidden, hidden)
        self.out = nn.Linear(hidden, 128)

    def forward(self, code: Tensor, hidden: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        output, hidden = self.gru(self.embedding(code).view(1, 1, -1), hidden)
        return self.out(output[0]), hidden


class AttnDecoder(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.attn = nn.Linear(hidden, hidden)
        self.embedding = nn.Embedding(128, hidden)
        self.gru = nn.GRU(hidden, hidden)
        self.out = nn.Linear(2 * hidden, 128)

    def forward(self, code: Tensor, hidden: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        rnn_output, hidden = self.gru(self.embedding(code).view(1, 1, -1), hidden)
        h = rnn_output.squeeze(0)  # (1, hidden)
        scores = torch.zeros(len(memory))
        for i in range(len(memory)):  # the course's loop over the source positions
            scores[i] = torch.dot(h.view(-1), self.attn(memory[i]).view(-1))
        weights = F.softmax(scores, dim=0).view(1, 1, -1)
        context = weights.bmm(memory.transpose(0, 1)).squeeze(1)  # (1, hidden)
        return self.out(torch.cat((h, context), 1)), hidden


@dataclass
class CourseRun:
    course: str
    lines: int
    characters: int
    seconds: float
    mean_loss_last_100: float


class CourseSeq2Seq:
    """One of the course's two recipes: ``course`` is ``"14_1"`` or ``"14_2"``."""

    def __init__(self, course: str, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.course = course
        hidden = 100 if course == "14_1" else 128
        self.encoder = Encoder(hidden)
        self.decoder: nn.Module = Decoder(hidden) if course == "14_1" else AttnDecoder(hidden)
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.optimizer = torch.optim.Adam(params, lr=1e-3)
        self.rng = random.Random(seed)

    def train_step(self, source: str, target: str) -> float:
        src, tgt = str2tensor(source), str2tensor(target, eos=True)
        memory, hidden = self.encoder(src)
        loss = torch.zeros(())
        for c in range(len(tgt)):
            token = tgt[c - 1] if c else torch.tensor([SOS])
            output, hidden = self.decoder(token, hidden, memory)
            loss = loss + F.cross_entropy(output, tgt[c].view(1))  # summed, as the course
        self.encoder.zero_grad()
        self.decoder.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item() / len(tgt)

    def train_for(self, pairs: list[tuple[str, str]], seconds: float) -> CourseRun:
        order = list(range(len(pairs)))
        self.rng.shuffle(order)
        losses: list[float] = []
        chars = 0
        start = time.process_time()
        i = 0
        while time.process_time() - start < seconds:
            source, target = pairs[order[i % len(order)]]
            losses.append(self.train_step(source, target))
            chars += len(target) + 1
            i += 1
        return CourseRun(
            self.course,
            i,
            chars,
            time.process_time() - start,
            sum(losses[-100:]) / max(len(losses[-100:]), 1),
        )

    @torch.no_grad()
    def translate(self, source: str, greedy: bool, predict_len: int = 100, temperature: float = 0.9) -> str:
        memory, hidden = self.encoder(str2tensor(source))
        out = ""
        token = torch.tensor([SOS])
        for _ in range(predict_len):
            output, hidden = self.decoder(token, hidden, memory)
            if greedy:
                top = int(output.argmax())
                if top == EOS:  # what the course meant by `top_i is EOS_token`
                    break
            else:
                top = int(torch.multinomial(output.view(-1).div(temperature).exp(), 1)[0])
                # the course's `if top_i is EOS_token: break` is never true: it goes on
            out += chr(top)
            token = torch.tensor([top])
        return out
