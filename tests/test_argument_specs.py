"""Each role's meta/argument_specs.yml matches its defaults/main.yml, key for key."""

import pytest
import yaml
from conftest import ROLES, ROOT


def load(role, path):
    return yaml.safe_load((ROOT / "roles" / role / path).read_text()) or {}


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_and_every_option_has_a_default(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_defaults(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, value in defaults.items():
        assert options[name].get("default") == value, name


@pytest.mark.parametrize("role", ROLES)
def test_options_are_documented_and_prefixed(role):
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, option in options.items():
        assert name.startswith(role + "_"), name
        assert option.get("description"), name
        assert option.get("type"), name


@pytest.mark.parametrize("role", ROLES)
def test_validate_entry_point_checks_the_same_options(role):
    specs = load(role, "meta/argument_specs.yml")["argument_specs"]
    assert specs["validate"]["options"] == specs["main"]["options"]
    assert (ROOT / "roles" / role / "tasks" / "validate.yml").is_file()


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_lists_every_variable(role):
    readme = (ROOT / "roles" / role / "README.md").read_text()
    for name in load(role, "defaults/main.yml"):
        assert f"`{name}`" in readme, f"{name} missing from roles/{role}/README.md"
