"""The rnnshapes pytest plugin, run in fresh directories through pytester (subprocesses: the plugin is loaded
from its entry point, as in a user's project). CUDA is hidden (CUDA_VISIBLE_DEVICES="") so the outcomes are
the same on a GPU machine."""

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnshapes.pytest_plugin import BUDGETS, DEVICES, Settings, make_record, seed_for

EXAMPLE = Path(__file__).parent / "examples" / "user_project"
VERSION = importlib.metadata.version("rnnshapes")
QUICK = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:jaxtyping", "-p", "no:xdist")
"""Arguments that spare an inner pytest the plugins it does not need (a second or two of start-up each)."""
NO_CUDA = "CUDA not available: torch.cuda.is_available() is False"


@pytest.fixture(autouse=True)
def _hide_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


def _text(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def _failure_sections(text: str) -> dict[str, str]:
    """``{test name: its failure report}`` from pytest's FAILURES section."""
    parts = re.split(r"^_{3,} (\S+) _{3,}$", text, flags=re.M)
    return {name: body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def _user_files(path: Path) -> set[str]:
    """What is in a pytester directory, less pytester's own stdout/stderr captures and basetemp folders."""
    return {
        p.name
        for p in path.iterdir()
        if p.name not in ("stdout", "stderr") and not p.name.startswith("runpytest-")
    }


def test_importing_the_plugin_imports_neither_torch_nor_jaxtyping_and_writes_nothing(tmp_path: Path) -> None:
    code = "import sys, rnnshapes.pytest_plugin; print(sorted(m for m in ('torch', 'jaxtyping') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist-2"])
def test_a_users_models_pass_and_fail_with_the_fault_named(
    pytester: pytest.Pytester, xdist: list[str]
) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    # -p no:jaxtyping: jaxtyping's own pytest plugin imports jaxtyping; ours must not
    result = pytester.runpytest_subprocess("-rfsp", "-p", "no:jaxtyping", "-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=8, failed=3, skipped=9, warnings=1)
    text = _text(result)
    result.stdout.fnmatch_lines(
        [
            f"rnnshapes: devices=cpu,cuda (auto: *) seed=0 budget=ci (steps x1, time x1) threads=1 "
            f"version={VERSION} torch=*",
            "user conftest: heavy modules imported before it: none",
        ]
    )
    assert text.count("rnnshapes: devices=") == 1
    # the correct model passes every check; each broken one fails naming its fault
    passed = {line.split()[1] for line in result.outlines if line.startswith("PASSED ")}
    assert {
        f"test_user_models.py::{name}[cpu-good]" for name in ("test_batch_independence", "test_causal")
    } <= passed
    failures = _failure_sections(text)
    assert set(failures) == {
        "test_batch_independence[cpu-leaky]",
        "test_causal[cpu-bidirectional]",
        "test_budget_too_small[cpu]",
    }
    assert "CheckFailed: batch independence failed" in failures["test_batch_independence[cpu-leaky]"]
    assert "CheckFailed: causality failed" in failures["test_causal[cpu-bidirectional]"]
    assert "ConvergenceFailed: tiny-budget did not converge" in failures["test_budget_too_small[cpu]"]
    assert "(0<-1)" in text and ".view(batch, time, -1)" in text and "bidirectional=True" in text
    # the failed training: a report section with the curve and a copy-paste rerun line
    result.stdout.fnmatch_lines(
        [
            "*- rnnshapes convergence -*",
            "tiny-budget on cpu: metric <= 1e-06 not reached in 15 steps (*s); last *",
            "curve: *  * -> * (15 points)",
            "parameters that never received a non-zero gradient (they never learned):",
            "  rnn (GRU) layer 0, forward direction: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0",
            "budget: 15 steps (--rnnshapes-budget=ci: x1 the steps and x1 the time the test wrote), 1 CPU "
            "thread (--rnnshapes-threads=1)",
            "rerun: pytest 'test_user_models.py::test_budget_too_small[cpu]' --rnnshapes-seed=0 "
            "--rnnshapes-device=cpu --rnnshapes-budget=ci --rnnshapes-threads=1",
        ]
    )
    # CUDA absent under auto: visible skips with the reason, and the run ends saying where tests ran
    result.stdout.fnmatch_lines(
        [f"SKIPPED *test_user_models.py:*{NO_CUDA}*skipped under --rnnshapes-device=auto*"]
    )
    assert text.count("rnnshapes: tests by device") == 1
    result.stdout.fnmatch_lines(
        [
            "*= rnnshapes: tests by device (--rnnshapes-device=auto) =*",
            "device * ran * skipped * errors * state",
            "cpu * 7 * 0 * 0",  # the failed ones ran too
            f"cuda * 0 * 9 * 0 * {NO_CUDA} (*CUDA_VISIBLE_DEVICES='')",  # 8 rnn_device=cuda runs, 1 parity check
        ]
    )
    # the end-of-run table, printed once (by the controller under xdist); the session fixture's record once
    assert text.count("rnnshapes: 5 trainings, 4 reached their target") == 1
    never = "  rnn (GRU) layer 0, forward direction: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0"
    result.stdout.fnmatch_lines(
        [
            "*rnnshapes: 5 trainings, 4 reached their target*",
            "name * device * steps * seconds * metric * target * reached * no grad",
            "manual * cpu * 10 * 0.25 * 0.9 * >= 0.8 * yes * -",
            "session-fixture * cpu * 3 *yes * -",
            "test_course_head_overfits_with_half_a_layer_idle (overfit one batch) * cpu * <= 0.05 * yes * 1",
            "test_good_model_overfits[[]cpu[]] (overfit one batch) * cpu * <= 0.05 * yes * 0",
            "tiny-budget * cpu * 15 * <= 1e-06 * NO * 1",
            "test_course_head_overfits_with_half_a_layer_idle (overfit one batch) "
            "(test_user_models.py::test_course_head_overfits_with_half_a_layer_idle): parameters that never "
            "received a non-zero gradient (they never learned):",
            never,
            "tiny-budget (test_user_models.py::test_budget_too_small[[]cpu[]]): parameters that never received a "
            "non-zero gradient (they never learned):",
            never,
        ]
    )
    # a check that proved nothing passes with a warning in pytest's summary, pointing at the user's line
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "test_user_models.py::test_a_batch_of_one_proves_nothing",
            "  */test_user_models.py:*: VacuousCheckWarning: check_batch_independence: the batch holds 1 "
            "example, so no other example can leak into it: the check proved nothing.*",
        ]
    )


