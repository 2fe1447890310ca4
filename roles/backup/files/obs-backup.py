#!/usr/bin/python3
"""obs-backup: backups and restores of the observability server's data.

Installed by the `backup` role as /usr/local/sbin/obs-backup; its settings are
in /etc/obs-backup/config.json (rendered by the role). Python 3 stdlib only,
plus the zstd binary (and restic when the off-site copy is on).

Commands
  run                   take a backup now (what cron runs)
  verify [ARCHIVE]      check an archive's checksums (default: the newest)
  manifest [ARCHIVE]    verify, then print the archive's manifest as JSON
  list                  list the archives, newest first
  prune                 apply the retention (keep_hourly / keep_daily)
  restore [ARCHIVE]     verify, then restore the data of the archive
  check-config          validate the config file

Exit codes
  0   success
  1   failure (logged to the journal)
  2   usage or configuration error
  3   refused: not enough free disk for the archive plus the margin
  4   refused: the archive is corrupt or incomplete (checksum mismatch)
  5   refused: a service of a component to restore is still running
  75  skipped: another obs-backup run holds the lock (EX_TEMPFAIL)

Archive: <backup_dir>/obs-<UTC %Y%m%dT%H%M%SZ>.tar.zst, a tar stream
compressed by zstd. Its last member, manifest.json, lists every item and the
SHA-256 and size of every regular file. Alongside it: <archive>.sha256
(`sha256sum -c` format, the whole compressed file) and <archive>.manifest.json
(a copy of the manifest, for reading without unpacking).
"""
import argparse
import datetime as dt
import errno
import fcntl
import grp
import hashlib
import io
import json
import os
import pwd
import re
import shutil
import socket
import stat
import sqlite3
import subprocess
import sys
import syslog
import tarfile
import tempfile
import time
import urllib.request

DEFAULT_CONFIG = "/etc/obs-backup/config.json"
ARCHIVE_RE = re.compile(r"^obs-(\d{8}T\d{6}Z)\.tar\.zst$")
FORMAT = 1

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DISK, EXIT_CORRUPT, EXIT_RUNNING, EXIT_SKIPPED = 0, 1, 2, 3, 4, 5, 75


