"""The rnnshapes pytest plugin (registered through the ``pytest11`` entry point ``rnnshapes``).

One package, split by concern: ``_options`` (options, settings, markers, header), ``_devices``
(``rnn_device``, CUDA skips and demands), ``_fixtures`` (seed, threads, budget, records, ``rnn_checks``),
``_lessons`` (``rnn_lesson``: the one part that trains) and ``_report`` (records, the convergence section,
the end-of-run tables). This module registers them: pytest reads the hooks and fixtures re-exported here.

Loading it imports neither torch nor jaxtyping and creates no files: pytest loads every installed plugin in
every run, so torch is imported only inside fixtures and hooks that a test actually uses (``rnn_device`` when
it checks for CUDA, ``rnn_seed``, ``rnn_threads``, ``rnn_checks``...). Disable it with ``-p no:rnnshapes``.

Options (group "rnnshapes"; each has an ini twin, the command line wins):

=========================  =====================  =============================================================
option                     ini                    meaning (default)
=========================  =====================  =============================================================
``--rnnshapes-device``     ``rnnshapes_device``   ``auto`` (cpu, plus cuda when present, else skipped), ``cpu``,
                                                  ``cuda`` or ``all`` (cpu and cuda; CUDA absent is an error)
``--rnnshapes-seed``       ``rnnshapes_seed``     base seed (0); each test adds a stable offset from its node id
``--rnnshapes-budget``     ``rnnshapes_budget``   ``ci`` (x1 steps and time) or ``full`` (x10)
``--rnnshapes-threads``    ``rnnshapes_threads``  CPU threads set by training fixtures (1)
``--rnnshapes-lesson-``    ``rnnshapes_lesson_``  where ``rnn_lesson`` keeps trained lessons: ``run`` (the run's
``cache``                  ``cache``              temporary folder; default) or ``persistent`` (also pytest's
                                                  cache, reused by later runs)
=========================  =====================  =============================================================

Fixtures: ``rnn_device`` (parametrised over the fixed, ordered list ``cpu``, ``cuda`` filtered by the option,
so every xdist worker sees the same test ids), ``rnn_seed``, ``rnn_threads``, ``rnn_budget``,
``rnn_train_record``, ``rnn_checks`` (``rnnshapes.testing`` bound to the test). Markers: ``rnnshapes_cuda``,
``rnnshapes_slow``, ``rnnshapes_convergence``.

Reporting: the header line shows the resolved options and the rnnshapes and torch versions (the devices as
asked for: what ``auto`` finds needs torch, which loading must not import). A failed test that trained gets a
"rnnshapes convergence" report section (curve sparkline, budget, copy-paste rerun line). The run ends with a
table of the tests tied to a device (``rnn_device``, ``rnnshapes_cuda``): how many ran, were skipped or erred
on each, and what CUDA was found to be; and a table of everything that was trained. Both are printed once, by
the xdist controller (records travel from the workers in ``report.user_properties``).
"""

import pytest

from ._devices import pytest_collection_modifyitems as pytest_collection_modifyitems
from ._devices import pytest_generate_tests as pytest_generate_tests
from ._devices import pytest_runtest_setup as pytest_runtest_setup
from ._devices import rnn_device as rnn_device
from ._fixtures import RnnChecks as RnnChecks
from ._fixtures import pytest_pyfunc_call as pytest_pyfunc_call
from ._fixtures import rnn_budget as rnn_budget
from ._fixtures import rnn_checks as rnn_checks
from ._fixtures import rnn_seed as rnn_seed
from ._fixtures import rnn_threads as rnn_threads
from ._fixtures import rnn_train_record as rnn_train_record
from ._fixtures import seed_for as seed_for
from ._lessons import TrainedLesson as TrainedLesson
from ._lessons import rnn_lesson as rnn_lesson
from ._lessons import rnn_lesson_dir as rnn_lesson_dir
from ._options import _OPTIONS as _OPTIONS
from ._options import _PENDING, SETTINGS, _resolve
from ._options import BUDGETS as BUDGETS
from ._options import DEVICE_CHOICES as DEVICE_CHOICES
from ._options import DEVICES as DEVICES
from ._options import LESSON_CACHES as LESSON_CACHES
from ._options import MARKERS as MARKERS
from ._options import Budget as Budget
from ._options import Settings as Settings
from ._options import option_flag as option_flag
from ._options import pytest_addoption as pytest_addoption
from ._options import pytest_report_header as pytest_report_header
from ._options import settings as settings
from ._report import DEVICE_KEY as DEVICE_KEY
from ._report import RECORD_KEY as RECORD_KEY
from ._report import _TrainingSummary
from ._report import make_record as make_record
from ._report import pytest_runtest_makereport as pytest_runtest_makereport
from ._report import record_training as record_training


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.stash[SETTINGS] = _resolve(config)
    if config.stash[SETTINGS].lesson_cache == "persistent" and getattr(config, "cache", None) is None:
        raise pytest.UsageError(
            "--rnnshapes-lesson-cache=persistent keeps the lessons in pytest's cache, which this run has "
            "switched off (-p no:cacheprovider); drop one of the two"
        )
    config.stash[_PENDING] = []
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without xdist
        config.pluginmanager.register(_TrainingSummary(), "rnnshapes-training-summary")
