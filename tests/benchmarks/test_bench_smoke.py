"""Smoke test of ``benchmarks/run.py``: every section once on tiny budgets (``--quick``), in-process.

The figures of a quick run mean nothing; what is checked is that each section runs, that the results document
has its structure and is JSON, that the derived numbers (ratios, throughput) agree with the raw ones, that the
course re-implementations keep the course's defining traits, and that ``render_markdown`` turns the document
into well-formed tables.
"""

import copy
import datetime
import json
import re

import _course
import bench_lessons
import pytest
import run as bench_run
import torch

from rnnshapes import lessons

SEEDS = 2


@pytest.fixture(scope="module")
def results() -> dict:
    torch.set_num_threads(1)
    cfg = bench_lessons.Config.quick_run()
    assert cfg.seeds == SEEDS
    document = bench_run.run_all(cfg, log=lambda *_: None)
    return json.loads(json.dumps(document))  # what a reader of the file gets


def test_document_holds_every_section_the_machine_and_the_date(results: dict) -> None:
    assert results["schema"] == bench_run.SCHEMA
    assert set(results["sections"]) == set(bench_run.SECTIONS) == {"checks", "hello", "names", "char"}
    m = results["machine"]
    assert m["cpu"] and isinstance(m["cpu"], str)
    assert isinstance(m["cores"], int) and m["cores"] >= 1
    assert m["torch"] == torch.__version__
    assert m["device"] == "cpu" and m["device_name"] == m["cpu"]
    assert datetime.datetime.fromisoformat(m["date"]).tzinfo is not None
    assert len(m["load_average"]) == 3
    assert results["config"]["quick"] is True
    assert results["wall_seconds"] > 0
    assert bench_run.machine_tag(m).startswith("cpu-")
    assert re.fullmatch(r"[a-z0-9-]+", bench_run.machine_tag(m))


def test_lesson_table_has_the_six_trained_lessons_in_course_order(results: dict) -> None:
    rows = results["lessons"]
    assert [r["name"] for r in rows] == [
        "hello-step",
        "hello-sequence",
        "hello-embedding",
        "names-basic",
        "names",
        "char-rnn",
    ]
    assert [r["course"] for r in rows] == ["12_2", "12_3", "12_4", "13_1", "13_2", "13_3"]
    for r in rows:
        assert r["steps"] >= 1 and r["seconds"] > 0 and r["device"] == "cpu" and r["threads"] == 1
        assert "curve" not in r


def test_hello_sweep_counts_every_seed_and_seed0_is_reproducible(results: dict) -> None:
    hello = results["sections"]["hello"]
    assert hello["seeds"] == SEEDS and hello["course_epochs"] == 100
    for name, entry in hello["lessons"].items():
        ours, course = entry["ours"], entry["course"]
        assert ours["runs"] == course["runs"] == SEEDS
        assert ours["reached"] + len(ours["missed_seeds"]) == SEEDS
        assert course["reached"] + len(course["missed_seeds"]) == SEEDS
        assert course["reached"] <= SEEDS and course["ever"] <= SEEDS
        if ours["reached"]:
            assert 1 <= ours["median_steps"] <= ours["max_steps"] <= ours["budget_steps"]
        assert entry["ratios"]["time_per_seed"] == round(course["median_ms"] / ours["median_ms"], 2)
        again = lessons.get(name).run(seed=0, threads=1, progress=False)
        assert (again.steps, again.reached) == (entry["seed0"]["steps"], entry["seed0"]["reached"])


def _ratio_bounds(a: float, b: float, half: float) -> tuple[float, float]:
    """The range of a / b when a and b are each known only to within +-half (rounded values)."""
    low = max(a - half, 0.0) / (b + half)
    high = (a + half) / (b - half) if b > half else float("inf")
    return low, high


def test_ratio_bounds_cover_the_rounding() -> None:
    assert _ratio_bounds(0.02, 0.02, half=0.005) == pytest.approx((0.6, 25 / 15))
    assert _ratio_bounds(1.0, 0.0, half=0.005)[1] == float("inf")


