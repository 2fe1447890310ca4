"""Every alert's runbook link lands on a heading that exists.

Alert rules carry a `runbook_url` annotation pointing at
`docs/runbook.md#<anchor>`. This module collects every such URL in the stack's
templates (templates/**, and the roles' templates such as Loki's ruler rules),
plus the anchors listed in templates/prometheus/RUNBOOK_ANCHORS.txt when that
file exists, and checks each anchor against the headings of docs/runbook.md,
slugged by GitHub's rules. It also checks the docs' own links between pages.
"""
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT

RUNBOOK = ROOT / "docs" / "runbook.md"
ANCHORS_FILE = ROOT / "templates" / "prometheus" / "RUNBOOK_ANCHORS.txt"
RUNBOOK_URL = re.compile(r"""runbook_url["']?\s*[:=]\s*["']?([^"'\s,}]+)""")


def github_slug(heading: str) -> str:
    """GitHub's heading anchor (github-slugger): the rendered text, lower-cased,
    punctuation removed except hyphens and underscores, each space a hyphen.
    Inline code keeps its text; a link keeps its text; images vanish."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set:
    """Anchors GitHub generates for a page's ATX headings (outside fenced code),
    duplicates suffixed -1, -2, ...; plus explicit <a id|name="..."> anchors."""
    found, seen = set(), Counter()
    fence = None
    for line in markdown.splitlines():
        m = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if m:
            if fence is None:
                fence = m.group(1)[0]
            elif m.group(1)[0] == fence:
                fence = None
            continue
        if fence:
            continue
        h = re.match(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if h:
            slug = github_slug(h.group(1))
            found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
        found.update(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", line))
    return found


def runbook_urls():
    """(file, url) for every runbook_url in the stack's templates."""
    files = [p for p in (ROOT / "templates").rglob("*") if p.is_file()]
    files += [p for p in (ROOT / "roles").glob("*/templates/**/*") if p.is_file()]
    out = []
    for path in sorted(files):
        if path.suffix not in {".yml", ".yaml", ".j2", ".json"}:
            continue
        for url in RUNBOOK_URL.findall(path.read_text(errors="replace")):
            out.append((path.relative_to(ROOT).as_posix(), url))
    return out


def listed_anchors():
    if not ANCHORS_FILE.exists():
        return []
    out = []
    for line in ANCHORS_FILE.read_text().splitlines():
        line = line.split(None, 1)[0] if line.strip() else ""
        if not line or line.startswith("//") or (line.startswith("#") and not re.match(r"^#[\w-]+$", line)):
            continue
        out.append(line.rsplit("#", 1)[-1])
    return out


def test_slug_rules():
    assert github_slug("Loki not receiving logs") == "loki-not-receiving-logs"
    assert github_slug("4. Post-deploy verification (the gate)") == "4-post-deploy-verification-the-gate"
    assert github_slug("`obs-backup` fails!") == "obs-backup-fails"
    assert github_slug("Disk > 90% & filling") == "disk--90--filling"
    assert github_slug("See [the plan](dr-plan.md)") == "see-the-plan"
    assert github_slug("TLS_cert expiring") == "tls_cert-expiring"
    page = "# A\n## Same\n```sh\n# not a heading\n```\n## Same\n### B ###\n<a id=\"custom\"></a>\n"
    assert anchors(page) == {"a", "same", "same-1", "b", "custom"}


def test_every_runbook_url_lands_on_a_heading():
    have = anchors(RUNBOOK.read_text())
    problems = []
    for path, url in runbook_urls():
        if "runbook.md#" not in url:
            problems.append(f"{path}: runbook_url {url!r} does not point at docs/runbook.md#<heading>")
        elif url.rsplit("#", 1)[1] not in have:
            problems.append(f"{path}: {url} has no heading in docs/runbook.md")
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(not ANCHORS_FILE.exists(), reason="templates/prometheus/RUNBOOK_ANCHORS.txt not present")
def test_every_listed_anchor_lands_on_a_heading():
    have = anchors(RUNBOOK.read_text())
    missing = [a for a in listed_anchors() if a not in have]
    assert not missing, f"anchors listed in {ANCHORS_FILE.name} without a heading in docs/runbook.md: {missing}"


DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_doc_links_resolve(page):
    """Relative links between the docs point at files that exist and, with a
    fragment, at headings that exist."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s):, mailto:
        file_part, _, fragment = target.partition("#")
        dest = page if not file_part else (page.parent / file_part).resolve()
        if not dest.exists():
            problems.append(f"{target}: {Path(dest).relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} missing")
            continue
        if fragment and dest.suffix == ".md" and fragment not in anchors(dest.read_text()):
            problems.append(f"{target}: no heading #{fragment} in {dest.name}")
    assert not problems, f"{page.name}: " + "; ".join(problems)