def test_without_the_plugin_the_fixtures_do_not_exist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_device(rnn_device):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:rnnshapes")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'rnn_device' not found*"])
    assert "rnnshapes: devices=" not in _text(result)


def test_help_shows_the_option_group_with_defaults_and_creates_no_files(pytester: pytest.Pytester) -> None:
    before = _user_files(pytester.path)
    result = pytester.runpytest_subprocess("--help", "-p", "no:cacheprovider")
    assert result.ret == 0
    text = " ".join(_text(result).split())
    assert "rnnshapes: recurrent-model checks and lesson training:" in text
    for option, default in [("device", "auto"), ("seed", "0"), ("budget", "ci"), ("threads", "1")]:
        assert f"--rnnshapes-{option}" in text
        assert f"Default: {default}; ini: rnnshapes_{option}." in text
        assert f"rnnshapes_{option} (string):" in text  # the ini twin
    assert "--rnnshapes-device={auto,cpu,cuda,all}" in text and "--rnnshapes-budget={ci,full}" in text
    assert _user_files(pytester.path) == before


CUDA_TESTS = """
import pytest

def test_device(rnn_device):
    assert rnn_device in ("cpu", "cuda")

@pytest.mark.rnnshapes_cuda
def test_marked():
    pass
"""


def test_cuda_demanded_on_the_command_line_is_an_error_never_a_skip(pytester: pytest.Pytester) -> None:
    # (--rnnshapes-device=all demands CUDA the same way: Settings.cuda_demanded, tested in process below)
    device = "cuda"
    pytester.makepyfile(CUDA_TESTS)
    result = pytester.runpytest_subprocess(f"--rnnshapes-device={device}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=0, errors=2)
    result.stdout.fnmatch_lines(
        [
            "ERROR *test_device[[]cuda[]]*",
            "ERROR *test_marked*",
        ]
    )
    text = _text(result)
    assert (
        f"{NO_CUDA}" in text and f"but CUDA was demanded by rnnshapes device={device} (command line)" in text
    )
    assert "SKIPPED" not in text
    result.stdout.fnmatch_lines(
        [
            "*= rnnshapes: tests by device (--rnnshapes-device=cuda) =*",
            "device * ran * skipped * errors * state",
            f"cuda * 0 * 0 * 2 * {NO_CUDA} (*)",
        ]
    )


def test_cpu_from_the_ini_collects_cpu_ids_only_and_skips_cuda_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CUDA_TESTS)
    pytester.makeini("[pytest]\nrnnshapes_device = cpu\nrnnshapes_seed = 7\nrnnshapes_budget = full\n")
    result = pytester.runpytest_subprocess("-rs", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"rnnshapes: devices=cpu seed=7 budget=full (steps x10, time x10) threads=1 version={VERSION} torch=*",
            "*test_device[[]cpu[]] PASSED*",
            # nothing looked for CUDA (torch was never asked), and the table says so
            "*= rnnshapes: tests by device (--rnnshapes-device=cpu) =*",
            "device * ran * skipped * errors * state",
            "cpu * 1 * 0 * 0",
            "cuda * 0 * 1 * 0 * not looked for (--rnnshapes-device=cpu)",
            "SKIPPED * needs CUDA, but --rnnshapes-device=cpu runs on the CPU only",
        ]
    )
    assert "[cuda]" not in _text(result)


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--rnnshapes-threads=0"],
            None,
            "argument --rnnshapes-threads: expected a whole number >= 1, got 0",
        ),
        (
            ["--rnnshapes-device=gpu"],
            None,
            "argument --rnnshapes-device: invalid choice 'gpu' (choose from auto, cpu, cuda, all)",
        ),
        (
            ["--rnnshapes-seed=x"],
            None,
            "argument --rnnshapes-seed: expected a whole number from 0 to 9223372036854775807, got 'x'",
        ),
        (
            ["--rnnshapes-seed=18446744073709551615"],  # torch.manual_seed's int64 cannot hold it
            None,
            "argument --rnnshapes-seed: expected a whole number from 0 to 9223372036854775807, got 18446744073709551615",
        ),
        (
            [],
            "rnnshapes_seed = -3",
            "rnnshapes_seed = '-3' in the ini file: expected a whole number from 0 to 9223372036854775807, got -3",
        ),
        (
            [],
            "rnnshapes_budget = huge",
            "rnnshapes_budget = 'huge' in the ini file: invalid choice 'huge' (choose from ci, full)",
        ),
    ],
    ids=["threads", "device", "seed", "seed-too-large", "ini-seed", "ini-budget"],
)
def test_invalid_values_are_usage_errors_with_a_clear_message(
    pytester: pytest.Pytester, args: list[str], ini: str | None, message: str
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in _text(result)


def test_a_projects_own_rnn_device_fixture_wins_and_the_largest_seed_wraps(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def rnn_device():  # the team's own, older than the plugin: always the CPU
            return "cpu"
        """
    )
    pytester.makepyfile(
        """
        import torch

        def test_own_device(rnn_device):
            assert rnn_device == "cpu"

        def test_seeded(rnn_seed):
            assert 0 <= rnn_seed < 2**63 and torch.initial_seed() == rnn_seed
        """
    )
    # CUDA demanded: the project's own CPU fixture is not parametrised into a cuda copy that errors
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-v",
        "--rnnshapes-device=cuda",
        f"--rnnshapes-seed={2**63 - 1}",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_own_device PASSED*"])


def test_a_conftest_rnn_device_that_wraps_the_plugins_keeps_its_devices(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def rnn_device(rnn_device):  # pytest's documented way to extend a fixture
            return rnn_device
        """
    )
    pytester.makepyfile("def test_on_every_device(rnn_device):\n    assert rnn_device in ('cpu', 'cuda')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-rs")
    result.assert_outcomes(passed=1, skipped=1)  # [cpu] ran, [cuda] skipped with the reason (no CUDA here)


BUDGETED_TRAINING = """
import pytest
import torch

import rnnshapes.testing


def records(request):
    return [v for k, v in request.node.user_properties if k == "rnnshapes_train"]


def test_converges_trains_with_the_threads_and_budget_of_the_run(rnn_checks, request):
    torch.set_num_threads(3)  # the test's own count: rnn_checks must set --rnnshapes-threads, then restore it
    threads = []

    def step():
        threads.append(torch.get_num_threads())
        return 1.0

    with pytest.raises(AssertionError, match=r"not reached within 30 steps / 20 s"):
        rnn_checks.check_converges(step, None, 0.0, max_steps=3, max_seconds=2, mode="<=", name="budgeted")
    assert threads == [1] * 30
    assert torch.get_num_threads() == 3
    (record,) = records(request)
    assert (record["steps"], record["max_steps"], record["max_seconds"]) == (30, 30, 20)
    assert (record["budget"], record["threads"]) == ("full", 1)


def test_overfits_batch_scales_its_default_steps(rnn_checks, request, monkeypatch):
    seen = {}

    def fake(model, inputs, targets, loss_fn, *, steps=300, name=""):
        seen.update(steps=steps, threads=torch.get_num_threads())
        return rnnshapes.testing.ConvergenceResult(name, 0.05, "<=", reached=True, steps=7)

    monkeypatch.setattr(rnnshapes.testing, "check_overfits_batch", fake)
    torch.set_num_threads(3)
    rnn_checks.check_overfits_batch(None, None, None, None)
    assert seen == {"steps": 3000, "threads": 1}
    (record,) = records(request)
    assert (record["max_steps"], record["threads"], record["budget"]) == (3000, 1, "full")
"""


def test_training_checks_run_with_the_threads_and_scaled_budgets_of_the_options(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=BUDGETED_TRAINING)
    result = pytester.runpytest_subprocess(*QUICK, "--rnnshapes-threads=1", "--rnnshapes-budget=full")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*rnnshapes: 2 trainings, 1 reached their target*", "budgeted * cpu * 30 *NO * -"]
    )
    assert "tests by device" not in result.stdout.str()  # no test was tied to a device