class Refused(Exception):
    """A run refused for a known reason; carries its exit code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- logging
def log(message, error=False):
    """One line to the journal (syslog tag obs-backup) and to stderr."""
    syslog.syslog(syslog.LOG_ERR if error else syslog.LOG_INFO, message)
    print(("ERROR: " if error else "") + message, file=sys.stderr)


# ---------------------------------------------------------------- helpers
def load_config(path):
    try:
        with open(path) as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:
        raise Refused(EXIT_USAGE, f"cannot read config {path}: {exc}")
    for key in ("backup_dir", "keep_hourly", "keep_daily", "free_margin_mb", "textfile_dir",
                "lock_file", "zstd_level", "components", "config_paths", "restic"):
        if key not in cfg:
            raise Refused(EXIT_USAGE, f"config {path}: missing key {key}")
    if not os.path.isabs(cfg["backup_dir"]):
        raise Refused(EXIT_USAGE, f"config {path}: backup_dir must be absolute")
    if int(cfg["keep_hourly"]) < 0 or int(cfg["keep_daily"]) < 0 or int(cfg["keep_hourly"]) + int(cfg["keep_daily"]) < 1:
        raise Refused(EXIT_USAGE, f"config {path}: keep_hourly/keep_daily must be >= 0 and keep at least one archive")
    return cfg


def unit_state(service):
    """'active', 'inactive', ... or 'missing' when systemd has no such unit."""
    if not service:
        return "missing"
    proc = subprocess.run(["systemctl", "show", "-p", "LoadState,ActiveState", "--value", service],
                          capture_output=True, text=True)
    lines = proc.stdout.split()
    if proc.returncode != 0 or not lines or lines[0] == "not-found":
        return "missing"
    return lines[1] if len(lines) > 1 else "unknown"


def tree_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_time(name):
    m = ARCHIVE_RE.match(os.path.basename(name))
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def list_archives(backup_dir):
    """Archive paths, newest first."""
    try:
        names = os.listdir(backup_dir)
    except FileNotFoundError:
        return []
    found = [(archive_time(n), n) for n in names if archive_time(n)]
    return [os.path.join(backup_dir, n) for _t, n in sorted(found, reverse=True)]


def resolve_archive(cfg, name):
    if not name:
        archives = list_archives(cfg["backup_dir"])
        if not archives:
            raise Refused(EXIT_USAGE, f"no archive in {cfg['backup_dir']}")
        return archives[0]
    path = name if os.path.isabs(name) else os.path.join(cfg["backup_dir"], name)
    if not os.path.isfile(path):
        raise Refused(EXIT_USAGE, f"no such archive: {path}")
    return path


class HashingReader:
    """File wrapper that hashes what tarfile reads from it."""

    def __init__(self, fh):
        self.fh, self.digest = fh, hashlib.sha256()

    def read(self, size=-1):
        data = self.fh.read(size)
        self.digest.update(data)
        return data


# ---------------------------------------------------------------- metrics
METRICS = [
    ("obs_backup_last_success_timestamp_seconds", "Unix time of the last successful backup."),
    ("obs_backup_last_duration_seconds", "Duration of the last successful backup."),
    ("obs_backup_last_size_bytes", "Size of the archive of the last successful backup."),
    ("obs_backup_last_run_success", "1 if the last backup run succeeded, 0 if it failed."),
    ("obs_backup_last_run_timestamp_seconds", "Unix time the last backup run ended."),
    ("obs_backup_archives", "Archives kept in the backup directory."),
]


def write_metrics(cfg, success, duration=None, size=None):
    """Writes obs_backup.prom atomically (temp file + rename) in the textfile dir.
    A failed run keeps the previous success timestamp, duration and size."""
    directory = cfg["textfile_dir"]
    path = os.path.join(directory, "obs_backup.prom")
    values = {name: 0 for name, _h in METRICS}
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and parts[0] in values:
                    values[parts[0]] = float(parts[1])
    except (OSError, ValueError):
        pass
    now = time.time()
    if success:
        values["obs_backup_last_success_timestamp_seconds"] = now
        values["obs_backup_last_duration_seconds"] = duration
        values["obs_backup_last_size_bytes"] = size
    values["obs_backup_last_run_success"] = 1 if success else 0
    values["obs_backup_last_run_timestamp_seconds"] = now
    values["obs_backup_archives"] = len(list_archives(cfg["backup_dir"]))
    lines = []
    for name, help_text in METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {float(values[name]):.3f}".rstrip("0").rstrip(".")]
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".obs_backup.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# ---------------------------------------------------------------- backup
def prometheus_snapshot(comp):
    """Asks the admin API for a TSDB snapshot (head included); returns its dir."""
    url = comp["api_url"].rstrip("/") + "/api/v1/admin/tsdb/snapshot"
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=int(comp.get("snapshot_timeout", 300))) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus snapshot failed: {body}")
    return os.path.join(comp["data_dir"], "snapshots", body["data"]["name"])


class ArchiveWriter:
    """A tar stream piped into zstd, hashing every regular file it adds."""

    def __init__(self, path, level):
        self.path = path
        self.out = open(path, "wb")
        self.proc = subprocess.Popen(["zstd", "-q", f"-{level}", "-T0", "-c"], stdin=subprocess.PIPE, stdout=self.out)
        self.tar = tarfile.open(fileobj=self.proc.stdin, mode="w|", format=tarfile.PAX_FORMAT)
        self.files = {}

    def add(self, src, arcname):
        """Adds src (file or directory tree) under arcname."""
        if os.path.isdir(src) and not os.path.islink(src):
            self._add_one(src, arcname)
            for root, dirs, files in os.walk(src):  # symlinked dirs are added as links, not followed
                dirs.sort()
                rel_root = os.path.relpath(root, src)
                for name in dirs + sorted(files):
                    rel = name if rel_root == "." else os.path.join(rel_root, name)
                    self._add_one(os.path.join(root, name), arcname + "/" + rel)
        else:
            self._add_one(src, arcname)

    def _add_one(self, full, arcname):
        self.tar.inodes = {}  # store every file whole: no hard-link members to rename on restore
        try:
            info = self.tar.gettarinfo(full, arcname)
        except FileNotFoundError:
            return  # vanished while walking (e.g. a live temp file)
        if info is None:
            return  # socket or other special file
        if info.isreg():
            with open(full, "rb") as fh:
                reader = HashingReader(fh)
                self.tar.addfile(info, reader)
            self.files[arcname] = {"sha256": reader.digest.hexdigest(), "size": info.size}
        else:
            self.tar.addfile(info)

    def add_bytes(self, arcname, data, mode=0o600):
        info = tarfile.TarInfo(arcname)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))

    def close(self):
        self.tar.close()
        self.proc.stdin.close()
        rc = self.proc.wait()
        self.out.close()
        if rc != 0:
            raise RuntimeError(f"zstd exited {rc}")

    def abort(self):
        try:
            self.proc.kill()
            self.proc.wait()
        finally:
            self.out.close()


def owner_of(path):
    st = os.stat(path)
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def plan_components(cfg):
    """What each component contributes, or why it is skipped."""
    plan = {}
    for name, comp in cfg["components"].items():
        if not comp.get("enabled", True):
            plan[name] = {"status": "skipped", "reason": "disabled in obs_components"}
            continue
        main_path = comp.get("data_dir") or comp.get("db")
        if not main_path or not os.path.exists(main_path):
            plan[name] = {"status": "skipped", "reason": f"not present on this host ({main_path} missing)"}
            continue
        plan[name] = {"status": "included"}
    present_configs = [p for p in cfg["config_paths"] if os.path.exists(p)]
    missing = [p for p in cfg["config_paths"] if not os.path.exists(p)]
    plan["config"] = {"status": "included" if present_configs else "skipped",
                      "paths": present_configs, "missing": missing}
    if not present_configs:
        plan["config"]["reason"] = "no config path present"
    return plan


def estimate_size(cfg, plan):
    total = 0
    for name, entry in plan.items():
        if entry["status"] != "included":
            continue
        if name == "config":
            total += sum(tree_size(p) for p in entry["paths"])
            continue
        comp = cfg["components"][name]
        for p in [comp.get("data_dir"), comp.get("db")] + comp.get("extra_paths", []):
            if p and os.path.exists(p):
                total += tree_size(p)
    return total


def check_free_disk(cfg, plan, margin_mb):
    os.makedirs(cfg["backup_dir"], mode=0o700, exist_ok=True)
    st = os.statvfs(cfg["backup_dir"])
    free = st.f_bavail * st.f_frsize
    estimate = estimate_size(cfg, plan)  # uncompressed: an upper bound of the archive
    need = estimate + margin_mb * 1024 * 1024
    if free < need:
        raise Refused(EXIT_DISK, (
            f"refusing to back up: {free // 2**20} MiB free in {cfg['backup_dir']}, the archive needs up to "
            f"{estimate // 2**20} MiB plus a margin of {margin_mb} MiB"))
    return free, estimate


def snapshot_dir_for(data_dir):
    """A directory beside data_dir: the same filesystem, so files hard-link."""
    parent, base = os.path.split(os.path.abspath(data_dir).rstrip("/"))
    return os.path.join(parent, f".obs-backup-{base}-snapshot")


# Passes over one directory before a snapshot gives up (the service rewrote it
# faster than it could be listed): the backup then fails, loudly.
SNAPSHOT_MAX_PASSES = 1000


def hard_link_snapshot(src, dst, order):
    """A crash-consistent image of a live data directory, without stopping
    the service (docs/backup-restore.md, "Loki: a snapshot while it runs").

    Every file is hard-linked into dst (copied when dst is on another
    filesystem): a link is the file as it is, and stays so when the service
    later deletes or replaces the name. Loki appends to its WAL segments and
    writes every other file once under a temporary name, then renames it into
    place, so a linked file is either whole or an append-only prefix that
    the WAL replay reads up to its last complete record.

    Files move between directories only from sources to destinations (WAL
    into chunks, head WAL into built and shipped index) and a source is
    deleted only after its destination is written. Top-level directories are
    therefore visited in `order`, sources first: a file that vanished from a
    source before its turn was already written to a destination visited
    later. Within one directory (a WAL checkpoint replacing segments, a
    compaction replacing index files) a listing that lost a file during the
    pass is walked again, which finds the file that replaced it."""
    started = time.monotonic()
    stats = {"linked": 0, "copied": 0, "rewalks": 0}
    shutil.rmtree(dst, ignore_errors=True)  # left by an interrupted run
    os.makedirs(dst, mode=0o700)
    state = {"link": True}

    def place(source, target):
        if state["link"]:
            try:
                os.link(source, target, follow_symlinks=False)
                stats["linked"] += 1
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                state["link"] = False  # another filesystem: copy from now on
        shutil.copy2(source, target, follow_symlinks=False)
        stats["copied"] += 1

    def walk(source_dir, target_dir):
        """Links source_dir into target_dir; True when a name left it (or a
        directory below it) while it was walked, so the caller's directory
        is walked again."""
        st = os.stat(source_dir)  # gone already: the caller walks its directory again
        os.makedirs(target_dir, exist_ok=True)
        shutil.copystat(source_dir, target_dir)
        os.chown(target_dir, st.st_uid, st.st_gid)
        def listing():
            # The directory itself gone: drop its image, the caller walks again.
            try:
                return set(os.listdir(source_dir))
            except FileNotFoundError:
                shutil.rmtree(target_dir, ignore_errors=True)
                raise

        lost_any = False
        for _ in range(SNAPSHOT_MAX_PASSES):
            lost = False
            names = sorted(listing())
            for name in names:
                source, target = os.path.join(source_dir, name), os.path.join(target_dir, name)
                try:
                    if os.path.isdir(source) and not os.path.islink(source):
                        lost |= walk(source, target)
                    elif not os.path.lexists(target):
                        place(source, target)
                except FileNotFoundError:
                    lost = True
            # A directory emptied while it was walked (a WAL checkpoint being
            # deleted once its successor is in place) may lose no file the
            # pass tried to link, yet its successor is a name the pass never
            # listed: a name that left during the pass means this directory
            # is walked again, and a directory that left is dropped from the
            # image (a half-deleted checkpoint would be the newest a replay
            # trusts). New names alone need no new pass: what they hold was
            # in a source the order visited first.
            left = set(names) - listing()
            for name in left:
                stale = os.path.join(target_dir, name)
                if os.path.isdir(stale) and not os.path.islink(stale):
                    shutil.rmtree(stale, ignore_errors=True)
            if not (lost or left):
                return lost_any
            lost_any = True
            stats["rewalks"] += 1
        raise RuntimeError(f"{source_dir} kept changing during {SNAPSHOT_MAX_PASSES} passes of the snapshot")

    rank = {name: i for i, name in enumerate(order)}
    top = sorted(os.listdir(src), key=lambda n: (rank.get(n, len(order)), n))
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    for name in top:
        source, target = os.path.join(src, name), os.path.join(dst, name)
        try:
            if os.path.isdir(source) and not os.path.islink(source):
                walk(source, target)
            else:
                place(source, target)
        except FileNotFoundError:
            pass  # a top-level file gone: Loki keeps no state in one
    stats["seconds"] = time.monotonic() - started
    return stats


def backup_component(writer, cfg, name, comp, entry, staging):
    """Adds one component's items to the archive; returns the item list."""
    items = []
    method = comp["method"]
    user, group = comp.get("user", "root"), comp.get("group", comp.get("user", "root"))
    if method == "prometheus_snapshot":
        state = unit_state(comp.get("service"))
        if state == "active":
            snap = prometheus_snapshot(comp)
            try:
                writer.add(snap, f"{name}/data")
            finally:
                shutil.rmtree(snap, ignore_errors=True)
            entry["method"] = "TSDB snapshot through the admin API (head included), deleted after the copy"
        else:
            writer.add(comp["data_dir"], f"{name}/data")
            entry["method"] = f"copy of the data directory (service {state}, nothing writes it)"
        items.append({"arcname": f"{name}/data", "path": comp["data_dir"], "type": "dir", "kind": "data",
                      "user": user, "group": group})
    elif method == "sqlite":
        dst = os.path.join(staging, f"{name}.db")
        src = sqlite3.connect(f"file:{comp['db']}?mode=ro", uri=True)
        out = sqlite3.connect(dst)
        try:
            src.backup(out)  # the online backup API: a consistent copy while the app writes
        finally:
            out.close()
            src.close()
        writer.add(dst, f"{name}/db")
        items.append({"arcname": f"{name}/db", "path": comp["db"], "type": "file", "kind": "data",
                      "user": user, "group": group})
        entry["method"] = "SQLite online backup API"
    elif method == "live_snapshot":
        snap = snapshot_dir_for(comp["data_dir"])
        try:
            stats = hard_link_snapshot(comp["data_dir"], snap, comp.get("snapshot_order", []))
            writer.add(snap, f"{name}/data")
        finally:
            shutil.rmtree(snap, ignore_errors=True)
        state = unit_state(comp.get("service"))
        entry["method"] = (f"crash-consistent snapshot while {comp.get('service') or name} stays {state}: "
                           f"{stats['linked']} files hard-linked, {stats['copied']} copied, "
                           f"{stats['rewalks']} directories walked again, in {stats['seconds']:.3f} s")
        items.append({"arcname": f"{name}/data", "path": comp["data_dir"], "type": "dir", "kind": "data",
                      "user": user, "group": group})
    elif method == "copy":
        state = unit_state(comp.get("service"))
        writer.add(comp["data_dir"], f"{name}/data")
        entry["method"] = f"copy of the data directory (service {state})"
        items.append({"arcname": f"{name}/data", "path": comp["data_dir"], "type": "dir", "kind": "data",
                      "user": user, "group": group})
    else:
        raise RuntimeError(f"{name}: unknown method {method}")
    for i, extra in enumerate(comp.get("extra_paths", [])):
        if os.path.exists(extra):
            arc = f"{name}/extra{i}"
            writer.add(extra, arc)
            u, g = owner_of(extra)
            items.append({"arcname": arc, "path": extra, "type": "dir" if os.path.isdir(extra) else "file",
                          "kind": "config", "user": u, "group": g})
    return items


