#!/usr/bin/env python3
"""Runs the test suite: Molecule scenarios several at a time, and beside them
the image builds, lint, pytest and the client tests.

Usage:
  tools/run_suite.py [RUN ...]          images + scenarios (`make molecule`)
  tools/run_suite.py --all [RUN ...]    images, lint, pytest, clients and scenarios (`make test`)

A RUN is a scenario name (molecule/NAME/molecule.yml), or NAME@SUITE to run
scenario NAME on the image localhost/obs-test:SUITE (default: bookworm).
Without a RUN, every scenario on disk runs, plus SECOND_PLATFORM_RUNS
(default "common@trixie"), and the suite fails if a scenario on disk was not
run.

MOLECULE_JOBS (default 3) scenarios run at once, longest first by the wall
times recorded in molecule/durations.txt (a run missing there counts as the
longest). Two runs of one scenario never overlap: they share container
names. A scenario starts as soon as its image is built; lint, pytest and the
client tests need no container slot and run while the images build and the
containers boot, so the CPU is not idle while the scenarios wait.

Each job's output goes to reports/suite/JOB.log and is printed whole when the
job ends, never interleaved. The suite ends with a table of every job's
result and wall time, the machine's busy CPU-seconds over the run (how close
to CPU-bound it was), then `molecule: N passed, N failed`. Lint and pytest run
at nice STATIC_NICE: they have slack, the longest scenario has none.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATIONS = ROOT / "molecule" / "durations.txt"
LOG_DIR = ROOT / "reports" / "suite"
DEFAULT_JOBS = 3
STATIC_NICE = 10
VENV_BIN = ROOT / ".venv" / "bin"


def cpu_busy_seconds():
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def scenarios_on_disk():
    return sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def recorded_durations():
    """{run: seconds} from molecule/durations.txt ("RUN SECONDS" lines, # comments)."""
    table = {}
    if DURATIONS.exists():
        for line in DURATIONS.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) == 2 and fields[1].isdigit():
                table[fields[0]] = int(fields[1])
    return table


def split_run(run):
    name, _, suite = run.partition("@")
    return name, suite or "bookworm"


class Job:
    def __init__(self, name, argv, needs=(), scenario=None, cwd=ROOT, env=None, nice=0):
        self.name, self.argv, self.needs, self.scenario = name, argv, set(needs), scenario
        self.cwd, self.env, self.nice = cwd, env or {}, nice
        self.proc = self.start = None
        self.result, self.seconds = "NOT RUN", 0

    @property
    def log_path(self):
        return LOG_DIR / (self.name.replace("@", "-").replace(":", "-").replace("/", "-") + ".log")


def build_jobs(runs, static):
    suites = sorted({split_run(r)[1] for r in runs} | ({"bookworm"} if static else set()))
    jobs = [Job(f"image:{s}", [str(ROOT / "tools" / "build-test-image.sh"), s]) for s in suites]
    if static:
        # The suite is CPU-bound on a 2-core machine and its wall time is the
        # longest scenario's: lint and pytest, which finish long before it,
        # yield the CPU to the scenarios (STATIC_NICE).
        jobs.append(Job("lint", ["sh", "-c", f"{VENV_BIN}/yamllint --strict . && {VENV_BIN}/ansible-lint --profile production"],
                        nice=STATIC_NICE))
        # The podman connection tests boot a container from the image.
        jobs.append(Job("pytest", [str(VENV_BIN / "pytest"), "-q", "tests"], needs=["image:bookworm"], nice=STATIC_NICE))
        if (ROOT / "clients" / "package.json").exists():
            # From the lockfile, as CI does, then every workspace's tests
            # (the browser tests drive Debian's Chromium).
            jobs.append(Job("clients", ["sh", "-c", "npm ci --no-audit --no-fund && npm test"], cwd=ROOT / "clients"))
    has_clients = any(j.name == "clients" for j in jobs)
    for run in runs:
        name, suite = split_run(run)
        needs = [f"image:{suite}"]
        if name == "clients" and has_clients:
            needs.append("clients")  # it installs the clients' dependencies (npm ci) first
        jobs.append(Job(f"molecule:{run}", [str(VENV_BIN / "molecule"), "test", "-s", name],
                        needs=needs, scenario=run, env={"OBS_TEST_SUITE": suite}))
    return jobs