# ---- the pieces, in process -------------------------------------------------------------------------------


def test_devices_keep_one_fixed_order_whatever_the_option() -> None:
    def devices(choice: str) -> tuple[str, ...]:
        return Settings(choice, "command line", 0, BUDGETS["ci"], 1).devices

    assert DEVICES == ("cpu", "cuda")
    assert devices("auto") == devices("all") == ("cpu", "cuda")
    assert devices("cpu") == ("cpu",) and devices("cuda") == ("cuda",)
    assert Settings("all", "ini", 0, BUDGETS["ci"], 1).cuda_demanded
    assert not Settings("auto", "default", 0, BUDGETS["ci"], 1).cuda_demanded


def test_per_test_seeds_are_stable_and_differ_between_tests(pytestconfig: pytest.Config) -> None:
    a = seed_for(pytestconfig, "tests/x.py::test_a[cpu]")
    assert a == seed_for(pytestconfig, "tests/x.py::test_a[cpu]")
    assert a != seed_for(pytestconfig, "tests/x.py::test_a[cuda]")
    assert 0 <= a - 0 < 100_000


def test_rnn_seed_seeds_torch_and_python(rnn_seed: int, request: pytest.FixtureRequest) -> None:
    import random

    import torch

    assert rnn_seed == seed_for(request.config, request.node.nodeid)
    first = (random.random(), torch.rand(1).item())
    random.seed(rnn_seed)
    torch.manual_seed(rnn_seed)
    assert first == (random.random(), torch.rand(1).item())


