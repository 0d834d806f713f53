"""Each role's meta/argument_specs.yml matches its defaults/main.yml, and roles read each other only through
what aiohttp_app publishes."""

import re

import pytest
import yaml
from project import ALL_ROLES, ROLES, ROOT

# What aiohttp_app publishes: the other roles read these and no other aiohttp_app_* variable.
PUBLISHED = {"aiohttp_app_pool", "aiohttp_app_deploy"}
# Inputs of aiohttp_app's entry points, which the other roles pass.
ENTRY_POINT_INPUTS = {"aiohttp_app_health_addresses", "aiohttp_app_rollout", "haproxy_balancer", "haproxy_server", "haproxy_server_state",
                      "nginx_balancer", "nginx_upstream_server", "nginx_upstream_server_state", "nginx_upstream_health_path",
                      "nginx_upstream_health_host"}
SHARED = ("aiodeploy_topology", "aiodeploy_preflight")
# What common's entry points set for the roles that include them (roles/common/README.md).
COMMON_RESULTS = {"common_installed_packages", "common_started_units", "common_packages_missing", "common_tls_certificate_info",
                  "common_tls_protocols", "common_tls_ciphers"}


def load(role, path):
    return yaml.safe_load((ROOT / "roles" / role / path).read_text()) or {}


def options(role, entry_point="main"):
    return load(role, "meta/argument_specs.yml")["argument_specs"][entry_point]["options"]


def own_options(role):
    """The role's own options: every declared option but what it reads from aiohttp_app and the playbooks' switches
    (each role reads those with a default, since a role's defaults carry its own prefix only)."""
    return {name: option for name, option in options(role).items()
            if name not in SHARED and (name not in PUBLISHED or role == "aiohttp_app")}


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_and_every_option_has_a_default(role):
    assert sorted(load(role, "defaults/main.yml")) == sorted(own_options(role))


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_defaults(role):
    spec = own_options(role)
    for name, value in load(role, "defaults/main.yml").items():
        assert spec[name].get("default") == value, name


@pytest.mark.parametrize("role", ROLES)
def test_options_are_documented_and_prefixed(role):
    for name, option in options(role).items():
        assert name.startswith((role + "_", *SHARED)) or name in PUBLISHED, name
        assert option.get("description"), name
        assert option.get("type"), name


@pytest.mark.parametrize("role", [r for r in ROLES if r != "aiohttp_app"])
def test_what_a_role_reads_from_aiohttp_app_is_declared_as_such(role):
    for name in PUBLISHED & set(options(role)):
        option = options(role)[name]
        assert "default" not in option and not option.get("required"), name
        assert " ".join(option["description"]).startswith("From aiohttp_app"), name


# Keys whose values are Jinja expressions even without braces.
CONDITIONS = {"when", "that", "until", "changed_when", "failed_when", "loop"}
JINJA = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
# Any role's variable, hidden ones (with leading underscores) too.
ROLE_VARIABLE = re.compile(r"\b(_*(?:%s)_\w+)" % "|".join(ALL_ROLES))


def strings(data, key=None):
    """Every string in parsed YAML, with the key it is under (the items of a list are under the list's key)."""
    if isinstance(data, dict):
        for name, value in data.items():
            yield from strings(value, name)
    elif isinstance(data, list):
        for value in data:
            yield from strings(value, key)
    elif isinstance(data, str):
        yield key, data


def expressions(path):
    """The Jinja expressions and conditions of a task, vars or template file, without comments: parsed, so that
    quoted, folded and literal scalars count as well as plain ones."""
    if path.suffix == ".j2":
        return [a or b for a, b in JINJA.findall(path.read_text())]
    found = []
    for key, text in strings(yaml.safe_load(path.read_text())):
        found += [a or b for a, b in JINJA.findall(text)]
        if key in CONDITIONS:
            found.append(text)
    return found


@pytest.mark.parametrize("role", [r for r in ALL_ROLES if r != "aiohttp_app"])
def test_no_role_reads_another_roles_internals(role):
    declared = set(options(role)) if role in ROLES else set()
    for path in sorted((ROOT / "roles" / role).rglob("*")):
        if path.suffix not in (".yml", ".j2") or "meta" in path.parts:
            continue
        for expression in expressions(path):
            for name in set(ROLE_VARIABLE.findall(expression)):
                owner = next(r for r in ALL_ROLES if name.lstrip("_").startswith(r + "_"))
                if owner == role:
                    continue
                assert name in declared | ENTRY_POINT_INPUTS | COMMON_RESULTS, f"{path.relative_to(ROOT)} reads {name}"


@pytest.mark.parametrize("role", ROLES)
def test_validate_entry_point_checks_the_same_options(role):
    specs = load(role, "meta/argument_specs.yml")["argument_specs"]
    assert specs["validate"]["options"] == specs["main"]["options"]
    assert (ROOT / "roles" / role / "tasks" / "validate.yml").is_file()


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_lists_every_variable(role):
    readme = (ROOT / "roles" / role / "README.md").read_text()
    for name in options(role):
        assert f"`{name}`" in readme, f"{name} missing from roles/{role}/README.md"


def test_internal_role_guards_itself_and_has_no_main_entry_point():
    specs = load("common", "meta/argument_specs.yml")["argument_specs"]
    assert "main" not in specs
    tasks = ROOT / "roles" / "common" / "tasks"
    for entry_point in specs:
        text = (tasks / f"{entry_point}.yml").read_text()
        # An entry point may begin by importing another one, which guards for it.
        first = yaml.safe_load(text)[0]
        if "ansible.builtin.import_tasks" in first:
            text = (tasks / first["ansible.builtin.import_tasks"]).read_text()
        assert "ansible_parent_role_names" in text, entry_point