class Suite:
    def __init__(self, jobs, scenario_slots):
        known = recorded_durations()
        longest = max(known.values(), default=0) + 1
        order = {j.name: -known.get(j.scenario, longest) if j.scenario else -10**9 for j in jobs}
        # Non-scenario jobs first (they need no slot), then scenarios longest first.
        self.pending = sorted(jobs, key=lambda j: order[j.name])
        self.jobs, self.slots = list(jobs), scenario_slots
        self.running, self.done = [], {}

    def _ready(self, job):
        if any(n not in self.done for n in job.needs):
            return False
        if job.scenario is None:
            return True
        scenarios = [j for j in self.running if j.scenario]
        busy = {split_run(j.scenario)[0] for j in scenarios}
        return len(scenarios) < self.slots and split_run(job.scenario)[0] not in busy

    def _start(self, job):
        job.start = time.monotonic()
        with open(job.log_path, "wb") as log:
            job.proc = subprocess.Popen(job.argv, cwd=job.cwd, env=dict(os.environ, **job.env), stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=(lambda: os.nice(job.nice)) if job.nice else None)
        if job.nice:
            print(f"=== {job.name} runs at nice {job.nice}", flush=True)
        self.pending.remove(job)
        self.running.append(job)
        print(f"=== start {job.name}; running: {', '.join(j.name for j in self.running)}", flush=True)

    def _finish(self, job, returncode):
        job.seconds = round(time.monotonic() - job.start)
        job.result = "PASS" if returncode == 0 else "FAIL"
        self.running.remove(job)
        self.done[job.name] = job.result
        sys.stdout.write(f"=== {job.name}: {job.result} in {job.seconds} s\n")
        sys.stdout.flush()
        with open(job.log_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                sys.stdout.buffer.write(block)
        sys.stdout.write(f"=== end of {job.name}: {job.result}\n")
        sys.stdout.flush()

    def _skip_blocked(self):
        # A job whose prerequisite failed cannot run: report it, do not wait.
        for job in list(self.pending):
            failed = [n for n in job.needs if self.done.get(n) not in (None, "PASS")]
            if failed:
                self.pending.remove(job)
                job.result = "SKIP"
                self.done[job.name] = "SKIP"
                print(f"=== {job.name}: SKIP, {', '.join(failed)} did not pass", flush=True)

    def run(self):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        while self.pending or self.running:
            self._skip_blocked()
            for job in list(self.pending):
                if self._ready(job):
                    self._start(job)
            if not self.running:
                # Nothing runs and nothing can start: a prerequisite is missing.
                for job in self.pending:
                    job.result = self.done[job.name] = "SKIP"
                    print(f"=== {job.name}: SKIP, needs {', '.join(sorted(job.needs - set(self.done)))}", flush=True)
                self.pending = []
                break
            pid, status = os.wait()
            for job in list(self.running):
                if job.proc.pid == pid:
                    job.proc.returncode = os.waitstatus_to_exitcode(status)
                    self._finish(job, job.proc.returncode)

    def stop(self):
        for job in self.running:
            try:
                os.killpg(job.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def main(argv):
    static = "--all" in argv
    explicit = [a for a in argv if a != "--all"]
    on_disk = scenarios_on_disk()
    runs = explicit or on_disk + os.environ.get("SECOND_PLATFORM_RUNS", "common@trixie").split()
    for run in runs:
        if split_run(run)[0] not in on_disk:
            print(f"no such scenario: {split_run(run)[0]}", file=sys.stderr)
            return 2
    slots = int(os.environ.get("MOLECULE_JOBS") or DEFAULT_JOBS)
    if slots < 1:
        print(f"MOLECULE_JOBS={slots}: expected 1 or more", file=sys.stderr)
        return 2
    jobs = build_jobs(runs, static)
    print(f"=== {len(runs)} scenario runs, {slots} at a time: {' '.join(runs)}", flush=True)
    suite = Suite(jobs, slots)
    signal.signal(signal.SIGTERM, lambda *_: (suite.stop(), sys.exit(143)))
    start = time.monotonic()
    busy_before, total_before = cpu_busy_seconds()
    try:
        suite.run()
    except KeyboardInterrupt:
        suite.stop()
        raise

    print("=== suite summary")
    print(f"{'job':<26} {'result':<7} {'wall time':>9}")
    for job in jobs:
        print(f"{job.name:<26} {job.result:<7} {job.seconds:>7} s")
    print(f"{'whole suite (' + str(slots) + ' scenarios at a time)':<34} {round(time.monotonic() - start):>7} s")
    busy_after, total_after = cpu_busy_seconds()
    busy, total = busy_after - busy_before, total_after - total_before
    # Whatever else ran on the machine meanwhile is counted too.
    print(f"machine CPU busy: {busy:.0f} of {total:.0f} CPU-seconds ({100 * busy / max(total, 1):.0f} %, {os.cpu_count()} CPUs)")
    scenario_jobs = [j for j in jobs if j.scenario]
    failed = [j.scenario for j in scenario_jobs if j.result != "PASS"]
    not_run = []
    if not explicit:
        ran = {split_run(j.scenario)[0] for j in scenario_jobs if j.result in ("PASS", "FAIL")}
        not_run = [s for s in on_disk if s not in ran]
        if not_run:
            print(f"scenarios on disk but not run: {' '.join(not_run)}", file=sys.stderr)
    other_failed = [j.name for j in jobs if not j.scenario and j.result != "PASS"]
    if other_failed:
        print(f"failed jobs: {' '.join(other_failed)}")
    if failed:
        print(f"failed scenarios: {' '.join(failed)}")
    passed = sum(1 for j in scenario_jobs if j.result == "PASS")
    print(f"molecule: {passed} passed, {len(failed) + len(not_run)} failed")
    return 0 if not failed and not not_run and not other_failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
