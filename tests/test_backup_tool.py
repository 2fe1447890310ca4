"""Unit tests of roles/backup/files/obs-backup.py on the CI host: a backup of
fixture directories and a real SQLite file, verify, corrupt-archive refusal,
restore, retention counts and the lock. Needs the zstd binary (skipped without)."""
import fcntl
import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from conftest import ROOT

TOOL = ROOT / "roles" / "backup" / "files" / "obs-backup.py"
pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd binary missing")


def load_tool():
    spec = importlib.util.spec_from_file_location("obs_backup", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def site(tmp_path):
    (tmp_path / "loki" / "wal").mkdir(parents=True)
    (tmp_path / "loki" / "wal" / "0001").write_text("TEST FIXTURE wal segment\n")
    (tmp_path / "etc" / "prom").mkdir(parents=True)
    (tmp_path / "etc" / "prom" / "prometheus.yml").write_text("global: {}\n")
    (tmp_path / "grafana").mkdir()
    db = sqlite3.connect(tmp_path / "grafana" / "grafana.db")
    db.execute("CREATE TABLE fixture (v TEXT)")
    db.execute("INSERT INTO fixture VALUES ('known row')")
    db.commit()
    db.close()
    cfg = {
        "backup_dir": str(tmp_path / "backups"), "keep_hourly": 3, "keep_daily": 3, "free_margin_mb": 1,
        "zstd_level": 3, "textfile_dir": str(tmp_path / "textfile"), "lock_file": str(tmp_path / "lock"),
        "components": {
            "prometheus": {"enabled": True, "method": "prometheus_snapshot", "api_url": "http://127.0.0.1:9/p",
                           "data_dir": str(tmp_path / "absent"), "service": "", "user": "root"},
            "loki": {"enabled": True, "method": "stop_copy", "data_dir": str(tmp_path / "loki"),
                     "service": "", "user": "root"},
            "grafana": {"enabled": True, "method": "sqlite", "db": str(tmp_path / "grafana" / "grafana.db"),
                        "service": "", "user": "root"},
        },
        "config_paths": [str(tmp_path / "etc" / "prom")],
        "restic": {"enabled": False},
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


def tool(site, *args):
    return subprocess.run([sys.executable, str(TOOL), "--config", str(site / "config.json"), *args],
                          capture_output=True, text=True)


def test_backup_verify_restore_roundtrip(site):
    run = tool(site, "run", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["components"] == {"prometheus": "skipped", "loki": "included", "grafana": "included",
                                     "config": "included"}
    metrics = (site / "textfile" / "obs_backup.prom").read_text()
    assert "obs_backup_last_run_success 1" in metrics
    assert tool(site, "verify").returncode == 0

    shutil.rmtree(site / "loki")
    (site / "grafana" / "grafana.db").unlink()
    restore = tool(site, "restore")
    assert restore.returncode == 0, restore.stderr
    assert (site / "loki" / "wal" / "0001").read_text() == "TEST FIXTURE wal segment\n"
    rows = sqlite3.connect(site / "grafana" / "grafana.db").execute("SELECT v FROM fixture").fetchall()
    assert rows == [("known row",)]


def test_corrupt_archive_is_refused(site):
    assert tool(site, "run").returncode == 0
    archive = next((site / "backups").glob("obs-*.tar.zst"))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = tool(site, "restore")
    assert result.returncode == 4
    assert "is corrupt" in result.stderr
    # Without the sidecar, the content checks still catch it.
    archive.with_name(archive.name + ".sha256").unlink()
    result = tool(site, "verify")
    assert result.returncode == 4 and "is corrupt" in result.stderr


def test_retention_keeps_exact_counts():
    mod = load_tool()
    names = ["20260101T100000Z", "20260101T103000Z", "20260101T110000Z", "20260101T235900Z",
             "20260102T080000Z", "20260102T082000Z", "20260102T090000Z", "20260103T000000Z", "20260103T001500Z"]
    paths = [f"/b/obs-{n}.tar.zst" for n in names]
    kept = sorted(p.split("obs-")[1][:16] for p in mod.retention_keep(paths, 3, 3))
    assert kept == ["20260101T235900Z", "20260102T082000Z", "20260102T090000Z", "20260103T001500Z"]
    assert len(mod.retention_keep(paths, 0, 1)) == 1
    assert len(mod.retention_keep(paths, 24, 7)) == len({n[:11] for n in names})  # one per hour present


def test_concurrent_run_is_skipped(site):
    with open(site / "lock", "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = tool(site, "run")
    assert result.returncode == 75
    assert "skipped: another obs-backup run holds" in result.stderr
    assert not (site / "backups").exists() or not list((site / "backups").glob("obs-*"))


def test_not_enough_disk_is_refused(site):
    result = tool(site, "run", "--free-margin-mb", str(10**9))
    assert result.returncode == 3
    assert "refusing to back up" in result.stderr
    assert "obs_backup_last_run_success 0" in (site / "textfile" / "obs_backup.prom").read_text()
