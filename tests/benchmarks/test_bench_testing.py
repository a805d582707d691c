"""Smoke test of ``benchmarks/bench_testing.py``: its ``before`` (one backward pass per row) is the matrix the
checks return now, and the table renders."""

import bench_testing
import torch


def test_before_and_after_agree_and_the_table_renders():
    torch.manual_seed(0)
    model, x = bench_testing.Tagger(), torch.randn(5, 4, 32)
    for batch in (True, False):
        before = bench_testing.before(model, x, batch)
        after = bench_testing._after(model, x, batch)
        assert torch.equal(before == 0, after == 0)
        torch.testing.assert_close(after.as_subclass(torch.Tensor), before, rtol=1e-5, atol=0)
    whole = bench_testing._whole(model, x)
    torch.testing.assert_close(whole.as_subclass(torch.Tensor), before, rtol=1e-5, atol=0)
    row = {
        "check": "check_causal",
        "batch": 4,
        "time": 200,
        "before_s": 3.7,
        "whole_s": 0.74,
        "after_s": 0.37,
        "speedup": 10.0,
    }
    batch = {**row, "check": "check_batch_independence", "whole_s": None}
    table = bench_testing.markdown({"rows": [row, {**row, "before_s": None, "speedup": None}, batch]})
    assert (
        "| `check_causal` | 4 | 200 | 3.700 | 0.740 | 0.370 | 10.0x | 0.50 |" in table
        and "(skipped)" in table
    )
    assert "| `check_batch_independence` | 4 | 200 | 3.700 |  | 0.370 | 10.0x |  |" in table