def test_names_thresholds_agree_with_the_course_curve(results: dict) -> None:
    names = results["sections"]["names"]
    course = names["course"]
    assert len(course["epochs"]) == 1 and course["max_batches"] == 2
    accuracies = [e["accuracy"] for e in course["epochs"]]
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert course["best_accuracy"] == round(max(accuracies), 4)
    goals = [r["accuracy"] for r in names["thresholds"]]
    assert goals == sorted(goals) and 0.7 in goals and 0.8 in goals and course["best_accuracy"] in goals
    best_row = next(r for r in names["thresholds"] if r["accuracy"] == course["best_accuracy"])
    assert best_row["course_seconds"] == course["seconds_to_best"] is not None
    for row in names["thresholds"]:
        for lesson in ("names-basic", "names"):
            mine, theirs, speedup = row[f"{lesson}_seconds"], row["course_seconds"], row[f"{lesson}_speedup"]
            if mine is None or theirs is None:
                assert speedup is None
                continue
            # The speedup comes from the exact times, the table shows them rounded to 0.01 s: in the smoke
            # run they are hundredths of a second, so the check allows exactly that rounding and no more.
            assert speedup is not None
            assert _ratio_bounds(theirs, mine, half=0.005)[0] - 0.005 <= speedup
            assert speedup <= _ratio_bounds(theirs, mine, half=0.005)[1] + 0.005
    for lesson in ("names-basic", "names"):
        assert names["ours"][lesson]["curve"], "every run evaluates at least at its last step"
        assert names["ratios"][f"{lesson}_time_to_course_best"] == best_row[f"{lesson}_speedup"]


def test_char_throughput_and_ratios_follow_from_the_raw_counts(results: dict) -> None:
    char = results["sections"]["char"]
    course, ours, held = char["course"], char["ours"], char["held_out"]
    recipe = lessons.get("char-rnn").recipe
    assert recipe is not None
    assert ours["characters"] == recipe.batch_size * recipe.extra["length"] * ours["steps"]
    # seconds are stored to 0.001 s: allow that rounding even when the smoke run is short
    low, high = _ratio_bounds(ours["characters"], ours["seconds"], half=0.0005)
    assert low * 0.999 <= ours["chars_per_second"] <= high * 1.001
    assert course["characters"] >= 1 and course["lines"] >= 1
    assert course["ms_per_char"] == pytest.approx(1000 * course["seconds"] / course["characters"], rel=0.01)
    assert char["ratios"]["throughput"] == pytest.approx(
        ours["chars_per_second"] / course["chars_per_second"], rel=0.01
    )
    # a model that knows the character frequencies beats uniform guessing over the 38 symbols
    assert 0 < held["unigram_loss"] < held["uniform_loss"]
    assert held["uniform_loss"] == pytest.approx(float(torch.tensor(38.0).log()), abs=1e-4)
    assert held["symbols"] == 38 and held["characters"] > 90_000
    assert course["eval_loss"] > 0


def test_checks_section_is_bench_checks_report(results: dict) -> None:
    checks = results["sections"]["checks"]
    assert checks["rounds"] == 1 and checks["quick"] is True
    assert len(checks["cases"]) == 4  # quick: no names step
    for row in checks["cases"].values():
        assert row["shapecheck_ratio"] == pytest.approx(row["shapecheck"] / row["unchecked"], rel=0.01)
        # one round: the median of the same-round ratios is that round's ratio, of times not rounded yet
        assert row["shapecheck_ratio_paired"] == pytest.approx(row["shapecheck_ratio"], rel=0.01)


def _tables(markdown: str) -> list[list[str]]:
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_render_markdown_makes_one_well_formed_table_per_section(results: dict) -> None:
    md = bench_run.render_markdown(results)
    for heading in (
        "### The lessons (ours)",
        '### "hihell" -> "ihello"',
        "### Names (13_2)",
        "### Char-RNN (13_3)",
    ):
        assert heading in md
    assert "### Cost of the shape checks" in md
    assert "### Cost of guard per layer call" in md
    assert "quick mode" in md and results["machine"]["cpu"] in md
    tables = _tables(md)
    assert len(tables) == 6
    for table in tables:
        columns = table[0].count("|")
        assert all(row.count("|") == columns for row in table), table
        assert set(table[1].replace("|", "").split()) == {"---"}
    lessons_table = tables[0]
    assert len(lessons_table) == 2 + 6
    assert "`char-rnn` | 13_3" in md


def test_render_markdown_shows_only_the_sections_it_has(results: dict) -> None:
    partial = {**results, "sections": {"hello": results["sections"]["hello"]}}
    partial["lessons"] = bench_lessons.lesson_table(partial["sections"])
    md = bench_run.render_markdown(partial)
    assert '### "hihell" -> "ihello"' in md
    assert "Names (13_2)" not in md and "Char-RNN" not in md and "shape checks" not in md
    assert len(_tables(md)) == 2


def test_ratio_is_marked_a_lower_bound_when_ours_met_the_goal_at_its_first_evaluation(results: dict) -> None:
    char = copy.deepcopy(results["sections"]["char"])
    course_loss = char["course"]["eval_loss"]
    char["ratios"]["time_to_course_loss"] = 2.5
    document = {**results, "sections": {"char": char}, "lessons": []}
    for first_loss, marked in [(course_loss - 0.5, True), (course_loss + 0.5, False)]:
        char["ours"]["curve"] = [
            {"step": 50, "seconds": 1.0, "train_loss": 3.0, "loss": first_loss},
            {"step": 100, "seconds": 2.0, "train_loss": 2.0, "loss": course_loss - 1.0},
        ]
        row = next(
            line for line in bench_run.render_markdown(document).splitlines() if "time to the course" in line
        )
        assert row.rstrip(" |").endswith("≥2.5x" if marked else "| 2.5x"), row


