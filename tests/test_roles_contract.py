"""Every role honours the project's contract: argument_specs are the source of
truth and match defaults/main.yml, every variable is documented in the role's
README, tasks are split by phase, and each role can be validated up front."""
import re

import pytest

from conftest import ROLES, ROOT, load_yaml

ROLE_IDS = [r.name for r in ROLES]


def spec(role):
    return load_yaml(role / "meta" / "argument_specs.yml")["argument_specs"]


def defaults(role):
    path = role / "defaults" / "main.yml"
    return (load_yaml(path) or {}) if path.exists() else {}


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_argument_specs_match_defaults(role):
    options = spec(role)["main"].get("options", {})
    dflt = defaults(role)
    assert set(dflt) - set(options) == set(), "defaults without an argument spec"
    optional_without_default = {
        name for name, opt in options.items() if not opt.get("required") and name not in dflt
    }
    assert optional_without_default == set(), "optional spec options without a default"
    for name, value in dflt.items():
        if "default" in options[name]:
            assert options[name]["default"] == value, f"{name}: spec default differs from defaults/main.yml"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_variables_are_role_prefixed(role):
    prefix = role.name + "_"
    for name in spec(role)["main"].get("options", {}):
        assert name.startswith(prefix), f"{name} should start with {prefix}"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_preflight_entry_point_validates_the_same_options(role):
    entry_points = spec(role)
    assert (role / "tasks" / "preflight.yml").exists()
    assert "preflight" in entry_points, "site.yml validates roles through tasks_from: preflight"
    assert entry_points["preflight"].get("options") == entry_points["main"].get("options")


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_readme_documents_every_variable(role):
    readme = (role / "README.md").read_text()
    for name in spec(role)["main"].get("options", {}):
        assert re.search(rf"`{name}`", readme), f"{name} is not documented in {role.name}/README.md"


@pytest.mark.parametrize("role", [r for r in ROLES if r.name != "obs"], ids=[n for n in ROLE_IDS if n != "obs"])
def test_roles_depending_on_stack_settings_declare_it(role):
    """A role that reads obs_* must list the obs role as a dependency, so the
    stack-wide settings have one home and are validated before it runs."""
    text = "\n".join(p.read_text() for p in role.rglob("*") if p.is_file() and p.suffix in {".yml", ".j2"})
    if re.search(r"\bobs_[a-z]", text):
        deps = load_yaml(role / "meta" / "main.yml").get("dependencies") or []
        names = [d["role"] if isinstance(d, dict) else d for d in deps]
        assert "obs" in names


def validated_roles():
    return load_yaml(ROOT / "playbooks" / "preflight.yml")[0]["vars"]["obs_site_roles"]


def deployed_roles():
    plays = load_yaml(ROOT / "playbooks" / "site.yml")
    assert plays[0]["ansible.builtin.import_playbook"] == "preflight.yml", "site.yml must validate first"
    deploy = [p for p in plays if p.get("name") == "Deploy the observability stack"]
    assert len(deploy) == 1, "site.yml has one deploy play"
    return [r["role"] if isinstance(r, dict) else r for r in deploy[0]["roles"]]


def test_site_validates_and_deploys_the_same_roles_in_order():
    # The release gate's settings are validated too: a typo there is caught
    # by the deploy, not at the first gate run.
    assert validated_roles() == ["obs"] + deployed_roles() + ["gate"]


def test_every_role_is_deployed_by_site():
    validated = set(validated_roles())
    internal = {r.name for r in ROLES if (r / "meta" / "main.yml").exists()
                and (load_yaml(r / "meta" / "main.yml").get("galaxy_info") or {}).get("internal")}
    assert {r.name for r in ROLES} - internal - validated == set()


def test_every_stack_role_has_a_molecule_scenario_that_runs_it():
    scenarios = {p.parent.name: p.parent for p in (ROOT / "molecule").glob("*/molecule.yml")}
    assert scenarios, "no Molecule scenario found"
    converge_text = "\n".join(
        f.read_text() for s in scenarios.values() for f in s.glob("*.yml")
    )
    site = (ROOT / "playbooks" / "site.yml").read_text()
    for role in ROLES:
        if role.name == "obs":
            continue
        assert role.name in converge_text or ("site.yml" in converge_text and role.name in site), role.name
