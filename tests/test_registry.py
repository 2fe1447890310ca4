"""The stack's component facts have one home, obs_registry (roles/obs): this
renders, with the roles' own variables (a local playbook run; nothing is
changed outside a temp dir), what the gate checks per component, the backup
tool's config.json, Prometheus's scrape targets, nginx's upstreams and the
deploy summary, and checks they all follow the install methods and the
components switched off. With alertmanager and node_exporter installed from
their releases, the units are `alertmanager` and `node_exporter` (not the
Debian packages' names) for the gate and the backup alike."""
import json
import re

import pytest
import yaml

from conftest import failures_of, render_templates

CASES = {
    "packages": {},
    "archives": {"obs_install_methods": {"alertmanager": "archive", "node_exporter": "archive"}},
    "logs_off": {"obs_components": {"prometheus": True, "alertmanager": True, "node_exporter": True,
                                    "loki": False, "grafana": False, "nginx": True},
                 "obs_disabled_reasons": {"loki": "no Loki release file here"}},
    "no_edge": {"obs_components": {"prometheus": True, "alertmanager": False, "node_exporter": True,
                                   "loki": True, "grafana": True, "nginx": False}},
}
PACKAGE_UNITS = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager",
                 "node_exporter": "prometheus-node-exporter", "loki": "loki", "grafana": "grafana-server", "nginx": "nginx"}

TEMPLATES = [
    {"role": "backup", "src": "config.json.j2"},
    {"role": "prometheus", "src": "prometheus.yml.j2"},
    {"role": "nginx", "src": "nginx.conf.j2"},
]
# What the gate checks per component, and the summary site.yml prints last.
EXTRA_TASKS = """
    - name: Write the gate's component table
      ansible.builtin.copy:
        content: "{{ gate_components | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}/gate.json"
        mode: "0600"
    - name: Print the deploy summary
      ansible.builtin.include_role: {name: obs, tasks_from: summary}
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out, result = render_templates(tmp_path_factory.mktemp("registry"), ["gate", "backup", "prometheus", "nginx"],
                                   TEMPLATES, CASES, EXTRA_TASKS)
    summaries = {host: res.get("msg") for play in result["plays"] for task in play["tasks"]
                 if task["task"]["name"].endswith("Print the endpoints of the deployed components")
                 for host, res in task["hosts"].items()}
    return out, {h: json.loads(m) for h, m in failures_of(result).items()}, summaries


def read(rendered, host, name):
    out, failures, _ = rendered
    assert host not in failures, failures.get(host)
    return (out / host / name).read_text()


def gate_units(rendered, host):
    return {name: c["unit"] for name, c in json.loads(read(rendered, host, "gate.json")).items()}


def backup_units(rendered, host):
    return {name: c["service"] for name, c in json.loads(read(rendered, host, "config.json"))["components"].items()}


def test_package_defaults_name_the_debian_units(rendered):
    assert gate_units(rendered, "packages") == PACKAGE_UNITS
    assert backup_units(rendered, "packages") == {k: PACKAGE_UNITS[k] for k in ("prometheus", "alertmanager", "loki", "grafana")}


def test_archive_method_units_reach_the_gate_and_the_backup(rendered):
    expected = dict(PACKAGE_UNITS, alertmanager="alertmanager", node_exporter="node_exporter")
    assert gate_units(rendered, "archives") == expected
    assert backup_units(rendered, "archives") == {k: expected[k] for k in ("prometheus", "alertmanager", "loki", "grafana")}


def test_archive_method_config_checks_use_the_release_tools(rendered):
    gate = json.loads(read(rendered, "archives", "gate.json"))
    assert gate["alertmanager"]["config_check"] == "/usr/local/bin/amtool check-config /etc/prometheus/alertmanager.yml"
    assert gate["prometheus"]["config_check"] == "/usr/bin/promtool check config /etc/prometheus/prometheus.yml"
    assert gate["node_exporter"]["binary"] == "/usr/local/bin/node_exporter"
    assert gate["alertmanager"]["flags_file"] == "" and gate["prometheus"]["flags_file"] == "/etc/default/prometheus"


def test_backup_reads_users_data_and_readiness_from_the_registry(rendered):
    cfg = json.loads(read(rendered, "packages", "config.json"))["components"]
    assert cfg["prometheus"]["api_url"] == "http://127.0.0.1:9090/prometheus"
    assert cfg["prometheus"]["ready_url"] == "http://127.0.0.1:9090/prometheus/-/ready"
    assert cfg["alertmanager"]["data_dir"] == "/var/lib/prometheus/alertmanager"
    assert (cfg["loki"]["data_dir"], cfg["loki"]["user"], cfg["loki"]["group"]) == ("/var/lib/loki", "loki", "loki")
    assert cfg["grafana"]["db"] == "/var/lib/grafana/grafana.db"
    assert cfg["grafana"]["ready_url"] == "http://127.0.0.1:3000/grafana/api/health"
    assert "/etc/obs-tls" in json.loads(read(rendered, "packages", "config.json"))["config_paths"]


def test_prometheus_scrapes_every_enabled_component_with_metrics(rendered):
    cfg = yaml.safe_load(read(rendered, "packages", "prometheus.yml"))
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert list(jobs) == ["prometheus", "alertmanager", "node_exporter", "loki", "grafana", "stores"]
    assert jobs["grafana"]["metrics_path"] == "/grafana/metrics"
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert cfg["alerting"]["alertmanagers"][0]["path_prefix"] == "/alertmanager/"
    off = [j["job_name"] for j in yaml.safe_load(read(rendered, "logs_off", "prometheus.yml"))["scrape_configs"]]
    assert off == ["prometheus", "alertmanager", "node_exporter", "stores"]


def test_nginx_routes_to_the_enabled_components_at_their_ports(rendered):
    conf = read(rendered, "packages", "nginx.conf")
    upstreams = dict(re.findall(r"upstream obs_(\w+) \{\s+server 127\.0\.0\.1:(\d+);", conf))
    assert upstreams == {"loki": "3100", "prometheus": "9090", "alertmanager": "9093", "grafana": "3000"}
    for path in ("/prometheus/", "/alertmanager/", "/grafana/", "/grafana/api/live/", "/prometheus/api/v1/admin/"):
        assert f"location ^~ {path} {{" in conf, path
    assert "ssl_certificate /etc/obs-tls/server.crt;" in conf
    off = read(rendered, "logs_off", "nginx.conf")
    assert "obs_loki" not in off and "obs_grafana" not in off and "/loki/api/v1/push" not in off


def test_summary_prints_only_what_was_deployed_and_why_the_rest_was_not(rendered):
    _, failures, summaries = rendered
    lines = summaries["logs_off"]
    text = "\n".join(lines)
    assert "Grafana:" not in text and "/grafana/" not in text
    assert "/loki/api/v1/push" not in text
    assert "Prometheus:    https://obs.example.internal/prometheus/ (admin credential)" in lines
    assert "Not deployed: loki (no Loki release file here)" in lines
    assert "Not deployed: grafana (obs_components.grafana is false)" in lines
    full = "\n".join(summaries["packages"])
    assert "Log push:      https://obs.example.internal/loki/api/v1/push (store credentials)" in summaries["packages"]
    assert "Not deployed" not in full


def test_summary_without_the_edge_has_no_public_endpoint(rendered):
    lines = rendered[2]["no_edge"]
    assert not [line for line in lines if "https://" in line]
    assert any("the nginx edge is not deployed" in line for line in lines)
    assert "Not deployed: nginx (obs_components.nginx is false)" in lines
    assert "Not deployed: alertmanager (obs_components.alertmanager is false)" in lines
