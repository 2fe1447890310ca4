"""Renders the loki and grafana roles' templates with the roles' own defaults
and variables (a local playbook run through Ansible's templating, nothing
is changed outside a temp dir), parses the YAML/ini results and asserts the
settings the logs issue requires. Negative cases run the roles' real
preflight: each must fail naming the variable. One playbook run: each case is
a host (connection local). Also checks the dashboards under
templates/grafana/dashboards/: valid JSON, stable uids, and every query on a
provisioned datasource uid.
"""
import configparser
import json
import re

import pytest
import yaml

from conftest import ROOT, failures_of, render_templates

# Obviously fake test values.
SECRETS = {"grafana_admin_password": "test-only-admin-pw-1",
           "grafana_secret_key": "test-only-secret-key;with#specials-0123456789"}
STORES = [{"id": "S001", "name": "Store 001"}, {"id": "S002", "name": "Store 002"}]

VALID = {
    "defaults": {},
    "custom": {"obs_domain": "logs.example.test", "obs_stores": STORES, "obs_environment": "staging",
               "loki_retention_period": "90d", "loki_store_silence_minutes": 30,
               "obs_components": {"prometheus": True, "alertmanager": False, "node_exporter": True,
                                  "loki": True, "grafana": True, "nginx": True},
               "grafana_ini": {"log": {"level": "warn"}, "smtp": {"enabled": True, "host": "mail.example.test:587"}},
               "loki_config_overrides": {"limits_config": {"max_query_series": 1000}}},
}
# Rules on the whole rendered config, and the secrets' quality checks (the
# site plays take the secrets from the vault, above inventory precedence, so
# tests/bad_inputs/cases.yml cannot feed them); the simple per-variable cases
# (a retention of "7 days", an unknown install method, ...) are in
# tests/bad_inputs/cases.yml.
INVALID = {
    "grafana_admin_admin": ({"grafana_admin_password": "admin"}, r"grafana_admin_password: expected a real secret"),
    "grafana_placeholder_pw": ({"grafana_admin_password": "CHANGE_ME_BEFORE_DEPLOY"}, r"grafana_admin_password: expected a real secret"),
    "grafana_short_key": ({"grafana_secret_key": "tooshort"}, r"grafana_secret_key: expected a real secret"),
    "retention_without_delete_store": ({"loki_delete_request_store": ""}, r"loki_delete_request_store .*without a delete request store"),
    "override_drops_delete_store": ({"loki_config_overrides": {"compactor": {"delete_request_store": None}}},
                                    r"delete_request_store"),
    "override_drops_instance_addr": ({"loki_config_overrides": {"common": {"instance_addr": None}}},
                                     r"common.instance_addr must be 127.0.0.1"),
    "override_public_instance_addr": ({"loki_config_overrides": {"common": {"instance_addr": "10.0.0.5"}}},
                                      r"common.instance_addr must be 127.0.0.1"),
    "override_auth_off": ({"loki_config_overrides": {"auth_enabled": False}}, r"auth_enabled true"),
    "override_single_tenant_queries": ({"loki_config_overrides": {"querier": {"multi_tenant_queries_enabled": False}}},
                                       r"multi_tenant_queries_enabled true"),
    "grafana_public_bind": ({"grafana_ini": {"server": {"http_addr": "0.0.0.0"}}}, r"server.http_addr must stay on loopback"),
    "grafana_anonymous_on": ({"grafana_ini": {"auth.anonymous": {"enabled": True}}}, r"auth.anonymous.enabled"),
}

TEMPLATES = [
    {"role": "loki", "src": "config.yml.j2"},
    {"role": "grafana", "src": "grafana.ini.j2"},
    {"role": "grafana", "src": "grafana.sources.j2"},
    {"role": "grafana", "src": "datasources.yml.j2"},
    {"role": "grafana", "src": "dashboards.yml.j2"},
]

