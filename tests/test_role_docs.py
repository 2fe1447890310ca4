"""Each role README's variable table is generated from the role's argument
specs and defaults (tools/gen_role_docs.py, `make docs`): a committed table
that differs from what the generator writes fails here, so every variable is
described once, in meta/argument_specs.yml."""
import importlib.util
import subprocess
import sys

import pytest

from conftest import ROLES, ROOT

spec = importlib.util.spec_from_file_location("gen_role_docs", ROOT / "tools" / "gen_role_docs.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_readme_table_is_the_generated_one(role):
    current, wanted = gen.render(role)
    assert current == wanted, f"{role.name}/README.md differs from its argument specs: run `make docs`"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_readme_keeps_no_hand_written_variable_table(role):
    readme = (role / "README.md").read_text()
    outside = readme.split(gen.BEGIN)[0] + readme.split(gen.END)[1]
    assert "| Variable |" not in outside, f"{role.name}/README.md: a second, hand-written variable table"


def test_check_mode_reports_up_to_date():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_role_docs.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr


def test_every_default_and_description_reaches_the_table():
    role = ROOT / "roles" / "obs"
    table = gen.table(role)
    assert "| `obs_install_methods` | dict | `{}` |" in table
    assert "merged over the defaults" in table
