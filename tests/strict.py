"""A test run that checked nothing fails: both suites (tests/ and the scenarios' testinfra tests) import these hooks
into their conftest.py. pytest itself exits 0 when every test skips, and 5 only when none is collected."""

import fnmatch
import json
import os

import pytest

# Where a run writes what it checked, for scripts/test.sh: Molecule reports success for a verifier that found no test.
REPORT = "AIODEPLOY_TEST_REPORT"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    """Fail a run that collected no test or skipped any: a check whose subject is missing must fail, not skip."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    counts = {kind: len(reporter.stats.get(kind, [])) if reporter else 0 for kind in ("passed", "failed", "error", "skipped")}
    if session.exitstatus == pytest.ExitCode.OK and (counts["skipped"] or not session.testscollected):
        if reporter:
            reporter.write_line(f"FAILED: {counts['skipped']} skipped of {session.testscollected} collected: "
                                "a skipped test is a check that did not run", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if os.environ.get(REPORT):
        with open(os.environ[REPORT], "w", encoding="utf-8") as report:
            json.dump({"exitstatus": int(session.exitstatus), "collected": session.testscollected, **counts}, report)


def pytest_configure(config):
    config.addinivalue_line("markers", "on_hosts(pattern): a testinfra test for the test hosts whose name matches "
                                       "the fnmatch pattern only; the run fails when the inventory has none of them")


def pytest_collection_modifyitems(config, items):
    """Run a test marked on_hosts only on its hosts (deselected elsewhere, not skipped), and stop the run when no
    host of the inventory matches: a renamed host must not silently turn its checks into nothing."""
    selected, deselected, matched = [], [], {}
    for item in items:
        marker = item.get_closest_marker("on_hosts")
        if marker is None:
            selected.append(item)
            continue
        pattern = marker.args[0]
        host = getattr(item, "callspec", None) and item.callspec.params.get("_testinfra_host")
        if host is None:
            raise pytest.UsageError(f"{item.nodeid} is marked on_hosts but takes no testinfra host")
        wanted = fnmatch.fnmatchcase(host.backend.get_hostname(), pattern)
        test = (item.path, item.originalname, pattern)
        matched[test] = matched.get(test, False) or wanted
        (selected if wanted else deselected).append(item)
    orphans = sorted(f"{test} (on_hosts {pattern!r})" for (_path, test, pattern), found in matched.items() if not found)
    if orphans:
        raise pytest.UsageError(f"no test host matches these tests' hosts: {', '.join(orphans)}")
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
