"""The secrets role on the control node: generation, ansible-vault storage,
idempotent reruns, selective rotation, revocation of removed stores, bundles,
and no secret in -vvv --diff output. Runs the real role with ansible-playbook."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

sys.path.insert(0, str(ROOT / "roles" / "secrets" / "filter_plugins"))
from secrets_reconcile import secrets_reconcile  # noqa: E402

PLAYBOOK = ROOT / "tests" / "secrets" / "apply.yml"
BIN = Path(sys.executable).parent


def make_inventory(tmp: Path, stores):
    (tmp / "group_vars").mkdir(exist_ok=True)
    (tmp / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"obs_central": {"hosts": {"central": {"ansible_connection": "local",
                                                                      "ansible_python_interpreter": sys.executable}}}}}}))
    (tmp / "group_vars" / "all.yml").write_text(yaml.safe_dump(
        {"obs_domain": "obs.test.internal", "obs_stores": [{"id": s, "name": f"Store {s}"} for s in stores]}))


def run(tmp: Path, *extra, check=True):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_VAULT_PASSWORD_FILE=str(tmp / ".vault-pass"),
               ANSIBLE_ROLES_PATH=str(ROOT / "roles"), PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp / "hosts.yml"), str(PLAYBOOK), *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def decrypt(tmp: Path) -> dict:
    env = dict(os.environ, ANSIBLE_VAULT_PASSWORD_FILE=str(tmp / ".vault-pass"))
    out = subprocess.run([str(BIN / "ansible-vault"), "view", str(tmp / "secrets.vault.yml")],
                         capture_output=True, text=True, env=env, check=True).stdout
    return yaml.safe_load(out)["obs_secrets"]


def changed(proc) -> int:
    line = next(l for l in proc.stdout.splitlines() if l.startswith("central"))
    return int(line.split("changed=")[1].split()[0])


@pytest.fixture()
def inventory(tmp_path):
    (tmp_path / ".vault-pass").write_text("test-only-vault-password\n")
    make_inventory(tmp_path, ["S001", "S002", "S003"])
    return tmp_path


def test_first_run_generates_encrypted_secrets_and_bundles(inventory):
    run(inventory)
    raw = (inventory / "secrets.vault.yml").read_text()
    assert raw.startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert oct((inventory / "secrets.vault.yml").stat().st_mode & 0o777) == "0o600"
    values = decrypt(inventory)
    assert set(values["store_tokens"]) == {"S001", "S002", "S003"}
    assert len(set(values["store_tokens"].values())) == 3
    assert all(len(t) == 48 and t.isalnum() for t in values["store_tokens"].values())
    for key in ("grafana_admin_password", "grafana_secret_key", "admin_password", "restic_password"):
        assert len(values[key]) >= 32
        assert values[key] not in raw
    bundle_dir = inventory / "credentials"
    assert oct(bundle_dir.stat().st_mode & 0o777) == "0o700"
    bundle = (bundle_dir / "S002.env").read_text()
    assert oct((bundle_dir / "S002.env").stat().st_mode & 0o777) == "0o600"
    assert f"LOKI_PASSWORD={values['store_tokens']['S002']}" in bundle
    assert "LOKI_USERNAME=S002" in bundle and "STORE_ID=S002" in bundle
    assert "LOKI_URL=https://obs.test.internal" in bundle


def test_rerun_changes_nothing(inventory):
    run(inventory)
    before = (inventory / "secrets.vault.yml").read_bytes()
    proc = run(inventory)
    assert changed(proc) == 0, proc.stdout
    assert (inventory / "secrets.vault.yml").read_bytes() == before


def test_rotating_one_store_changes_only_its_token(inventory):
    run(inventory)
    old = decrypt(inventory)
    run(inventory, "-e", '{"secrets_rotate": ["stores"], "secrets_rotate_stores": ["S002"]}')
    new = decrypt(inventory)
    assert new["store_tokens"]["S002"] != old["store_tokens"]["S002"]
    assert new["store_tokens"]["S001"] == old["store_tokens"]["S001"]
    assert new["store_tokens"]["S003"] == old["store_tokens"]["S003"]
    assert new["admin_password"] == old["admin_password"]
    assert new["store_tokens"]["S002"] in (inventory / "credentials" / "S002.env").read_text()


def test_rotate_all_keeps_grafana_secret_key(inventory):
    run(inventory)
    old = decrypt(inventory)
    run(inventory, "-e", '{"secrets_rotate": ["all"]}')
    new = decrypt(inventory)
    for key in ("grafana_admin_password", "admin_password", "restic_password"):
        assert new[key] != old[key]
    assert all(new["store_tokens"][s] != old["store_tokens"][s] for s in old["store_tokens"])
    assert new["grafana_secret_key"] == old["grafana_secret_key"]


def test_removed_store_is_revoked(inventory):
    run(inventory)
    make_inventory(inventory, ["S001", "S002"])
    run(inventory)
    assert set(decrypt(inventory)["store_tokens"]) == {"S001", "S002"}
    assert not (inventory / "credentials" / "S003.env").exists()
    assert (inventory / "credentials" / "S001.env").exists()


def test_unknown_store_to_rotate_is_rejected(inventory):
    proc = run(inventory, "-e", '{"secrets_rotate": ["stores"], "secrets_rotate_stores": ["S999"]}', check=False)
    assert proc.returncode != 0
    assert "secrets_rotate_stores: unknown store ids" in proc.stdout
    assert not (inventory / "secrets.vault.yml").exists()


def test_no_secret_appears_in_verbose_diff_output(inventory):
    def all_values(v):
        return [v[k] for k in ("grafana_admin_password", "grafana_secret_key", "admin_password",
                               "restic_password")] + list(v["store_tokens"].values())

    first = run(inventory, "-vvv", "--diff")
    generated = all_values(decrypt(inventory))
    rotated = run(inventory, "-vvv", "--diff", "-e", '{"secrets_rotate": ["all"]}')
    output = first.stdout + first.stderr + rotated.stdout + rotated.stderr
    assert "rotated store token S001" in output  # the run did log its work
    leaked = [v for v in generated + all_values(decrypt(inventory)) if v in output]
    assert leaked == []


def test_reconcile_rejects_unknown_rotation_target():
    with pytest.raises(ValueError):
        secrets_reconcile({}, ["S001"], rotate=["everything"])


def test_reconcile_reports_names_never_values():
    out = secrets_reconcile({}, ["S001"])
    text = " ".join(out["changes"])
    assert "generated store token S001" in text
    assert out["secrets"]["store_tokens"]["S001"] not in text
