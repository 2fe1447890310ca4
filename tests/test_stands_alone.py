"""The project stands on its own: nothing in the tree cites a file outside the
repository or a path of a development machine, since a user who clones it has
neither. What the users and the tests need to know about the machines the
suite runs on is in docs/testing.md.

Scans every file git tracks (the store clients' npm installs and build output
excepted) for: the name of an out-of-tree notes file, a parent directory's
shared folder, and absolute home or work directories of a controller (/home/,
/root/, /Users/, /work/, /srv/loki-build). Test containers' own scratch paths
use /var/tmp or /run, so no exception is needed; this file, which names the
patterns, is the only one not scanned."""
import re
import subprocess

import pytest

from conftest import ROOT

FORBIDDEN = {
    "an out-of-tree notes file": re.compile(re.escape("FACTS" + ".md")),
    "a parent directory's shared folder": re.compile(re.escape(".." + "/shared")),
    "a home directory": re.compile(r"(?<![\w.~-])/(home/[A-Za-z_][\w.-]*|root|Users)/"),
    "a development machine's work tree": re.compile(r"(?<![\w.~-])/work/"),
    "a development machine's build directory": re.compile(r"/srv/" + "loki-build"),
}
EXCLUDED = re.compile(r"^clients/(.*/)?(node_modules|dist)/")
SELF = "tests/test_stands_alone.py"


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0")
            if f and not EXCLUDED.match(f) and f != SELF and (ROOT / f).is_file()]


def findings():
    found = []
    for name in tracked_files():
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    found.append(f"{name}:{number}: {what}: {line.strip()[:120]}")
    return found


def test_the_tree_is_scanned():
    files = tracked_files()
    assert "README.md" in files and "docs/testing.md" in files
    assert not [f for f in files if EXCLUDED.match(f)]


def test_no_file_outside_the_repository_or_machine_path_is_cited():
    found = findings()
    assert not found, "the tree leans on files or paths it does not ship (put what is needed in docs/testing.md):\n" + "\n".join(found)


@pytest.mark.parametrize("line, expected", [
    ("see " + "FACTS" + ".md for why", True),
    ("cat " + ".." + "/shared/notes", True),
    ("cd /home/alice/obs", True),
    ("dest: /root/pusher.json", True),
    ("open /Users/bob/x", True),
    ("cd /work/main", True),
    ("unzip /srv/" + "loki-build/out.zip", True),
    ("OBS_REAL_ARTIFACTS_DIR=/srv/artifacts make molecule", False),
    ("artifact_cache_dir: ~/.cache/obs-artifacts", False),
    ("path: /var/tmp/pusher.json", False),
    ("ReadWritePaths=/var/lib/loki", False),
    ("https://example.invalid/work/x", False),
])
def test_the_patterns_catch_what_they_should(line, expected):
    assert any(p.search(line) for p in FORBIDDEN.values()) == expected, line
