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
import time

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
            "loki": {"enabled": True, "method": "live_snapshot", "data_dir": str(tmp_path / "loki"),
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


# ------------------------------------------------------------- live snapshot
# A writer process with Loki's file discipline (NOT Loki): it appends every
# acknowledged record to the current WAL segment; it checkpoints by writing
# wal/checkpoint.N.tmp, renaming it, then deleting the segments and the
# checkpoint it replaces; it flushes records into chunks/ (temporary name,
# then rename) and compacts chunks/index/ by writing the merged file before
# deleting its sources. A record is acknowledged (acked.log) only once written.
WRITER = r'''
import os, sys, time
root, acked_path, stop_path = sys.argv[1:4]
wal, chunks, index = (os.path.join(root, d) for d in ("wal", "chunks", os.path.join("chunks", "index")))
for d in (wal, chunks, index):
    os.makedirs(d, exist_ok=True)
acked = open(acked_path, "a", buffering=1)
seq, segment, checkpoint, memory = 0, 1, 0, []
seg = open(os.path.join(wal, "%08d" % segment), "a", buffering=1)
while not os.path.exists(stop_path):
    seq += 1
    seg.write("%d\n" % seq)
    memory.append(seq)
    acked.write("%d\n" % seq)
    if seq % 7 == 0:      # flush: the oldest in-memory records become a chunk
        name = os.path.join(chunks, "c%08d" % seq)
        with open(name + ".tmp", "w") as fh:
            fh.write("".join("%d\n" % r for r in memory[:5]))
        os.rename(name + ".tmp", name)
        with open(os.path.join(index, "i%08d" % seq), "w") as fh:
            fh.write("c%08d\n" % seq)
        del memory[:5]
    if seq % 23 == 0:     # compaction: merge the index files, then drop them
        parts = sorted(os.listdir(index))
        merged = os.path.join(index, "m%08d" % seq)
        with open(merged + ".tmp", "w") as fh:
            for p in parts:
                fh.write(open(os.path.join(index, p)).read())
        os.rename(merged + ".tmp", merged)
        for p in parts:
            os.remove(os.path.join(index, p))
    if seq % 31 == 0:     # checkpoint: what is in memory, then truncate the WAL
        checkpoint_dir = os.path.join(wal, "checkpoint.%06d" % segment)
        os.makedirs(checkpoint_dir + ".tmp")
        with open(os.path.join(checkpoint_dir + ".tmp", "data"), "w") as fh:
            fh.write("".join("%d\n" % r for r in memory))
        os.rename(checkpoint_dir + ".tmp", checkpoint_dir)
        seg.close()
        for name in os.listdir(wal):
            full = os.path.join(wal, name)
            if (name.isdigit() and int(name) <= segment) or (name.startswith("checkpoint.") and full != checkpoint_dir):
                if os.path.isdir(full):
                    for f in os.listdir(full):
                        os.remove(os.path.join(full, f))
                    # A slow disk: the superseded checkpoint stays an empty
                    # directory a while, so snapshots meet it half-deleted.
                    time.sleep(0.02)
                    os.rmdir(full)
                else:
                    os.remove(full)
        segment += 1
        seg = open(os.path.join(wal, "%08d" % segment), "a", buffering=1)
    time.sleep(0.0005)
'''


def records_in(snapshot):
    """Every record the snapshot holds: WAL segments after the newest
    checkpoint, that checkpoint, and the chunks (what a replay would see)."""
    wal = snapshot / "wal"
    checkpoints = sorted(p for p in wal.iterdir() if p.name.startswith("checkpoint.") and not p.name.endswith(".tmp"))
    newest = int(checkpoints[-1].name.split(".")[1]) if checkpoints else 0
    found = set()
    for path in wal.iterdir():
        if path.name.isdigit() and int(path.name) > newest:
            found.update(int(x) for x in path.read_text().split())
    if checkpoints:
        found.update(int(x) for x in (checkpoints[-1] / "data").read_text().split())
    for path in (snapshot / "chunks").iterdir():
        if path.is_file() and not path.name.endswith(".tmp"):
            found.update(int(x) for x in path.read_text().split())
    return found


def test_live_snapshot_holds_every_record_acknowledged_before_it(tmp_path):
    tool_module = load_tool()
    data, acked, stop = tmp_path / "data", tmp_path / "acked.log", tmp_path / "stop"
    data.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(acked), str(stop)])
    try:
        # Wait for the writer to have checkpointed and compacted at least once.
        while not acked.exists() or len(acked.read_text().split()) < 200:
            assert writer.poll() is None, "the writer died"
            time.sleep(0.01)
        rewalks = 0
        for round_no in range(40):
            before = len(acked.read_text().split())
            snap = tmp_path / f"snap{round_no}"
            stats = tool_module.hard_link_snapshot(str(data), str(snap), ["wal", "chunks"])
            rewalks += stats["rewalks"]
            missing = set(range(1, before + 1)) - records_in(snap)
            assert not missing, f"round {round_no}: {len(missing)} acknowledged records missing, e.g. {sorted(missing)[:5]}"
            assert stats["linked"] > 0 and stats["copied"] == 0
            shutil.rmtree(snap)
        print(f"40 snapshots of a live writer, {before} records, {rewalks} directories walked again")
    finally:
        stop.touch()
        writer.wait(timeout=10)
