"""The test runner and the suites' own guards fail a run that checked nothing (scripts/test.sh, scripts/env.sh,
tests/strict.py), shown on runs made to fail that way."""

import os
import shutil
import subprocess
import sys

import pytest
from project import ROOT


def bash(script, **env):
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(("chosen", "message"), [
    (" ", "AIODEPLOY_SCENARIOS is set but names no scenario"),
    ("\n\t", "AIODEPLOY_SCENARIOS is set but names no scenario"),
    ("standalone nosuch", "AIODEPLOY_SCENARIOS names 'nosuch', which is not one of: apps standalone"),
    ("stand.lone", "AIODEPLOY_SCENARIOS names 'stand.lone', which is not one of: apps standalone"),
])
def test_a_scenario_choice_that_names_none_fails_before_anything_runs(tmp_path, chosen, message):
    """scripts/test.sh in a tree of its own, whose setup step would say so if the run got that far."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/test.sh", tmp_path / "scripts/test.sh")
    (tmp_path / "scripts/setup.sh").write_text("echo 'the run went on to its setup'; exit 99\n")
    (tmp_path / "scripts/setup.sh").chmod(0o755)
    for scenario in ("apps", "standalone"):
        (tmp_path / "extensions/molecule" / scenario).mkdir(parents=True)
        (tmp_path / "extensions/molecule" / scenario / "molecule.yml").write_text("---\n")
    done = bash(f"bash {tmp_path / 'scripts/test.sh'}", AIODEPLOY_SCENARIOS=chosen)
    assert done.returncode == 1 and message in done.stdout, done.stdout + done.stderr
    assert "the run went on" not in done.stdout


def test_ci_runs_every_scenario_whatever_its_environment_says():
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines.index("unset AIODEPLOY_SCENARIOS") < lines.index("make test"), lines


@pytest.mark.parametrize(("report", "verified"), [
    ('{"exitstatus": 0, "collected": 28, "passed": 28, "failed": 0, "error": 0, "skipped": 0}', True),
    (None, False),
    ("", False),
    ('{"exitstatus": 0, "collected": 0, "passed": 0, "failed": 0, "error": 0, "skipped": 0}', False),
    ('{"exitstatus": 1, "collected": 28, "passed": 27, "failed": 0, "error": 0, "skipped": 1}', False),
    ('{"exitstatus": 1, "collected": 28, "passed": 27, "failed": 1, "error": 0, "skipped": 0}', False),
])
def test_a_scenario_passes_only_when_its_verifier_ran_tests_and_all_passed(tmp_path, report, verified):
    if report is not None:
        (tmp_path / "tests.json").write_text(report)
    done = bash(f"source scripts/env.sh; scenario_verified {tmp_path / 'tests.json'}")
    assert (done.returncode == 0) == verified, done.stdout + done.stderr


def test_the_report_a_scenario_is_verified_by_is_the_one_its_tests_write(tmp_path):
    """tests/strict.py writes it where AIODEPLOY_TEST_REPORT says; scenario_verified reads it."""
    (tmp_path / "conftest.py").write_text(STRICT_CONFTEST)
    for tests, verified in (("def test_ok():\n    pass\n", True), ("import pytest\ndef test_gone():\n    pytest.skip('x')\n", False)):
        (tmp_path / "test_probe.py").write_text(tests)
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)], cwd=tmp_path,
                       env={**os.environ, "AIODEPLOY_TEST_REPORT": str(tmp_path / "tests.json")},
                       capture_output=True, timeout=120, check=False)
        done = bash(f"source scripts/env.sh; scenario_verified {tmp_path / 'tests.json'}")
        assert (done.returncode == 0) == verified, done.stdout + done.stderr


STRICT_CONFTEST = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from strict import pytest_collection_modifyitems, pytest_configure, pytest_sessionfinish
"""


@pytest.mark.parametrize(("tests", "options", "status"), [
    ("def test_ok():\n    pass\n", [], 0),
    ("import pytest\ndef test_ok():\n    pass\ndef test_gone():\n    pytest.skip('host missing')\n", [], 1),
    ("", [], 5),
    ("def helper():\n    pass\n", [], 5),
    # A test for hosts the inventory does not have stops the run, on testinfra's own host parameter.
    ("import pytest\n@pytest.mark.on_hosts('lb-1')\ndef test_lb(host):\n    pass\n", ["--hosts=local://"], 4),
    # testinfra's local backend names its host "local".
    ("import pytest\n@pytest.mark.on_hosts('loc*')\ndef test_here(host):\n    pass\n"
     "@pytest.mark.on_hosts('elsewhere-*')\ndef test_there(host):\n    pass\n", ["--hosts=local://"], 4),
    ("import pytest\n@pytest.mark.on_hosts('loc*')\ndef test_here(host):\n    pass\n", ["--hosts=local://"], 0),
])
def test_a_run_that_checked_nothing_fails(tmp_path, tests, options, status):
    (tmp_path / "conftest.py").write_text(STRICT_CONFTEST)
    (tmp_path / "test_probe.py").write_text(tests)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *options, str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == status, done.stdout + done.stderr
