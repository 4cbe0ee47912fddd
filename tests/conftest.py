"""Shared pytest set-up for the legonn tests."""

import pytest

try:
    import torch
except ImportError:  # tests that need torch import it themselves and fail/skip there
    torch = None

if torch is not None:
    # Keep the suite's CPU use predictable on small (2-core) machines.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """(egs/mini dir, DemoRun) of one `demo.sh --mode tiny` run in a temporary tree.

    Shared because its trainings are the ones the mini MT recipe test needs as well: test_demo
    checks this run and runs the demo again in place (re-scoring only); test_mt_recipe works on
    a copy of its mt1. ``run.result()`` waits for the run, which start_tiny_demo starts early.
    """
    from demo_fixtures import DemoRun, make_demo_tree

    mini = make_demo_tree(tmp_path_factory.mktemp("demo"))
    run = DemoRun(mini, "--mode", "tiny")
    yield mini, run
    run.stop()


@pytest.fixture(scope="session", autouse=True)
def start_tiny_demo(request):
    """Start the tiny demo with the session when a selected test needs it: the suite's longest
    step depends on no test, so it runs on the core the single-threaded tests before it leave free."""
    if any("tiny_demo" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("tiny_demo")