def test_budgets_scale_steps_and_time() -> None:
    assert BUDGETS["ci"].scale_steps(300) == 300 and BUDGETS["full"].scale_steps(300) == 3000
    assert BUDGETS["full"].scale_seconds(2.0) == 20.0 and BUDGETS["ci"].scale_steps(0) == 1


def test_records_are_plain_data_with_unique_ids() -> None:
    from rnnshapes.testing import check_converges

    result = check_converges(lambda: 0.0, None, 0.1, max_steps=3, mode="<=", name="r")
    a = make_record(result, device="cpu")
    b = make_record(name="b", steps=1, reached=False)
    assert a["name"] == "r" and a["device"] == "cpu" and a["reached"] is True and a["curve"] == [0.0]
    assert b["mode"] == ">=" and b["curve"] == [] and a["id"] != b["id"]


def test_rnn_checks_is_bound_to_the_tests_seed_and_device(
    rnn_checks, rnn_seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rnnshapes.testing

    def fake_check(model, inputs, *, seed: int = 0):
        return seed

    monkeypatch.setattr(rnnshapes.testing, "check_causal", fake_check)
    assert rnn_checks.check_causal(None, None) == rnn_seed
    assert rnn_checks.check_causal(None, None, seed=5) == 5
    assert rnn_checks.device == "cpu" and rnn_checks.seed == rnn_seed
    assert rnn_checks.distinct_sizes is rnnshapes.testing.distinct_sizes
    assert "check_batch_independence" in dir(rnn_checks)


def test_the_device_summary_names_available_cuda_with_its_gpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from rnnshapes.pytest_plugin import _devices as pytest_plugin

    monkeypatch.setattr(pytest_plugin, "_CUDA_REASON", [])
    assert pytest_plugin._cuda_state() is None  # nobody looked: nothing is claimed
    monkeypatch.setattr(pytest_plugin, "_CUDA_REASON", [None])  # looked, and usable
    assert re.fullmatch(
        r"CUDA available: \d+ GPU\(s\), torch \S+ \(CUDA \S+\)", pytest_plugin._cuda_state() or ""
    )


def test_rnn_seed_holds_under_pytest_randomly(pytester: pytest.Pytester) -> None:
    # pytest-randomly reseeds python's random just before each test body; rnn_seed's seed must win there
    pytester.makepyfile(
        """
        import random

        def test_seeded(rnn_seed):
            first = random.random()
            random.seed(rnn_seed)
            assert first == random.random()
        """
    )
    result = pytester.runpytest_subprocess("-p", "randomly", *QUICK)
    result.stdout.fnmatch_lines(["Using --randomly-seed=*"])
    result.assert_outcomes(passed=1)