def test_command_line_writes_the_json_and_prints_its_tables(tmp_path, capsys) -> None:
    out = tmp_path / "results" / "smoke.json"
    bench_run.main(["--quick", "--only", "hello", "--seeds", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert set(saved["sections"]) == {"hello"} and saved["sections"]["hello"]["seeds"] == 1
    assert [p.name for p in out.parent.iterdir()] == ["smoke.json"]  # no temporary file left behind
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and '### "hihell" -> "ihello" over seeds 0-0' in printed
    bench_run.main(["--markdown", str(out)])
    assert capsys.readouterr().out == bench_run.render_markdown(saved)


def test_unknown_section_is_refused_with_the_known_ones(capsys) -> None:
    with pytest.raises(SystemExit):
        bench_run.main(["--quick", "--only", "hello,bogus"])
    assert "unknown section(s) ['bogus']; choose from checks, hello, names, char" in capsys.readouterr().err
    with pytest.raises(
        ValueError, match=r"unknown section\(s\) \['checks'\]; choose from hello, names, char"
    ):
        bench_lessons.parse_only("checks")


def test_course_hello_models_keep_the_course_traits() -> None:
    x = torch.eye(5)[_course.X_DATA]  # (time=6, input=5) one-hot "hihell"
    torch.manual_seed(3)
    step = _course.Hello12_2()
    torch.manual_seed(3)
    seq = _course.Hello12_3()
    hidden, outs = torch.zeros(1, 1, 5), []
    for x_t in x:
        hidden, out = step(hidden, x_t)
        outs.append(out)
    whole = seq(x.unsqueeze(0))  # (time, classes)
    # one step per call == the whole sequence (same seed, same weights); the logits are tanh outputs
    torch.testing.assert_close(torch.cat(outs), whole)
    assert whole.abs().max() <= 1.0
    emb = _course.Hello12_4()
    assert emb(torch.tensor([_course.X_DATA])).shape == (6, 5)
    with pytest.raises(ValueError, match="no hello recipe '12_9'; use 12_2, 12_3 or 12_4"):
        _course.hello_course("12_9", 0)


def test_course_names_classifier_reads_only_the_backward_direction() -> None:
    torch.manual_seed(0)
    model = _course.RNNClassifier()
    inputs, lengths, _ = _course.make_variables(["Ab", "Abcd"], [], [], torch.device("cpu"))
    assert lengths.tolist() == [4, 2]  # sorted longest first, as pack_padded_sequence wanted then
    before = model(inputs, lengths)
    with torch.no_grad():  # change the last layer's FORWARD direction: the course's head never sees it
        for name, p in model.gru.named_parameters():
            if name.endswith("_l1"):
                p.add_(1.0)
    torch.testing.assert_close(model(inputs, lengths), before)


def test_course_char_model_is_scored_with_its_own_128_way_loss() -> None:
    vocab, _, val_ids = _course.held_out_split()
    torch.manual_seed(0)
    decoder = _course.CharRNN13_3()
    adapter = _course.CourseCharAsLesson(decoder, "".join(vocab.itos))
    text = vocab.decode(val_ids[:41])
    with torch.no_grad():
        # the course's way: one character per call from a zero hidden state, 128 ASCII classes
        hidden, losses = decoder.init_hidden(torch.device("cpu")), []
        for c, nxt in zip(text[:-1], text[1:], strict=True):
            output, hidden = decoder(torch.tensor([ord(c)]), hidden)
            losses.append(torch.nn.functional.cross_entropy(output, torch.tensor([ord(nxt)])))
        course = torch.stack(losses).mean()
        # the lesson's way: batch first, lesson indices, two chunks with the hidden state carried
        x, y = val_ids[None, :40], val_ids[None, 1:41]
        first, h = adapter(x[:, :25])
        second, _ = adapter(x[:, 25:], h)
        logits = torch.cat([first, second], dim=1)  # (batch=1, time=40, symbols + "anything else")
    assert logits.shape == (1, 40, len(vocab) + 1)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(1, 40))  # no renormalisation over 38 symbols
    torch.testing.assert_close(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()), course)


def test_frequency_model_predicts_the_training_text_frequencies() -> None:
    vocab, train_ids, _ = _course.held_out_split()
    model = _course.FrequencyModel(train_ids, len(vocab))
    logits, hidden = model(torch.zeros(2, 3, dtype=torch.long), "carried")
    assert logits.shape == (2, 3, len(vocab)) and hidden == "carried"
    counts = torch.bincount(train_ids, minlength=len(vocab)).float()
    torch.testing.assert_close(logits[1, 2].softmax(-1), counts / counts.sum())
