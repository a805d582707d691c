"""Smoke test of the lecture 14 benchmark: the course's recipes keep their defining traits and score."""

import _course14
import bench_seq2seq
import torch


def test_course_recipes_keep_the_course_traits() -> None:
    one, two = _course14.CourseSeq2Seq("14_1"), _course14.CourseSeq2Seq("14_2")
    assert one.encoder.gru.hidden_size == 100 and two.encoder.gru.hidden_size == 128
    assert isinstance(two.decoder, _course14.AttnDecoder) and two.decoder.out.in_features == 256
    assert _course14.str2tensor("ab", eos=True).tolist() == [97, 98, _course14.EOS]
    loss = one.train_step("romeo:", "ROMEO:")
    assert loss > 0
    # the course's translate never stops at EOS: it writes predict_len characters
    assert len(one.translate("romeo:", greedy=False, predict_len=12)) == 12
    assert len(one.translate("romeo:", greedy=True, predict_len=12)) <= 12


def test_bench_runs_and_scores_both_recipes(tmp_path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "course.json"
    assert bench_seq2seq.main(["--seconds", "0.3", "--lines", "3", "--json", str(out)]) == 0
    result = bench_seq2seq.bench(0.2, 2)
    for course in ("14_1", "14_2"):
        row = result["courses"][course]
        assert row["lines"] >= 1 and row["course_translate"]["cer"] > 0
        assert 0 <= row["greedy_eos"]["exact"] <= 1