# The ruler reads one directory per tenant, so the role renders the rules file once per store.
RULES_PER_STORE = """    - name: Render each store's ruler file (one tenant each)
      ansible.builtin.template:
        src: "{{ roles_dir }}/loki/templates/rules.yml.j2"
        dest: "{{ out_dir }}/{{ inventory_hostname }}/rules-{{ loki_rule_store.id }}.yml"
        mode: "0600"
      loop: "{{ obs_stores }}"
      loop_control:
        loop_var: loki_rule_store
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    hosts = {name: {**SECRETS, **hv} for name, hv in VALID.items()}
    hosts.update({name: {**SECRETS, **hv} for name, (hv, _) in INVALID.items()})
    out, result = render_templates(tmp_path_factory.mktemp("logs_render"), ["loki", "grafana"], TEMPLATES, hosts,
                                   extra_tasks=RULES_PER_STORE)
    return out, failures_of(result)


def load(rendered, host, name):
    out, failures = rendered
    assert host not in failures, failures.get(host)
    return (out / host / name).read_text()


def loki_config(rendered, host="defaults"):
    return yaml.safe_load(load(rendered, host, "config.yml"))


def grafana_ini(rendered, host="defaults"):
    text = load(rendered, host, "grafana.ini")
    ini = configparser.RawConfigParser(strict=True, interpolation=None)
    ini.read_string(text)
    return ini


@pytest.mark.parametrize("host", sorted(VALID))
def test_valid_input_renders(rendered, host):
    out, failures = rendered
    assert host not in failures, failures.get(host)
    assert {p.name for p in (out / host).iterdir() if not p.name.startswith("rules-")} == {
        "config.yml", "grafana.ini", "grafana.sources", "datasources.yml", "dashboards.yml"}


def test_loki_listens_on_loopback_and_advertises_it(rendered):
    cfg = loki_config(rendered)
    assert cfg["auth_enabled"] is True
    assert cfg["querier"]["multi_tenant_queries_enabled"] is True
    assert cfg["server"]["http_listen_address"] == "127.0.0.1"
    assert cfg["server"]["grpc_listen_address"] == "127.0.0.1"
    assert cfg["server"]["http_listen_port"] == 3100
    assert cfg["server"]["grpc_listen_port"] == 9095
    assert cfg["common"]["instance_addr"] == "127.0.0.1"
    assert cfg["common"]["ring"]["kvstore"]["store"] == "inmemory"


def test_loki_schema_is_v13_tsdb_24h_on_the_filesystem(rendered):
    schema = loki_config(rendered)["schema_config"]["configs"][-1]
    assert schema["schema"] == "v13"
    assert schema["store"] == "tsdb"
    assert schema["object_store"] == "filesystem"
    assert schema["index"]["period"] == "24h"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(schema["from"]))


def test_loki_retention_really_deletes(rendered):
    cfg = loki_config(rendered)
    assert cfg["compactor"]["retention_enabled"] is True
    assert cfg["compactor"]["delete_request_store"] == "filesystem"
    assert cfg["limits_config"]["retention_period"] == "30d"
    assert loki_config(rendered, "custom")["limits_config"]["retention_period"] == "90d"


def test_loki_limits_and_structured_metadata(rendered):
    limits = loki_config(rendered)["limits_config"]
    assert limits["allow_structured_metadata"] is True
    assert limits["reject_old_samples"] is True
    assert limits["reject_old_samples_max_age"] == "168h"
    assert limits["ingestion_rate_mb"] > 0 and limits["ingestion_burst_size_mb"] >= limits["ingestion_rate_mb"]
    for key in ("per_stream_rate_limit", "per_stream_rate_limit_burst", "max_line_size", "max_global_streams_per_user"):
        assert limits[key], key
    assert loki_config(rendered, "custom")["limits_config"]["max_query_series"] == 1000


def test_loki_ruler_sends_to_alertmanager(rendered):
    ruler = loki_config(rendered)["ruler"]
    assert ruler["alertmanager_url"] == "http://127.0.0.1:9093/alertmanager"
    assert ruler["storage"] == {"type": "local", "local": {"directory": "/etc/loki/rules"}}
    assert loki_config(rendered)["analytics"]["reporting_enabled"] is False


def test_loki_rules_one_per_store(rendered):
    out, _ = rendered
    assert not list((out / "defaults").glob("rules-*.yml")), "no store, no rule"
    assert sorted(p.name for p in (out / "custom").glob("rules-*.yml")) == ["rules-S001.yml", "rules-S002.yml"]
    # Each store's file holds that store's rule only: it lives in the
    # store's own tenant directory.
    rules = [yaml.safe_load(load(rendered, "custom", f"rules-{s}.yml"))["groups"][0]["rules"] for s in ("S001", "S002")]
    assert [len(r) for r in rules] == [1, 1]
    rules = [r[0] for r in rules]
    assert [r["labels"]["store"] for r in rules] == ["S001", "S002"]
    assert [r["for"] for r in rules] == ["5m", "5m"]
    assert {r["alert"] for r in rules} == {"StoreSentNoLogs"}
    assert rules[1]["expr"] == 'absent_over_time({store="S002"}[30m])'
    assert rules[0]["labels"]["environment"] == "staging"
    assert rules[0]["annotations"]["runbook_url"].startswith("docs/runbook.md#")


def test_grafana_ini_safe_defaults(rendered):
    ini = grafana_ini(rendered)
    assert ini["server"]["http_addr"] == "127.0.0.1"
    assert ini["server"]["http_port"] == "3000"
    assert ini["server"]["root_url"] == "https://obs.example.internal/grafana/"
    assert ini["server"]["serve_from_sub_path"] == "true"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["analytics"]["reporting_enabled"] == "false"
    assert ini["analytics"]["check_for_updates"] == "false"
    assert ini["analytics"]["check_for_plugin_updates"] == "false"
    # A value with ; or # is triple-quoted, else Grafana cuts it at the comment.
    assert ini["security"]["secret_key"] == '"""' + SECRETS["grafana_secret_key"] + '"""'
    assert ini["security"]["admin_password"] == SECRETS["grafana_admin_password"]


def test_grafana_ini_is_deep_merged(rendered):
    ini = grafana_ini(rendered, "custom")
    assert ini["log"]["level"] == "warn"
    assert ini["log"]["mode"] == "console"          # sibling key kept
    assert ini["smtp"]["host"] == "mail.example.test:587"
    assert ini["server"]["root_url"] == "https://logs.example.test/grafana/"


def test_grafana_apt_source_is_deb822_with_signed_by(rendered):
    text = load(rendered, "defaults", "grafana.sources")
    fields = dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert fields == {"Types": "deb", "URIs": "https://apt.grafana.com", "Suites": "stable",
                      "Components": "main", "Signed-By": "/etc/apt/keyrings/grafana.asc"}


def provisioned(rendered, host="defaults"):
    return yaml.safe_load(load(rendered, host, "datasources.yml"))


def test_grafana_datasources_fixed_uids_and_prune(rendered):
    ds = provisioned(rendered)
    assert ds["prune"] is True
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    assert by_uid["obs-loki"]["url"] == "http://127.0.0.1:3100"
    assert by_uid["obs-prometheus"]["url"] == "http://127.0.0.1:9090/prometheus"
    assert by_uid["obs-alertmanager"]["url"] == "http://127.0.0.1:9093/alertmanager"
    assert by_uid["obs-alertmanager"]["jsonData"]["implementation"] == "prometheus"
    # Only enabled components get a datasource.
    assert "obs-alertmanager" not in {d["uid"] for d in provisioned(rendered, "custom")["datasources"]}


def test_grafana_reads_every_store_tenant(rendered):
    """Every store is its own Loki tenant: Grafana's Loki datasource names
    them all (plus the pre-tenancy "fake" tenant), so dashboards see every store."""
    loki = {d["uid"]: d for d in provisioned(rendered, "custom")["datasources"]}["obs-loki"]
    assert loki["jsonData"]["httpHeaderName1"] == "X-Scope-OrgID"
    assert loki["secureJsonData"]["httpHeaderValue1"] == "|".join([s["id"] for s in STORES] + ["fake"])


def test_grafana_dashboards_provider_uses_folders(rendered):
    provider = yaml.safe_load(load(rendered, "defaults", "dashboards.yml"))["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"] == {"path": "/var/lib/grafana/dashboards", "foldersFromFilesStructure": True}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_bad_config_is_caught_by_preflight(rendered, case):
    out, failures = rendered
    assert case in failures, f"{case} was accepted: {INVALID[case][0]}"
    assert not (out / case).exists(), "rendered although the preflight should have stopped it"
    message = json.loads(failures[case]) if failures[case].startswith('"') else failures[case]
    assert re.search(INVALID[case][1], message), message


# --- dashboards ------------------------------------------------------------
DASHBOARDS = sorted((ROOT / "templates" / "grafana" / "dashboards").rglob("*.json"))


def walk_datasources(node):
    """Every datasource reference in a dashboard (panels, targets, variables)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and value is not None:
                yield value
            else:
                yield from walk_datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_datasources(item)


