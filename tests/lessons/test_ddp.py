"""DistributedDataParallel: 2 CPU processes (gloo on 127.0.0.1) end with identical weights, target met."""

import json

from rnnshapes import lessons
from rnnshapes.cli.distributed import launch


def test_two_ranks_reach_the_target_with_identical_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSHAPES_CHECKPOINTS", str(tmp_path / "checkpoints"))
    # names-basic (lesson 13_1): the same names task, NamesClassifier, DDP worker and code path as `names`
    # (13_2), which differs only in its recipe and takes several times longer to its target
    assert launch(2, lesson="names-basic", out=tmp_path / "ranks") == 0
    ranks = [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert {r["world"] for r in ranks} == {2} and {r["backend"] for r in ranks} == {"gloo"}
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert all(r["reached"] for r in ranks)
    assert ranks[0]["steps"] == ranks[1]["steps"]
    assert all(r["shape_checks"] for r in ranks), "shape checks must stay on inside DDP"
    assert ranks[0]["value"] >= lessons.get("names-basic").target.goal
    saved = list((tmp_path / "checkpoints").glob("names-basic-*.pt"))
    assert len(saved) == 1, "rank 0 alone writes the checkpoint"
