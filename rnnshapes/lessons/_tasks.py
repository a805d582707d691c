"""How each trainable lesson builds its task: model, batches (on the device once), loss and evaluation."""

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import (
    COUNTRIES,
    CharVocab,
    collate_names,
    hihell_data,
    load_names,
    load_shakespeare,
    split_train_val,
)
from ..models import CharRNN, HelloEmbedding, HelloRNN, NamesClassifier

if TYPE_CHECKING:
    from ._registry import Lesson, Task


def _task(*args: Any) -> "Task":
    from ._registry import Task

    return Task(*args)


# --- hello (12_2, 12_3, 12_4) ----------------------------------------------------------------------------


def hello_task(lesson: "Lesson", device: torch.device, generator: torch.Generator) -> "Task":
    """hihell -> ihello. 12_2 feeds one step at a time; 12_3 the whole sequence; 12_4 indices + embedding."""
    data = hihell_data()
    model = lesson.build_model().to(device)
    one_hot = isinstance(model, HelloRNN)
    x = (data.inputs_one_hot if one_hot else data.inputs).to(device)  # (batch=1, time=6[, input=5])
    y = data.targets.to(device)  # (batch=1, time=6)
    step_by_step = lesson.course == "12_2"

    def logits_of(m: nn.Module) -> Tensor:
        if step_by_step:
            assert isinstance(m, HelloRNN)
            hidden, steps = None, []
            for t in range(x.shape[1]):  # carry the hidden state ourselves, one time step per call
                logits_t, hidden = m.step(x[:, t], hidden)  # (batch, classes)
                steps.append(logits_t)
            return torch.stack(steps, dim=1)  # (batch, time, classes)
        return m(x)[0]  # (batch, time, classes)

    def loss_fn(m: nn.Module, batch: Any) -> Tensor:
        logits = logits_of(m)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (batch*time, classes) vs (batch*time,)

    def evaluate(m: nn.Module) -> dict[str, Any]:
        predicted = logits_of(m).argmax(-1)[0]  # (time,)
        return {"text": "".join(data.idx2char[i] for i in predicted.tolist())}

    return _task(model, itertools.repeat(None), loss_fn, evaluate)


# --- names (13_1, 13_2) ----------------------------------------------------------------------------------