def restic_copy(cfg, archive, sidecars):
    r = cfg["restic"]
    env = dict(os.environ, RESTIC_REPOSITORY=r["repository"], RESTIC_PASSWORD_FILE=r["password_file"],
               RESTIC_CACHE_DIR=r.get("cache_dir", "/var/cache/obs-backup/restic"))
    probe = subprocess.run(["restic", "cat", "config"], env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        log(f"restic: initialising repository {r['repository']}")
        subprocess.run(["restic", "init"], env=env, check=True, capture_output=True, text=True)
    subprocess.run(["restic", "backup", "--quiet", "--tag", "obs-backup", archive, *sidecars],
                   env=env, check=True, capture_output=True, text=True)
    if r.get("forget", True):
        subprocess.run(["restic", "forget", "--quiet", "--tag", "obs-backup", "--prune",
                        "--keep-hourly", str(cfg["keep_hourly"]), "--keep-daily", str(cfg["keep_daily"])],
                       env=env, check=True, capture_output=True, text=True)
    log(f"restic: copied {os.path.basename(archive)} to {r['repository']}")


def cmd_run(cfg, args):
    start = time.time()
    plan = plan_components(cfg)
    margin = cfg["free_margin_mb"] if args.free_margin_mb is None else args.free_margin_mb
    free, estimate = check_free_disk(cfg, plan, margin)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    final = os.path.join(cfg["backup_dir"], f"obs-{stamp}.tar.zst")
    if os.path.exists(final):
        raise RuntimeError(f"{final} already exists (two runs in the same second?)")
    partial = final + ".partial"
    staging = tempfile.mkdtemp(prefix=".staging-", dir=cfg["backup_dir"])
    writer = ArchiveWriter(partial, cfg["zstd_level"])
    manifest = {"format": FORMAT, "created": stamp, "host": socket.getfqdn(), "components": {}, "items": [],
                "files": {}}
    try:
        for name, entry in plan.items():
            if entry["status"] != "included":
                log(f"{name}: skipped, {entry.get('reason')}")
                manifest["components"][name] = entry
                continue
            if name == "config":
                for i, p in enumerate(entry["paths"]):
                    arc = "config/" + p.strip("/")
                    writer.add(p, arc)
                    u, g = owner_of(p)
                    manifest["items"].append({"component": "config", "arcname": arc, "path": p,
                                              "type": "dir" if os.path.isdir(p) else "file",
                                              "kind": "config", "user": u, "group": g})
                entry["method"] = "file copy"
                manifest["components"]["config"] = entry
                log(f"config: {len(entry['paths'])} paths, missing: {', '.join(entry['missing']) or 'none'}")
                continue
            comp = cfg["components"][name]
            items = backup_component(writer, cfg, name, comp, entry, staging)
            for item in items:
                item["component"] = name
            manifest["items"].extend(items)
            entry["service"] = comp.get("service")
            manifest["components"][name] = entry
            log(f"{name}: included ({entry['method']})")
        manifest["files"] = writer.files
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        writer.add_bytes("manifest.json", data)
        writer.close()
    except BaseException:
        writer.abort()
        for p in (partial,):
            if os.path.exists(p):
                os.unlink(p)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    os.chmod(partial, 0o600)
    digest = sha256_file(partial)
    with open(final + ".manifest.json", "wb") as fh:
        fh.write(data)
    os.chmod(final + ".manifest.json", 0o600)
    with open(final + ".sha256", "w") as fh:
        fh.write(f"{digest}  {os.path.basename(final)}\n")
    os.chmod(final + ".sha256", 0o600)
    os.replace(partial, final)
    size = os.path.getsize(final)
    if cfg["restic"].get("enabled"):
        restic_copy(cfg, final, [final + ".sha256", final + ".manifest.json"])
    pruned = prune(cfg, cfg["backup_dir"])
    duration = time.time() - start
    write_metrics(cfg, True, duration, size)
    log(f"backup done: {final} ({size} bytes, {duration:.1f} s, {len(pruned)} old archive(s) pruned)")
    summary = {"archive": final, "size_bytes": size, "duration_seconds": round(duration, 3), "pruned": pruned,
               "components": {k: v["status"] for k, v in manifest["components"].items()}}
    if args.json:
        print(json.dumps(summary))
    return EXIT_OK


# ---------------------------------------------------------------- retention
def retention_keep(paths, keep_hourly, keep_daily):
    """Which archives to keep, like restic's --keep-hourly/--keep-daily: walking
    from the newest, keep the newest archive of each of the `keep_hourly` most
    recent UTC hours that have an archive, and of each of the `keep_daily` most
    recent UTC days that have one. Everything else is pruned."""
    ordered = sorted(paths, key=archive_time, reverse=True)
    keep = set()
    for fmt, count in (("%Y%m%d%H", keep_hourly), ("%Y%m%d", keep_daily)):
        seen = []
        for p in ordered:
            bucket = archive_time(p).strftime(fmt)
            if bucket in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(bucket)
            keep.add(p)
    return keep


def prune(cfg, backup_dir):
    archives = list_archives(backup_dir)
    keep = retention_keep(archives, int(cfg["keep_hourly"]), int(cfg["keep_daily"]))
    pruned = []
    for p in archives:
        if p in keep:
            continue
        for f in (p, p + ".sha256", p + ".manifest.json"):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        pruned.append(os.path.basename(p))
    if pruned:
        log(f"retention: pruned {len(pruned)} archive(s) in {backup_dir}: {', '.join(pruned)}")
    return pruned


def cmd_prune(cfg, args):
    pruned = prune(cfg, args.backup_dir or cfg["backup_dir"])
    print(json.dumps({"pruned": pruned}))
    return EXIT_OK


def cmd_list(cfg, args):
    for p in list_archives(args.backup_dir or cfg["backup_dir"]):
        print(p)
    return EXIT_OK


# ---------------------------------------------------------------- verify
def open_archive_stream(path):
    proc = subprocess.Popen(["zstd", "-q", "-d", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tar = tarfile.open(fileobj=proc.stdout, mode="r|")
    return proc, tar


def verify(path):
    """Checks the sidecar checksum (when present), then every member against the
    manifest inside the archive. Returns the manifest; raises Refused(4)."""
    name = os.path.basename(path)
    if not ARCHIVE_RE.match(name):
        raise Refused(EXIT_USAGE, f"{path} is not an obs-backup archive name (obs-<UTC timestamp>.tar.zst)")
    sidecar = path + ".sha256"
    if os.path.exists(sidecar):
        with open(sidecar) as fh:
            expected = fh.read().split()[0]
        actual = sha256_file(path)
        if actual != expected:
            raise Refused(EXIT_CORRUPT, f"{name} is corrupt: its SHA-256 is {actual}, {name}.sha256 says {expected}")
    seen, manifest = {}, None
    proc = subprocess.Popen(["zstd", "-q", "-d", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        tar = tarfile.open(fileobj=proc.stdout, mode="r|")
        with tar:
            for member in tar:
                if member.name == "manifest.json":
                    manifest = json.load(tar.extractfile(member))
                elif member.isreg():
                    digest = hashlib.sha256()
                    fh = tar.extractfile(member)
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
                    seen[member.name] = digest.hexdigest()
        stderr = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise Refused(EXIT_CORRUPT, f"{name} is corrupt: zstd cannot decompress it ({stderr})")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        proc.kill()
        proc.wait()
        stderr = proc.stderr.read().decode(errors="replace").strip()
        cause = f"zstd: {stderr}" if stderr else f"tar: {exc}"
        raise Refused(EXIT_CORRUPT, f"{name} is corrupt: cannot read the archive ({cause})")
    if manifest is None:
        raise Refused(EXIT_CORRUPT, f"{name} is corrupt or incomplete: no manifest.json inside")
    bad = [f for f, meta in manifest["files"].items() if seen.get(f) != meta["sha256"]]
    extra = sorted(set(seen) - set(manifest["files"]))
    if bad or extra:
        raise Refused(EXIT_CORRUPT, (f"{name} is corrupt: {len(bad)} file(s) differ from or are missing against "
                                     f"the manifest (first: {bad[:3]}), {len(extra)} unlisted (first: {extra[:3]})"))
    return manifest


def cmd_verify(cfg, args):
    path = resolve_archive(cfg, args.archive)
    manifest = verify(path)
    log(f"verified {path}: {len(manifest['files'])} files match the manifest")
    return EXIT_OK


def cmd_manifest(cfg, args):
    path = resolve_archive(cfg, args.archive)
    manifest = verify(path)
    manifest["archive"] = path
    print(json.dumps(manifest))
    return EXIT_OK


# ---------------------------------------------------------------- restore
def safe_relpath(name):
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise Refused(EXIT_CORRUPT, f"unsafe path in archive: {name}")
    return name


def cmd_restore(cfg, args):
    path = resolve_archive(cfg, args.archive)
    manifest = verify(path)
    wanted = set(args.components.split(",")) if args.components else None
    items = [i for i in manifest["items"]
             if (wanted is None or i["component"] in wanted) and (i["kind"] == "data" or args.with_configs)]
    if not items:
        raise Refused(EXIT_USAGE, f"nothing to restore from {os.path.basename(path)} "
                                  f"(components {sorted(wanted) if wanted else 'all'}, with configs: {args.with_configs})")
    comps = sorted({i["component"] for i in items})
    running = []
    for c in comps:
        service = cfg["components"].get(c, {}).get("service") or manifest["components"].get(c, {}).get("service")
        if service and unit_state(service) in ("active", "activating", "reloading"):
            running.append(service)
    if running:
        raise Refused(EXIT_RUNNING, f"stop these services before a restore: {', '.join(running)}")
    # Stage every item next to its target (same filesystem), then swap.
    staged = {}
    for item in items:
        parent = os.path.dirname(item["path"].rstrip("/")) or "/"
        os.makedirs(parent, exist_ok=True)
        staged[item["arcname"]] = item["path"].rstrip("/") + ".obs-restore"
        if os.path.isdir(staged[item["arcname"]]):  # left over by an interrupted restore
            shutil.rmtree(staged[item["arcname"]])
        elif os.path.lexists(staged[item["arcname"]]):
            os.unlink(staged[item["arcname"]])
    prefixes = sorted(staged, key=len, reverse=True)
    proc, tar = open_archive_stream(path)
    with tar:
        for member in tar:
            safe_relpath(member.name)
            arc = next((p for p in prefixes if member.name == p or member.name.startswith(p + "/")), None)
            if arc is None:
                continue
            target = staged[arc] + member.name[len(arc):]
            member.name = os.path.basename(target)
            tar.extract(member, os.path.dirname(target), set_attrs=True)
    if proc.wait() != 0:
        raise Refused(EXIT_CORRUPT, f"{os.path.basename(path)}: zstd failed while restoring")
    restored = []
    for item in items:
        target, new = item["path"].rstrip("/"), staged[item["arcname"]]
        if not os.path.lexists(new):
            continue
        old = target + ".obs-old"
        if os.path.lexists(target):
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(old, ignore_errors=True)
                os.rename(target, old)
            else:
                os.replace(target, old)
        os.rename(new, target)
        if item["type"] == "file":  # SQLite: stale journals of the replaced DB must not be replayed
            for suffix in ("-wal", "-shm", "-journal"):
                if os.path.lexists(target + suffix):
                    os.unlink(target + suffix)
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old)
        elif os.path.lexists(old):
            os.unlink(old)
        comp = cfg["components"].get(item["component"], {})
        user = comp.get("user", item["user"]) if item["kind"] == "data" else item["user"]
        group = comp.get("group", comp.get("user", item["group"])) if item["kind"] == "data" else item["group"]
        try:
            pwd.getpwnam(user)
            grp.getgrnam(group)
        except KeyError:
            log(f"{target}: owner {user}:{group} does not exist here, left as restored", error=True)
            user = group = None
        restored.append({"component": item["component"], "path": target, "type": item["type"],
                         "kind": item["kind"], "user": user, "group": group})
        log(f"restored {target} from {os.path.basename(path)}")
    print(json.dumps({"archive": path, "restored": restored, "components": comps}))
    return EXIT_OK


def cmd_check_config(cfg, args):
    print(f"config OK: {len(cfg['components'])} components, {len(cfg['config_paths'])} config paths")
    return EXIT_OK


# ---------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="obs-backup", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="take a backup now")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--free-margin-mb", type=int, help="override free_margin_mb for this run")
    for name in ("verify", "manifest"):
        sub.add_parser(name).add_argument("archive", nargs="?", help="archive name or path (default: newest)")
    for name in ("list", "prune"):
        sub.add_parser(name).add_argument("--backup-dir", help="another directory of archives")
    p = sub.add_parser("restore")
    p.add_argument("archive", nargs="?", help="archive name or path (default: newest)")
    p.add_argument("--components", help="comma-separated components (default: every one in the archive)")
    p.add_argument("--with-configs", action="store_true", help="also restore configs and TLS material")
    sub.add_parser("check-config")
    args = parser.parse_args(argv)
    syslog.openlog("obs-backup", syslog.LOG_PID, syslog.LOG_DAEMON)
    commands = {"run": cmd_run, "verify": cmd_verify, "manifest": cmd_manifest, "list": cmd_list,
                "prune": cmd_prune, "restore": cmd_restore, "check-config": cmd_check_config}
    cfg = None
    try:
        cfg = load_config(args.config)
        if args.command in ("run", "prune", "restore"):
            lock = open(cfg["lock_file"], "a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    log(f"skipped: another obs-backup run holds {cfg['lock_file']}")
                    return EXIT_SKIPPED
                raise
        return commands[args.command](cfg, args)
    except Refused as exc:
        log(str(exc), error=True)
        if args.command == "run" and cfg is not None and exc.code == EXIT_DISK:
            write_metrics(cfg, False)
        return exc.code
    except Exception as exc:  # noqa: BLE001 - every failure is logged and exits 1
        log(f"{args.command} failed: {type(exc).__name__}: {exc}", error=True)
        if args.command == "run" and cfg is not None:
            try:
                write_metrics(cfg, False)
            except Exception as mexc:  # noqa: BLE001
                log(f"cannot write the metrics: {mexc}", error=True)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