def test_dashboards_exist_in_folders():
    assert {p.parent.name for p in DASHBOARDS} == {"Stores", "Stack"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_is_valid_json_with_stable_uid(path):
    text = path.read_text()
    board = json.loads(text)
    assert re.fullmatch(r"obs-[a-z0-9-]{1,36}", board["uid"])
    assert "${DS_" not in text and "__inputs" not in board
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_uids_are_unique():
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_query_uses_a_provisioned_datasource(rendered, path):
    provisioned_uids = {d["uid"]: d["type"] for d in provisioned(rendered)["datasources"]}
    board = json.loads(path.read_text())
    refs = list(walk_datasources(board))
    assert refs
    for ref in refs:
        assert isinstance(ref, dict), f"datasource by name, not uid: {ref}"
        assert ref["uid"] in provisioned_uids, ref
        assert ref["type"] == provisioned_uids[ref["uid"]], ref
    for panel in board["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in provisioned_uids
            assert target["expr"].strip()


def test_dashboards_cover_the_required_panels():
    text = {p.name: p.read_text() for p in DASHBOARDS}
    fleet, stack = text["store-fleet-overview.json"], text["stack-health.json"]
    for needle in ("count_over_time", "level=~\\\"error", "unless", "up{store"):
        assert needle in fleet, needle
    for needle in ("loki_distributor_lines_received_total", "loki_discarded_samples_total", "prometheus_",
                   "node_filesystem_avail_bytes", "node_memory_MemAvailable_bytes",
                   "obs_backup_last_success_timestamp_seconds", "obs_tls_cert_not_after_timestamp_seconds"):
        assert needle in stack, needle