def _encoded(split: str, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    batch = collate_names(load_names(split), batch_first=True)  # type: ignore[arg-type]
    return batch.inputs.to(device), batch.lengths, batch.labels.to(device)


def names_task(
    lesson: "Lesson", device: torch.device, generator: torch.Generator, shard: tuple[int, int] | None = None
) -> "Task":
    """Padded names -> country. Data moves to the device once; each batch is an index into it.

    ``shard=(rank, world)`` (DistributedDataParallel): each process reads its own part of every epoch
    through a ``DistributedSampler`` with ``batch_size // world`` names per step, so the global batch and
    the number of steps per epoch stay those of the recipe.

    Recipe options (``Recipe.extra``):

    - ``bucket``: batches of names of (nearly) one length. Each epoch drops a random remainder, sorts the
      rest by length (the random order kept within a length), cuts it into batches and shuffles the
      batches. A packed recurrent layer then runs as many time steps as the batch's names are long,
      instead of as long as its longest of ``batch_size`` random names (~14 of 19 for 128 names, for a
      mean of 7.2), and on the CPU the backward pass of each time step costs in proportion to the whole
      packed batch. Under DDP every rank builds the same global batches and reads every ``world``-th name.
    - ``screen``: ``(names, margin)``: during training, evaluate first on a fixed, evenly spread subset of
      ``names`` test names, and on the whole test set only when the subset's accuracy is within ``margin``
      of the target. The accuracy that meets the target is always the whole test set's; a screened point
      reports ``subset_accuracy`` only. ``Task.evaluate`` (evaluating a trained model) is never screened.
    """
    assert lesson.recipe is not None
    x, lengths, y = _encoded("train", device)  # (names, longest), (names,) on CPU, (names,)
    x_test, len_test, y_test = _encoded("test", device)
    model = lesson.build_model().to(device)
    batch_size = lesson.recipe.batch_size
    extra = lesson.recipe.extra
    eval_chunk = extra.get("eval_chunk", 2048)
    bucket = bool(extra.get("bucket", False))
    sampler: Any = None
    rank, world = shard if shard is not None else (0, 1)
    if shard is not None:
        from torch.utils.data import DistributedSampler

        batch_size //= world
        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))  # the same on every rank
        indices: Any = range(len(lengths))  # a Sequence is all DistributedSampler reads (len)
        sampler = DistributedSampler(indices, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        if bucket:
            generator = torch.Generator().manual_seed(seed)  # every rank draws the same global batches

    def epoch_order(epoch: int) -> Tensor:
        if sampler is None:
            return torch.randperm(len(lengths), generator=generator)
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler))

    def batch_indices() -> Iterator[Tensor]:
        if not bucket:
            for epoch in itertools.count():
                order = epoch_order(epoch)
                for start in range(0, len(order) - batch_size + 1, batch_size):
                    yield order[start : start + batch_size]
        global_batch = batch_size * world
        while True:
            kept = torch.randperm(len(lengths), generator=generator)[
                : len(lengths) // global_batch * global_batch
            ]
            by_length = kept[torch.argsort(lengths[kept], stable=True)]  # (kept,): random within a length
            rows = by_length.view(-1, global_batch)  # (batches, global_batch)
            for row in rows[torch.randperm(len(rows), generator=generator)]:
                yield row[rank::world]  # (batch_size,)

    def batches() -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for idx in batch_indices():
            longest = int(lengths[idx].max())  # lengths live on the CPU: no device sync
            idx_dev = idx.to(device)
            yield x[idx_dev, :longest], lengths[idx], y[idx_dev]

    def loss_fn(m: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        inputs, lens, labels = batch
        return F.cross_entropy(m(inputs, lens), labels)

    def correct(m: nn.Module, inputs: Tensor, lens: Tensor, labels: Tensor) -> Tensor:
        total = torch.zeros((), device=device)
        for start in range(0, len(lens), eval_chunk):
            chunk = lens[start : start + eval_chunk]
            logits = m(inputs[start : start + eval_chunk, : int(chunk.max())], chunk)  # (chunk, classes)
            total += (logits.argmax(-1) == labels[start : start + eval_chunk]).sum()
        return total

    def evaluate(m: nn.Module) -> dict[str, Any]:
        return {"accuracy": round(float(correct(m, x_test, len_test, y_test)) / len(len_test), 4)}

    screened = None
    if "screen" in extra:
        subset_names, margin = extra["screen"]
        pick = torch.linspace(0, len(len_test) - 1, subset_names).round().long()  # evenly spread: every class
        sub_x, sub_len, sub_y = x_test[pick.to(device)], len_test[pick], y_test[pick.to(device)]
        goal = float(lesson.target.goal)  # type: ignore[arg-type]

        def screened(m: nn.Module) -> dict[str, Any]:
            subset = float(correct(m, sub_x, sub_len, sub_y)) / len(sub_len)
            if subset < goal - margin:
                return {"subset_accuracy": round(subset, 4)}
            return {**evaluate(m), "subset_accuracy": round(subset, 4)}

    return _task(model, batches(), loss_fn, evaluate, screened)


def names_model_config(**changes: Any) -> dict[str, Any]:
    config = {"vocab": 128, "classes": len(COUNTRIES), "batch_first": True}
    config.update(changes)
    return config


# --- char-RNN (13_3) -------------------------------------------------------------------------------------


def char_task(lesson: "Lesson", device: torch.device, generator: torch.Generator) -> "Task":
    """Teacher forcing over chunks of the lesson's Shakespeare (lower-cased, no spaces).

    With ``carry_hidden`` (the lesson's recipe) the text is cut into ``batch_size`` parallel streams read
    chunk after chunk, and the hidden state is carried from one chunk to the next (detached: truncated
    backpropagation through time), as ``generate`` and the evaluation carry it. Without it, each step reads
    random windows, each from a zero state.
    """
    assert lesson.recipe is not None
    text = load_shakespeare(lower=True, remove_spaces=True)
    vocab = CharVocab.from_text(text)
    assert "".join(vocab.itos) == lesson.recipe.model["alphabet"], "the recipe's alphabet must match the text"
    train_ids, val_ids = (t.to(device) for t in split_train_val(vocab.encode(text), 0.1))
    model = lesson.build_model().to(device)
    n, length = lesson.recipe.batch_size, lesson.recipe.extra["length"]
    offsets = torch.arange(length + 1, device=device)  # (time+1,)
    # validation: the whole held-out text read as `streams` parallel streams, the hidden state carried along
    streams, chunk = lesson.recipe.extra.get("val_streams", 64), 256
    steps = (len(val_ids) - 1) // streams
    val_x = val_ids[: steps * streams].view(streams, steps)  # (batch=streams, time=steps)
    val_y = val_ids[1 : steps * streams + 1].view(streams, steps)  # one step ahead

    carry = lesson.recipe.extra.get("carry_hidden", False)
    state: dict[str, Tensor | None] = {"hidden": None}

    def random_windows() -> Iterator[Tensor]:
        while True:
            starts = torch.randint(0, len(train_ids) - length - 1, (n,), generator=generator).to(device)
            yield train_ids[starts[:, None] + offsets]  # (batch, time+1)

    def contiguous_chunks() -> Iterator[Tensor]:
        # the text cut into n parallel streams, read chunk after chunk; the hidden state is carried over
        while True:
            shift = int(torch.randint(0, length, (), generator=generator))  # a new cut every pass
            per_stream = (len(train_ids) - shift) // n
            ids = train_ids[shift : shift + n * per_stream].view(n, per_stream)  # (batch, per_stream)
            state["hidden"] = None  # a new pass starts from zeros
            for start in range(0, per_stream - length, length):
                yield ids[:, start + offsets]  # (batch, time+1): the next chunk of every stream

    def loss_fn(m: nn.Module, windows: Tensor) -> Tensor:
        inputs, targets = windows[:, :-1], windows[:, 1:]  # (batch, time) each, targets one step ahead
        logits, hidden = m(inputs, state["hidden"] if carry else None)  # (batch, time, vocab)
        if carry:
            state["hidden"] = hidden.detach()  # truncated backpropagation through time: keep the state
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (batch*time, vocab)

    batches = contiguous_chunks if carry else random_windows

    def evaluate(m: nn.Module) -> dict[str, Any]:
        total, hidden = torch.zeros((), device=device), None
        for start in range(0, steps, chunk):
            logits, hidden = m(val_x[:, start : start + chunk], hidden)  # (streams, chunk, vocab)
            total += F.cross_entropy(
                logits.flatten(0, 1), val_y[:, start : start + chunk].flatten(), reduction="sum"
            )
        return {"loss": round(float(total) / (steps * streams), 4)}  # nats per character

    return _task(model, batches(), loss_fn, evaluate)


def shakespeare_alphabet() -> str:
    """The sorted symbols of the lesson's text (lower-cased, spaces removed), as CharRNN's alphabet."""
    return "".join(CharVocab.from_text(load_shakespeare(lower=True, remove_spaces=True)).itos)


__all__ = ["CharRNN", "HelloEmbedding", "NamesClassifier", "char_task", "hello_task", "names_task"]
