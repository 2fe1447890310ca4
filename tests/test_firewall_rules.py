"""The firewall role's desired ufw rules, evaluated by Ansible from the
role's own defaults and vars (the form `ufw show added` prints)."""
import json

import yaml

from conftest import ROOT, run_playbook_json

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Load the firewall role's defaults and vars
      ansible.builtin.include_vars: {file: "{{ item }}"}
      loop:
        - "{{ roles_dir }}/firewall/defaults/main.yml"
        - "{{ roles_dir }}/firewall/vars/main.yml"
    - name: Report the desired rules
      ansible.builtin.debug: {var: firewall_desired_rules}
"""


def desired_rules(tmp_path, **extra_vars):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    inventory = {"all": {"hosts": {"h": {"ansible_connection": "local", "roles_dir": str(ROOT / "roles")}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    # Extra vars: above include_vars, as an inventory's group_vars are above a role's defaults.
    result = run_playbook_json(tmp_path / "play.yml", tmp_path / "inventory.yml", 120, "-e", json.dumps(extra_vars))
    return result["plays"][0]["tasks"][-1]["hosts"]["h"]["firewall_desired_rules"]


def test_ssh_limited_from_anywhere_by_default(tmp_path):
    assert desired_rules(tmp_path)[0] == "limit 22/tcp"


def test_ssh_limited_from_each_allowed_source(tmp_path):
    # ansible-core 2.19 kept '\\1' as a literal backslash-one here: every
    # source became "limit from \\1 ...", which ufw refuses.
    rules = desired_rules(tmp_path, firewall_ssh_allowed_sources=["10.0.0.0/8", "192.0.2.7"])
    assert rules[:2] == ["limit from 10.0.0.0/8 to any port 22 proto tcp",
                         "limit from 192.0.2.7 to any port 22 proto tcp"]
