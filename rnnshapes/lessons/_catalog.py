"""Every lesson in one table: model, recipe, target and budget, in course order."""

from ..models import CharRNN, HelloEmbedding, HelloRNN, NamesClassifier, Seq2Seq, Seq2SeqAttention
from ..train import Budget, Target
from ._registry import Lesson, Recipe
from ._seq2seq_task import seq2seq_task
from ._shape_lessons import cell_basics_checks, pack_pad_checks
from ._tasks import char_task, hello_task, names_model_config, names_task

SHAKESPEARE_ALPHABET = "\n!$&',-.3:;?abcdefghijklmnopqrstuvwxyz"
"""The 38 symbols of the lesson's Shakespeare (lower-cased, spaces removed); checked against the text."""

ALL_CHECKS = Target("checks", "all passed", "equal")
IHELLO = Target("text", "ihello", "equal")

# measured over seeds 0-99: one-hot H=16 solves every seed in <= 6 steps, embedding E=8 H=16 in <= 4
_HELLO = Recipe(model={"input": 5, "hidden": 16, "classes": 5}, lr=0.1)
_HELLO_EMBEDDING = Recipe(model={"vocab": 5, "embed": 8, "hidden": 16, "classes": 5}, lr=0.1)

# lessons 14_1 and 14_2 share data, recipe and budget, and differ in the model: 1,000 steps of 32 lines,
# ~90 CPU s on this project's CPU with one thread (benchmarks/sweep_seq2seq.py). At seed 0 it beat 600 steps
# of 64 lines in the same time: CER 0.085 against 0.13 with attention, 0.83 against 1.02 without
_SEQ2SEQ = Recipe(
    model={"embed": 64, "hidden": 128, "layers": 1, "bidirectional": True},
    lr=3e-3,
    batch_size=32,
    schedule="onecycle",
    clip=1.0,
    extra={"eval_every_line": 8},
)

