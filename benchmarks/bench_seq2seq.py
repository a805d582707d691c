"""Lecture 14: the course's recipes (``_course14``) for the CPU seconds the lessons take, scored like the lessons.

For each of 14_1 and 14_2, the course's model trains one line per step for ``--seconds`` CPU seconds of this
one-thread process (default: the lessons' 120-second time goal), then decodes the lessons' evaluation lines
(the first ``--lines`` of them) twice: with the course's own ``translate`` (sampling, never stopping at EOS)
and greedily, stopping at EOS. Both are scored by the lessons' character error rate. The lessons' own figures
come from ``sweep_seq2seq.py``.

    python benchmarks/bench_seq2seq.py [--seconds 120] [--lines 100] [--json out.json]
"""

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import _course14
import torch

from rnnshapes.data._pairs import character_error_rate
from rnnshapes.lessons._seq2seq_task import eval_subset, lesson_pairs

OUT = Path(__file__).resolve().parent / "results" / "seq2seq" / "course.json"


def bench(seconds: float, lines: int, seed: int = 0) -> dict[str, Any]:
    torch.set_num_threads(1)
    train, held_out = lesson_pairs()
    evaluated = eval_subset(held_out, 8)[:lines]
    targets = [p.target for p in evaluated]
    out: dict[str, Any] = {"seconds_budget": seconds, "eval_lines": len(evaluated), "courses": {}}
    for course in ("14_1", "14_2"):
        model = _course14.CourseSeq2Seq(course, seed)
        run = model.train_for([(p.source, p.target) for p in train], seconds)
        start = time.process_time()
        sampled = [model.translate(p.source, greedy=False) for p in evaluated]
        translate_seconds = time.process_time() - start
        greedy = [model.translate(p.source, greedy=True) for p in evaluated]
        cer_sampled, exact_sampled = character_error_rate(sampled, targets)
        cer_greedy, exact_greedy = character_error_rate(greedy, targets)
        out["courses"][course] = {
            **asdict(run),
            "ms_per_line": round(1000 * run.seconds / max(run.lines, 1), 2),
            "course_translate": {"cer": round(cer_sampled, 4), "exact": round(exact_sampled, 4)},
            "course_translate_ms_per_line": round(1000 * translate_seconds / len(evaluated), 2),
            "greedy_eos": {"cer": round(cer_greedy, 4), "exact": round(exact_greedy, 4)},
            "example": {"source": evaluated[-1].source, "target": targets[-1], "greedy": greedy[-1]},
        }
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="CPU seconds of training per recipe")
    parser.add_argument("--lines", type=int, default=100, help="evaluation lines to decode")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = bench(args.seconds, args.lines)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
