"""The Molecule scenarios can fail: each runs the whole sequence (or the README says which step it leaves out and
why), has testinfra tests, and records nothing with a shell command that goes on after a failed step."""

import re

import pytest
import yaml
from project import ROOT

MOLECULE = ROOT / "extensions/molecule"
SCENARIOS = sorted(p.parent.name for p in MOLECULE.glob("*/molecule.yml"))
FULL_SEQUENCE = yaml.safe_load((MOLECULE / "config.yml").read_text())["scenario"]["test_sequence"]
# Steps a scenario leaves out, each said in the README's description of that scenario.
LEFT_OUT = {"apps": {"check": "no check mode"}}


def test_the_full_sequence_checks_everything():
    assert {"syntax", "converge", "idempotence", "check", "side_effect", "verify"} <= set(FULL_SEQUENCE)
    assert FULL_SEQUENCE[0] == FULL_SEQUENCE[-1] == "destroy"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_runs_the_full_sequence_or_the_readme_says_why_not(scenario):
    own = yaml.safe_load((MOLECULE / scenario / "molecule.yml").read_text()).get("scenario", {})
    sequence = own.get("test_sequence", FULL_SEQUENCE)
    left_out = LEFT_OUT.get(scenario, {})
    assert sequence == [step for step in FULL_SEQUENCE if step not in left_out], sequence
    readme = (ROOT / "README.md").read_text()
    description = re.search(rf"^- `{scenario}`.*?(?=^- `|^\S)", readme, re.M | re.S)
    assert description, f"the README describes no scenario {scenario}"
    for step, saying in left_out.items():
        assert saying in description.group(0), f"the README does not say that {scenario} leaves out {step}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_has_testinfra_tests(scenario):
    tests = list((MOLECULE / scenario / "tests").glob("test_*.py"))
    assert tests and all(re.search(r"^def test_", t.read_text(), re.M) for t in tests), scenario


def shell_commands(node):
    """Every ansible.builtin.shell command in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("ansible.builtin.shell", "shell"):
                yield value["cmd"] if isinstance(value, dict) else value
            else:
                yield from shell_commands(value)
    elif isinstance(node, list):
        for item in node:
            yield from shell_commands(item)


@pytest.mark.parametrize("path", sorted(MOLECULE.rglob("*.yml")), ids=lambda p: str(p.relative_to(MOLECULE)))
def test_a_recording_shell_stops_at_its_first_failed_step(path):
    """A record written by `a; b` or several lines would be written, empty or partial, after a failed step; two
    empty records then compare equal. `a && b` and a single command fail by themselves."""
    for command in shell_commands(yaml.safe_load(path.read_text())):
        steps = [line for line in command.strip().splitlines() if line.strip() and not line.strip().startswith("#")]
        if len(steps) > 1 or ";" in command:
            assert re.match(r"\s*set -[a-z]*e", command), f"{path.name}: no set -e in: {command[:200]}"