LESSONS: dict[str, Lesson] = {
    lesson.name: lesson
    for lesson in [
        Lesson(
            "cell-basics",
            "12_1",
            "RNN, GRU and LSTM cell basics",
            "what goes into and comes out of a recurrent layer: batch_first moves the input, never the hidden state",
            None,
            None,
            ALL_CHECKS,
            None,
            run_checks=cell_basics_checks,
        ),
        Lesson(
            "hello-step",
            "12_2",
            "hihell -> ihello, one step at a time",
            "an RNN carries a hidden state from step to step; the caller can carry it between calls",
            HelloRNN,
            _HELLO,
            IHELLO,
            Budget(max_steps=50),
            build_task=hello_task,
        ),
        Lesson(
            "hello-sequence",
            "12_3",
            "hihell -> ihello, the whole sequence at once",
            "the same RNN over the whole sequence in one call gives the same outputs as step by step",
            HelloRNN,
            _HELLO,
            IHELLO,
            Budget(max_steps=50),
            build_task=hello_task,
        ),
        Lesson(
            "hello-embedding",
            "12_4",
            "hihell -> ihello with an embedding",
            "an embedding turns symbol indices into learned vectors, replacing one-hot input",
            HelloEmbedding,
            _HELLO_EMBEDDING,
            IHELLO,
            Budget(max_steps=50),
            build_task=hello_task,
        ),
        Lesson(
            "names-basic",
            "13_1",
            "a name's country: one GRU layer, one direction",
            "classify a variable-length sequence from the RNN's last hidden state, over a packed batch",
            NamesClassifier,
            Recipe(
                model=names_model_config(cell="gru", embed=64, hidden=128, layers=1, bidirectional=False),
                lr=3e-3,
                batch_size=64,
                schedule="onecycle",
            ),
            Target("accuracy", 0.80),
            Budget(max_steps=1254, max_seconds=600, eval_every=105, eval_from=420),
            build_task=names_task,
        ),
        Lesson(
            "names",
            "13_2",
            "a name's country: a bidirectional GRU over packed names",
            "pack padded sequences, read both directions of the last layer, and classify",
            NamesClassifier,
            # benchmarks/bench_names_frontier.py: hidden 192 (0.4-0.65x the step of hidden 256) over batches of
            # one length meets 85% at steps 405-423 for seeds 0-3 (hidden 256: 369-405; 160 and 128 miss on
            # some seeds); a 1,000-name screen every 9 steps decides when the 6,700 test names are evaluated
            Recipe(
                model=names_model_config(cell="gru", embed=64, hidden=192, layers=1, bidirectional=True),
                lr=5e-3,
                batch_size=128,
                schedule="onecycle",
                extra={"bucket": True, "screen": (1000, 0.015)},
            ),
            Target("accuracy", 0.85),
            Budget(max_steps=525, max_seconds=600, eval_every=9, eval_from=387),
            build_task=names_task,
            time_goals={"cpu": 15.0, "cuda": 5.0},
        ),
        Lesson(
            "char-rnn",
            "13_3",
            "a character-level language model of Shakespeare",
            "teacher forcing over chunks, the hidden state carried from chunk to chunk and through generation",
            CharRNN,
            Recipe(
                model={"alphabet": SHAKESPEARE_ALPHABET, "embed": 32, "hidden": 256, "layers": 1},
                lr=1e-2,
                batch_size=32,
                schedule="onecycle",
                clip=1.0,
                extra={"length": 64, "pct_start": 0.15, "carry_hidden": True},
            ),
            Target("loss", 2.0, "min"),
            Budget(max_steps=600, max_seconds=600, eval_every=25, eval_from=300),
            build_task=char_task,
            time_goals={"cpu": 60.0},
        ),
        Lesson(
            "pack-pad",
            "13_4",
            "pack_padded_sequence and pad_packed_sequence",
            "packing lets an RNN skip the padding: each sequence ends at its own length",
            None,
            None,
            ALL_CHECKS,
            None,
            run_checks=pack_pad_checks,
        ),
        Lesson(
            "seq2seq",
            "14_1",
            "restore case and spaces: an encoder GRU, a decoder GRU",
            "sequence to sequence: the encoder's final state starts the decoder, trained with teacher forcing",
            Seq2Seq,
            _SEQ2SEQ,
            # sweep, seeds 0-3 (benchmarks/sweep_seq2seq.py, 2026-11-30): final CER 0.834-0.944 at step 1000
            # (81-84 CPU s), every seed at or below 0.99 from step 700 on (57-61 CPU s); an untrained model
            # scores 1.29-1.53, an empty output 1.0; goal = the worst final + 0.056. It has not learned the task
            # (copying the source scores 0.21): within the time goal it learns the start of each line
            Target("cer", 1.0, "min"),
            Budget(max_steps=1000, max_seconds=600, eval_every=100, eval_from=500),
            build_task=seq2seq_task,
            time_goals={"cpu": 120.0, "cuda": 10.0},
        ),
        Lesson(
            "seq2seq-attention",
            "14_2",
            "restore case and spaces: seq2seq with attention",
            "attention: every decoder step reads a masked, weighted sum of the encoder's outputs",
            Seq2SeqAttention,
            _SEQ2SEQ,
            # sweep, seeds 0-3 (2026-11-30): final CER 0.085-0.097 at step 1000 (98-103 CPU s), 0.088-0.097 at
            # step 900; every seed meets the goal by step 800 (71-79 CPU s); goal = the worst final + 0.023
            Target("cer", 0.12, "min"),
            Budget(max_steps=1000, max_seconds=600, eval_every=100, eval_from=500),
            build_task=seq2seq_task,
            time_goals={"cpu": 120.0, "cuda": 10.0},
        ),
    ]
}


def names() -> list[str]:
    """The lesson names, in course order."""
    return list(LESSONS)


def get(name: str) -> Lesson:
    """The lesson called ``name``; a KeyError lists the known names."""
    try:
        return LESSONS[name]
    except KeyError:
        raise KeyError(f"no lesson {name!r}; known lessons: {', '.join(LESSONS)}") from None
