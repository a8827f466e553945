#!/usr/bin/env python3
"""The fault matrix (docs/reliability.md): every fault injected in every
phase of a real job, against a real Docker engine, real restic and a real
rclone WebDAV server on loopback, then the promises of SPEC §5 asserted.

    phases: pre-hook stop backup start post-hook forget sync restore
    faults: child-kill      SIGKILL of the phase's own child process
            cli-term        SIGTERM of the in-process CLI
            cli-kill        SIGKILL of the in-process CLI, then `recover`
            daemon-term     SIGTERM of stackbackfs running the job
            daemon-kill     SIGKILL of stackbackfs, then unmount + `recover`
            docker-stop     the Docker engine stopped (SIGTERM), started again, `recover`
            fs-full         the repository's filesystem (a tmpfs) filled up
            remote-kill     the WebDAV server SIGKILLed (sync and restore only)
            restic-missing  restic removed from PATH

Invariants checked after each cell, once the fault is cleared (engine back,
space freed, server back, restic back) and `recover` ran where the process
or the engine died: the job ended (no hang); both stacks that were running
run again; the journal is empty; `restic check` passes; the dirlist is
byte for byte what it was; a sync or restore left the local repository
byte for byte what it was; a failed job printed a line naming the stack
(or the remote), the stage and the cause.

How a phase is made observable (so the fault lands inside it): the stack's
hooks record their PID and sleep when the cell targets them; its container
ignores SIGTERM for a few seconds when the stop is targeted; a fresh random
file makes the backup phase last; the others are seen as children of the
job's process (docker-compose start, restic forget, rclone sync) in /proc.

Everything runs against a private Docker engine (its own socket, data and
exec roots, no bridge), so stopping it never disturbs other tests or the
developer's containers, and on a tmpfs repository (mounting needs root).

usage: matrix.py [--faults F,F] [--phases P,P] [--keep]
Environment: SB_BUILD (build directory), SB_SRC (source directory).
Prints the table `fault x phase` and a final "N passed, N failed" line;
exits 1 if any cell failed.
"""

import argparse
import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PHASES = ["pre-hook", "stop", "backup", "start", "post-hook", "forget", "sync", "restore"]
STACK_PHASES = PHASES[:6]
FAULTS = ["child-kill", "cli-term", "cli-kill", "daemon-term", "daemon-kill",
          "docker-stop", "fs-full", "remote-kill", "restic-missing"]
JOB_TIMEOUT = 150          # seconds: a job that takes longer has hung
REPO_FS_MB = 160           # the tmpfs holding the repository and RESTORE_DIR

# Causes a failure line must name, per fault (the stage and the stack are checked apart).
CAUSES = {
    "child-kill": r"signal 9|SIGKILL",
    "cli-term": r"cancel",
    "daemon-term": r"cancel",
    "docker-stop": r"[Dd]ocker|daemon|connect",
    "fs-full": r"[Nn]o space|space left|disk full|disk space|ENOSPC",
    "remote-kill": r"connect|refused|unreachable|EOF|reset|timed out|timeout",
    "restic-missing": r"restic.*(not found|No such file)",
}
STAGES = (r"pre-backup hook|post-backup hook|stop of stack|backup of stack|start of stack|"
          r"retention of stack|stack '[^']*' (skipped|not)|sync|restore|check")


def log(msg):
    print(msg, flush=True)


class Fail(Exception):
    pass


def run(argv, env=None, timeout=120, check=True, cwd=None):
    p = subprocess.run(argv, env=env, cwd=cwd, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace")
    if check and p.returncode != 0:
        raise Fail(f"{' '.join(argv)} exited {p.returncode}: {p.stdout.strip()[-600:]}")
    return p


def wait_for(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_table():
    """{pid: (ppid, argv)} for every process."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except (OSError, ValueError, IndexError):
            continue
        t[int(d)] = (ppid, argv)
    return t


def descendants(root, table=None):
    table = table or proc_table()
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append((k, table[k][1]))
            todo.append(k)
    return out


def proc_cwd(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def tree_sums(path, skip=("locks",)):
    """{relative path: sha256} of every file (restic's transient locks/ left out)."""
    out = {}
    for dirpath, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(dirpath, d), path) not in skip]
        for name in files:
            p = os.path.join(dirpath, name)
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[os.path.relpath(p, path)] = h.hexdigest()
    return out


def tree_diff(before, after):
    """A few words on how two tree_sums differ."""
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = [f"{label} {len(v)} ({', '.join(v[:3])})" for label, v in
             (("removed", gone), ("added", new), ("changed", changed)) if v]
    return "; ".join(parts)


def file_sum(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class World:
    """The test's private world: engine, stacks, repository, remote, config."""

    def __init__(self, build, keep):
        self.build = build
        self.sb = os.path.join(build, "cli", "stackback")
        self.sbfs = os.path.join(build, "fs", "stackbackfs")
        for prog in (self.sb, self.sbfs):
            if not os.access(prog, os.X_OK):
                raise Fail(f"{prog} is not built")
        for prog in ("dockerd", "docker", "docker-compose", "restic", "rclone", "busybox",
                     "fusermount3", "mount", "umount"):
            if not shutil.which(prog):
                raise Fail(f"{prog} is required (run scripts/install-deps.sh)")
        if os.geteuid() != 0:
            raise Fail("the fault matrix needs root (a tmpfs repository, a private Docker engine)")
        self.keep = keep
        # Short: the engine's sockets live under it (108-byte limit).
        self.t = tempfile.mkdtemp(prefix="sbf.", dir="/tmp")
        os.chmod(self.t, 0o700)
        self.p = "f%04x%d" % (secrets.randbits(16), os.getpid() % 100000)
        self.a, self.b = self.p + "a", self.p + "b"
        self.stacks = os.path.join(self.t, "stacks")
        self.state = os.path.join(self.t, "state")
        self.fs = os.path.join(self.t, "fs")
        self.repo = os.path.join(self.fs, "repo")
        self.restored = os.path.join(self.fs, "restored")
        self.filler = os.path.join(self.fs, "filler")
        self.mnt = os.path.join(self.t, "mnt")
        self.marks = os.path.join(self.t, "marks")
        self.cfg = os.path.join(self.t, "config.ini")
        self.dirlist = os.path.join(self.state, "dirlist")
        self.dav_dir = os.path.join(self.t, "dav")
        self.dav_port = None
        self.dav = None
        self.dockerd = None
        self.daemon = None
        self.mounted_fs = False
        for d in (self.stacks, self.state, self.fs, self.mnt, self.marks, self.dav_dir):
            os.makedirs(d, exist_ok=True)
        self.env = self._environment()

    # ---- environment: PATH without restic, except through rbin/ ----

    def _environment(self):
        ubin = os.path.join(self.t, "ubin")
        self.rbin = os.path.join(self.t, "rbin")
        os.makedirs(ubin)
        os.makedirs(self.rbin)
        self.restic = shutil.which("restic")
        restic_dir = os.path.dirname(os.path.realpath(self.restic))
        # Every directory of PATH that holds restic is replaced by a mirror without it.
        path = [self.rbin]
        mirrored = set()
        for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
            if not d or not os.path.isdir(d):
                continue
            real = os.path.realpath(d)
            if real == restic_dir:
                if real not in mirrored:
                    for name in os.listdir(real):
                        if name != "restic":
                            os.symlink(os.path.join(real, name), os.path.join(ubin, name))
                    mirrored.add(real)
                    path.append(ubin)
                continue
            if os.path.exists(os.path.join(d, "restic")):
                continue
            path.append(d)
        os.symlink(self.restic, os.path.join(self.rbin, "restic"))
        env = dict(os.environ)
        env["PATH"] = ":".join(path)
        env["DOCKER_HOST"] = "unix://" + os.path.join(self.t, "d", "sock")
        env.pop("STACKBACK_CONFIG", None)
        env["RESTIC_PASSWORD_FILE"] = os.path.join(self.t, "password")
        return env

    def restic_hide(self):
        os.unlink(os.path.join(self.rbin, "restic"))

    def restic_restore(self):
        link = os.path.join(self.rbin, "restic")
        if not os.path.lexists(link):
            os.symlink(self.restic, link)

    # ---- the private Docker engine ----

    def dockerd_start(self):
        d = os.path.join(self.t, "d")
        os.makedirs(d, exist_ok=True)
        pidfile = os.path.join(d, "pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        logf = open(os.path.join(d, "log"), "a")
        self.dockerd = subprocess.Popen(
            ["dockerd", "--data-root", os.path.join(d, "data"), "--exec-root", os.path.join(d, "x"),
             "--pidfile", pidfile, "-H", self.env["DOCKER_HOST"], "--bridge=none",
             "--iptables=false", "--ip-masq=false", "--shutdown-timeout=20"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        ok = wait_for(lambda: subprocess.run(["docker", "info"], env=self.env, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL).returncode == 0, 60, 0.2)
        if not ok:
            raise Fail(f"the private dockerd did not come up: see {d}/log")

    def dockerd_stop(self, wait=True):
        """Stops the engine as `systemctl stop docker` would: SIGTERM, it stops the containers."""
        if self.dockerd and self.dockerd.poll() is None:
            self.dockerd.send_signal(signal.SIGTERM)
            if wait:
                self.dockerd.wait(timeout=90)

    def dockerd_wait_stopped(self):
        if self.dockerd:
            self.dockerd.wait(timeout=90)

    def docker_ready(self):
        return self.dockerd is not None and self.dockerd.poll() is None

    def busybox_image(self):
        root = os.path.join(self.t, "bbroot")
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "tmp"))
        shutil.copy(shutil.which("busybox"), os.path.join(root, "bin", "busybox"))
        for app in ("sh", "sleep", "date", "touch", "true", "rm", "cat"):
            os.symlink("busybox", os.path.join(root, "bin", app))
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-", "local/busybox:latest"], stdin=tar.stdout,
                             env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tar.wait()
        if imp.returncode != 0:
            raise Fail(f"docker import: {imp.stderr}")

    # ---- stacks ----

    def make_stack(self, name, hooks):
        d = os.path.join(self.stacks, name)
        os.makedirs(os.path.join(d, "data"))
        # restart: unless-stopped, as self-hosted stacks are: an engine that is
        # stopped and started again brings back what it stopped, never what
        # `docker-compose stop` stopped (that is stackback's to start).
        with open(os.path.join(d, "docker-compose.yml"), "w") as f:
            f.write(f"""version: "3"
services:
  app:
    image: local/busybox:latest
    network_mode: none
    restart: unless-stopped
    working_dir: /data
    volumes:
      - ./data:/data
    command: ["sh", "-c", "trap 'if [ -e /data/slowstop ]; then touch /data/stopping; sleep 3; fi; exit 0' TERM; while true; do sleep 1 & wait $$!; done"]
""")
        with open(os.path.join(d, "data", "hello.txt"), "w") as f:
            f.write(f"hello from {name}\n")
        if hooks:
            os.makedirs(os.path.join(d, ".stackback"))
            for hook in ("pre-backup", "post-backup"):
                path = os.path.join(d, ".stackback", hook)
                with open(path, "w") as f:
                    f.write(f"""#!/bin/sh
# Records that the {hook} phase is on; lingers when the matrix targets it.
echo $$ > '{self.marks}/{hook}.pid'
if [ -e '{self.marks}/slow-{hook}' ]; then sleep 3; fi
exit 0
""")
                os.chmod(path, 0o755)

    def compose(self, name, *args, check=True):
        return run(["docker-compose", "-f", os.path.join(self.stacks, name, "docker-compose.yml")] + list(args),
                   env=self.env, check=check, timeout=120)

    def stack_running(self, name):
        p = run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={name}",
                 "--filter", "status=running"], env=self.env, check=False, timeout=30)
        return p.returncode == 0 and p.stdout.strip() != ""

    # ---- repository, remote, config ----

    def mount_repo_fs(self):
        run(["mount", "-t", "tmpfs", "-o", f"size={REPO_FS_MB}m,mode=700", "sbfault", self.fs])
        self.mounted_fs = True

    def fill_fs(self):
        """Fills the repository's filesystem to the last byte."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Halving blocks down to one byte: not a byte is left.
            size = 1 << 20
            while size:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    size //= 2
        finally:
            os.close(fd)

    def unfill_fs(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def dav_start(self):
        os.makedirs(self.dav_dir, exist_ok=True)
        conf = os.path.join(self.t, "dav-server.conf")
        open(conf, "w").close()
        logpath = os.path.join(self.t, f"dav.{time.monotonic_ns()}.log")
        logf = open(logpath, "w")
        addr = f"127.0.0.1:{self.dav_port or 0}"
        self.dav = subprocess.Popen(["rclone", "serve", "webdav", "--config", conf, "--addr", addr, self.dav_dir],
                                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        logf.close()

        def started():
            with open(logpath) as f:
                m = re.search(r"started on http://127\.0\.0\.1:(\d+)/", f.read())
            return m and m.group(1)
        port = wait_for(started, 20, 0.05)
        if not port:
            raise Fail(f"rclone serve webdav did not start: {open(logpath).read()}")
        self.dav_port = port

    def dav_kill(self):
        if self.dav and self.dav.poll() is None:
            self.dav.kill()
            self.dav.wait()

    def write_config(self, rclone_path="backup/sync", bandwidth=None):
        with open(self.cfg, "w") as f:
            f.write(f"""[docker]
DOCKER_STACKS_DIR={self.stacks}
DOCKER_TIMEOUT=20

[local_backup]
RESTIC_REPOSITORY={self.repo}
PASSWORD_FILE={self.t}/password
BACKUP_TIMEOUT=300
HOSTNAME=sbfault
AUTO_PRUNE=true

[cloud_sync]
RCLONE_REMOTE=sbremote
RCLONE_PATH={rclone_path}
TRANSFERS=2
RETRIES=1
{f"BANDWIDTH={bandwidth}" if bandwidth else ""}

[stackback]
STATE_DIR={self.state}
MOUNTPOINT={self.mnt}
RESTORE_DIR={self.restored}
RCLONE_CONFIG={self.t}/rclone.conf
MIN_DISK_SPACE_MB=1
REMOTE_TIMEOUT=5
HOOK_TIMEOUT=60
""")
        os.chmod(self.cfg, 0o600)
        with open(os.path.join(self.t, "rclone.conf"), "w") as f:
            f.write(f"[sbremote]\ntype = webdav\nurl = http://127.0.0.1:{self.dav_port}\nvendor = other\n")
        os.chmod(os.path.join(self.t, "rclone.conf"), 0o600)

    def sbcmd(self, *args, timeout=JOB_TIMEOUT, check=True):
        return run([self.sb, "-c", self.cfg] + list(args), env=self.env, timeout=timeout, check=check)

    def restic_check(self):
        """`restic check` as the product runs it (a stale lock left by a killed restic is removed first)."""
        return self.sbcmd("check", check=False, timeout=180)

    def lock_holders(self):
        """Who holds restic's locks: PID, command line or 'dead'."""
        out = []
        ids = run(["restic", "-r", self.repo, "--no-cache", "--no-lock", "list", "locks"], env=self.env,
                  check=False).stdout.split()
        for lock_id in ids[:5]:
            p = run(["restic", "-r", self.repo, "--no-cache", "--no-lock", "cat", "lock", lock_id], env=self.env,
                    check=False)
            m = re.search(r'"pid":\s*(\d+)', p.stdout)
            pid = int(m.group(1)) if m else 0
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    who = f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
            except OSError:
                who = "dead"
            out.append(f"{lock_id[:8]} pid {pid}: {who}")
        return "; ".join(out) or "none"

    def journal(self):
        try:
            with open(os.path.join(self.state, "journal")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    # ---- the daemon ----

    def mounted(self):
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == self.mnt and " - fuse.stackbackfs " in line for line in f)

    def daemon_start(self):
        out = open(os.path.join(self.t, "sbfs.out"), "a")
        self.daemon = subprocess.Popen([self.sbfs, "-c", self.cfg, self.mnt, "-f"], env=self.env,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        if not wait_for(lambda: self.mounted() or self.daemon.poll() is not None, 20) or not self.mounted():
            raise Fail(f"stackbackfs did not mount: {open(os.path.join(self.t, 'sbfs.out')).read()[-500:]}")

    def daemon_trigger(self, kind, payload):
        fd = os.open(os.path.join(self.mnt, "trigger", kind), os.O_RDWR)
        try:
            os.write(fd, payload.encode())
            reply = os.pread(fd, 200, 0).decode()
        finally:
            os.close(fd)
        m = re.match(r"job (\d+) queued", reply)
        if not m:
            raise Fail(f"trigger/{kind} '{payload}': {reply!r}")
        return int(m.group(1))

    def daemon_stop(self):
        """Ends whatever daemon is left (after a cell): unmount, reap."""
        if self.mounted():
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL)
        if self.daemon:
            try:
                self.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            self.daemon = None

    # ---- set-up and tear-down ----

    def setup(self):
        with open(os.path.join(self.t, "password"), "w") as f:
            f.write(f"fault-matrix-{self.p}\n")
        os.chmod(os.path.join(self.t, "password"), 0o600)
        self.dockerd_start()
        self.busybox_image()
        self.mount_repo_fs()
        self.dav_start()
        self.write_config()
        self.make_stack(self.a, hooks=True)
        self.make_stack(self.b, hooks=False)
        for s in (self.a, self.b):
            self.compose(s, "up", "-d")
        self.sbcmd("init")
        self.sbcmd("discover")
        self.sbcmd("enable", self.a, self.b)
        # A first backup, and the copy every restore cell restores from (a few
        # MiB that do not compress, so a bandwidth-limited download lasts).
        with open(os.path.join(self.stacks, self.b, "data", "blob"), "wb") as f:
            f.write(os.urandom(6 << 20))
        self.sbcmd("backup")
        self.write_config(rclone_path="backup/golden")
        self.sbcmd("sync")

    def teardown(self):
        self.daemon_stop()
        self.dav_kill()
        self.restic_restore()
        self.unfill_fs()
        if self.docker_ready():
            for s in (self.a, self.b):
                self.compose(s, "down", "-t", "1", check=False)
            self.dockerd_stop()
        if self.mounted_fs:
            subprocess.run(["umount", self.fs])
        with open("/proc/self/mountinfo") as f:
            left = [line.split()[4] for line in f if line.split()[4].startswith(self.t + "/")]
        if left:
            # Never delete through a mount (the engine's, a tmpfs): leave it all for a look.
            log(f"mounts left under {self.t}, not removed: {' '.join(left[:3])}")
        elif not self.keep:
            shutil.rmtree(self.t, ignore_errors=True)
        else:
            log(f"kept {self.t}")


class Cell:
    """One fault injected in one phase."""

    def __init__(self, w, fault, phase):
        self.w, self.fault, self.phase = w, fault, phase
        self.problems = []
        self.notes = []
        self.output = ""
        self.job_failed = False
        self.injected = False
        self.orphans = []
        self.proc = None

    def problem(self, msg):
        self.problems.append(msg)

    # ---- phase triggers: each returns the PID of the phase's child once the job is in it ----

    def _child(self, root, pred, delay):
        found = None
        for pid, argv in descendants(root):
            if argv and pred(pid, argv):
                found = pid
                break
        if not found:
            self._seen_at = None
            return None
        if self._seen_at is None:
            self._seen_at = time.monotonic()
        if time.monotonic() - self._seen_at < delay:
            return None
        return found

    def _stack_a(self, pid, argv):
        d = os.path.join(self.w.stacks, self.w.a)
        return any(d in a for a in argv) or proc_cwd(pid) == d

    @staticmethod
    def _reading(pid, name):
        try:
            return any(os.readlink(f"/proc/{pid}/fd/{fd}").endswith("/" + name)
                       for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return False

    def phase_child(self, root):
        w = self.w
        ph = self.phase
        if ph in ("pre-hook", "post-hook"):
            hook = "pre-backup" if ph == "pre-hook" else "post-backup"
            mark = os.path.join(w.marks, hook + ".pid")
            try:
                with open(mark) as f:
                    pid = int(f.read().strip() or 0)
            except (FileNotFoundError, ValueError):
                return None
            return pid if pid_alive(pid) else None
        if ph == "stop":
            # In: the container got its SIGTERM and lingers in its trap.
            if not os.path.exists(os.path.join(w.stacks, w.a, "data", "stopping")):
                return None
            return self._child(root, lambda p, a: "docker-compose" in " ".join(a[:2]) and "stop" in a
                               and self._stack_a(p, a), 0)
        if ph == "start":
            return self._child(root, lambda p, a: "docker-compose" in " ".join(a[:2]) and "start" in a
                               and self._stack_a(p, a), 0.3)
        if ph == "backup":
            # In: restic is reading the big file.
            return self._child(root, lambda p, a: os.path.basename(a[0]) == "restic" and "backup" in a
                               and self._reading(p, "big.bin"), 0)
        if ph == "forget":
            return self._child(root, lambda p, a: os.path.basename(a[0]) == "restic" and "forget" in a, 0.3)
        # sync and restore: in once the first pack file has arrived
        dest = os.path.join(w.dav_dir, self.sync_path) if ph == "sync" else w.restored
        if not self._packs(dest):
            return None
        return self._child(root, lambda p, a: os.path.basename(a[0]) == "rclone" and "sync" in a, 0)

    @staticmethod
    def _packs(dest):
        out = set()
        for dirpath, _, files in os.walk(os.path.join(dest, "data")):
            out.update(os.path.join(dirpath, f) for f in files)
        return out

    # ---- fault injectors ----

    def inject(self, child, job_proc_pid):
        f = self.fault
        if f == "child-kill":
            os.kill(child, signal.SIGKILL)
        elif f in ("cli-term", "daemon-term"):
            os.kill(job_proc_pid, signal.SIGTERM)
        elif f in ("cli-kill", "daemon-kill"):
            # What the dead process leaves behind, to wait for before `recover`.
            self.orphans = [p for p, _ in descendants(job_proc_pid)]
            self.notes.append(f"{len(self.orphans)} children at the kill")
            os.kill(job_proc_pid, signal.SIGKILL)
        elif f == "docker-stop":
            self.w.dockerd_stop(wait=False)
        elif f == "fs-full":
            self.w.fill_fs()
        elif f == "remote-kill":
            self.w.dav_kill()
        elif f == "restic-missing":
            self.w.restic_hide()
        self.injected = True

    def clear_fault(self):
        w = self.w
        if not self.injected:
            return
        if self.fault == "docker-stop":
            w.dockerd_wait_stopped()
            w.dockerd_start()
        elif self.fault == "fs-full":
            w.unfill_fs()
        elif self.fault == "remote-kill":
            w.dav_start()
        elif self.fault == "restic-missing":
            w.restic_restore()
        if self.orphans:
            # A user runs `recover` once the dust has settled: what the dead
            # process had started (a docker-compose stop, a restic backup) ends first.
            t0 = time.monotonic()
            # Gone from /proc, not only dead: restic sees a zombie's PID as a live lock holder.
            left = wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in self.orphans), 60) is not True
            waited = time.monotonic() - t0
            if waited > 0.2:
                self.notes.append(f"orphans ended after {waited:.1f}s")
            if left and any(pid_alive(p) for p in self.orphans):
                self.problem("children of the killed process still run after 60 s")

    # ---- the cell ----

    def prepare(self):
        w = self.w
        for name in os.listdir(w.marks):
            os.unlink(os.path.join(w.marks, name))
        for s in (w.a, w.b):
            if not w.stack_running(s):
                w.compose(s, "up", "-d")
        a_data = os.path.join(w.stacks, w.a, "data")
        if self.phase in ("pre-hook", "post-hook"):
            hook = "pre-backup" if self.phase == "pre-hook" else "post-backup"
            open(os.path.join(w.marks, "slow-" + hook), "w").close()
        if self.phase == "stop":
            open(os.path.join(a_data, "slowstop"), "w").close()
        if self.phase == "backup":
            # Fresh data restic has never seen, so the backup phase lasts.
            with open(os.path.join(a_data, "big.bin"), "wb") as f:
                f.write(os.urandom(64 << 20))
        if self.phase == "sync":
            # A fresh path each time, so the whole repository is uploaded (the
            # server caches listings: nothing is removed behind its back).
            self.sync_path = f"backup/sync-{self.fault}"
            w.write_config(rclone_path=self.sync_path, bandwidth="2M")
        elif self.phase == "restore":
            w.write_config(rclone_path="backup/golden", bandwidth="2M")
        else:
            w.write_config()
        # Each restore starts from an empty RESTORE_DIR, so its first pack shows it is under way.
        if self.phase == "restore":
            shutil.rmtree(w.restored, ignore_errors=True)
        self.dirlist_sum = file_sum(w.dirlist)
        self.repo_sums = tree_sums(w.repo) if self.phase in ("sync", "restore") else None
        self.log_offset = os.path.getsize(os.path.join(w.state, "log")) if os.path.exists(
            os.path.join(w.state, "log")) else 0

    def cleanup(self):
        w = self.w
        a_data = os.path.join(w.stacks, w.a, "data")
        for name in ("slowstop", "stopping", "big.bin"):
            if os.path.exists(os.path.join(a_data, name)):
                os.unlink(os.path.join(a_data, name))
        for name in os.listdir(w.marks):
            os.unlink(os.path.join(w.marks, name))

    def job_words(self):
        if self.phase == "sync":
            return ["sync"], "sync", "1"
        if self.phase == "restore":
            return ["restore", "--force"], "restore", "1 force"
        return ["backup"], "backup", "1"

    def drive(self, pid, done):
        """Polls until the phase is reached, injects the fault, returns when done() is true."""
        self._seen_at = None
        end = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < end:
            if done():
                if not self.injected:
                    self.problem(f"the job ended before reaching phase {self.phase}")
                return True
            if not self.injected:
                child = self.phase_child(pid)
                if child:
                    self.inject(child, pid)
            time.sleep(0.02)
        return False

    def run_cli(self):
        w = self.w
        words, _, _ = self.job_words()
        outpath = os.path.join(w.t, "cell.out")
        with open(outpath, "w") as out:
            proc = subprocess.Popen([w.sb, "-c", w.cfg] + words, env=w.env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.proc = proc
        t0 = time.monotonic()
        finished = self.drive(proc.pid, lambda: proc.poll() is not None)
        if not finished:
            self.problem(f"hang: the job still ran after {JOB_TIMEOUT}s")
            proc.kill()
        rc = proc.wait()
        self.elapsed = time.monotonic() - t0
        self.output = open(outpath, errors="replace").read()
        self.job_failed = rc != 0
        if self.fault == "cli-kill" and self.injected:
            if rc != -signal.SIGKILL:
                self.problem(f"the CLI was not killed (exit {rc})")
        elif self.fault == "cli-term" and rc == 0 and self.injected:
            self.problem("a backup cancelled by SIGTERM exited 0")

    def run_daemon(self):
        w = self.w
        _, kind, payload = self.job_words()
        w.daemon_start()
        pid = w.daemon.pid
        job = w.daemon_trigger(kind, payload)
        t0 = time.monotonic()
        finished = self.drive(pid, lambda: w.daemon.poll() is not None or self._job_final(job))
        if not finished:
            self.problem(f"hang: the job still ran after {JOB_TIMEOUT}s")
        if self.fault == "daemon-term" and self.injected and w.daemon.poll() is None:
            # SIGTERM: the job is cancelled, its stack started again, then the daemon exits.
            try:
                w.daemon.wait(timeout=JOB_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.problem("the daemon did not exit after SIGTERM")
            if w.mounted():
                self.problem("still mounted after the daemon exited")
        self.elapsed = time.monotonic() - t0
        rc = w.daemon.poll()
        w.daemon_stop()
        state_path = os.path.join(w.state, "jobs", str(job), "state")
        try:
            with open(state_path) as f:
                state = f.read().strip()
        except FileNotFoundError:
            state = "none"
        self.job_failed = state != "ok"
        with open(os.path.join(w.state, "log"), errors="replace") as f:
            f.seek(self.log_offset)
            self.output = f.read()
        if self.fault == "daemon-term" and self.injected:
            if rc != 0:
                self.problem(f"the daemon exited {rc} after SIGTERM")
            if state not in ("cancelled", "failed", "ok"):
                self.problem(f"job {job} left in state '{state}' after SIGTERM")
        elif self.fault == "daemon-kill" and self.injected and rc != -signal.SIGKILL:
            self.problem(f"the daemon was not killed (exit {rc})")

    def _job_final(self, job):
        try:
            with open(os.path.join(self.w.mnt, "jobs", str(job), "state")) as f:
                return f.read().strip() in ("ok", "failed", "cancelled")
        except OSError:
            return False

    def error_line_ok(self, text):
        """A line naming the stack (or the remote), the stage and the cause."""
        cause = CAUSES.get(self.fault)
        if self.phase in ("sync", "restore"):
            who = r"sbremote|sync|restore|check|repository"
        else:
            who = re.escape(f"'{self.w.a}'") + "|" + re.escape(f"'{self.w.b}'")
        for line in text.splitlines():
            if re.search(who, line) and re.search(STAGES, line) and re.search(cause, line):
                return True
        return False

    def verify(self):
        w = self.w
        died = self.fault in ("cli-kill", "daemon-kill")
        needs_recover = died or self.fault == "docker-stop" or "stackback recover" in self.output
        if needs_recover:
            journal = w.journal()
            rec = w.sbcmd("recover", check=False)
            if rec.returncode != 0:
                self.problem(f"recover exited {rec.returncode}: {rec.stdout.strip()[-300:]}")
            for name in (w.a, w.b):
                if name in journal and f"stack '{name}'" not in rec.stdout:
                    self.problem(f"recover did not name stack '{name}' from the journal")
            self.notes.append("recovered" + (f" {w.a}" if w.a in journal else ""))
        # The engine's restart policy may take a moment after it came back.
        for name in (w.a, w.b):
            if not wait_for(lambda: w.stack_running(name), 15 if self.fault == "docker-stop" else 3, 0.3):
                self.problem(f"stack '{name}' is not running")
        if w.journal():
            self.problem(f"journal not empty: {w.journal()}")
        t0 = time.monotonic()
        chk = w.restic_check()
        self.check_s = time.monotonic() - t0
        if chk.returncode != 0:
            self.problem(f"restic check failed: {chk.stdout.strip()[-300:]}")
            if "locked" in chk.stdout:
                self.problem(f"locks: {w.lock_holders()}")
        if file_sum(w.dirlist) != self.dirlist_sum:
            self.problem("the dirlist changed")
        if self.repo_sums is not None:
            diff = tree_diff(self.repo_sums, tree_sums(w.repo))
            if diff:
                self.problem(f"the local repository changed during a {self.phase}: {diff}")
        if self.job_failed and not died:
            if not self.error_line_ok(self.output):
                self.problem("no line names the stack, the stage and the cause: "
                             + " | ".join(self.output.strip().splitlines()[-4:])[-400:])
        if not self.job_failed:
            self.notes.append("job ok")
        leftover = [a for _, a in descendants(1) if a and os.path.basename(a[0]) in ("restic", "rclone")
                    and "serve" not in a and any(w.t in x for x in a)]
        if leftover:
            self.problem(f"restic/rclone still running: {leftover[0]}")

    def execute(self):
        t0 = time.monotonic()
        try:
            self.prepare()
            if self.fault.startswith("daemon-"):
                self.run_daemon()
            else:
                self.run_cli()
            self.clear_fault()
            self.verify()
        except (Fail, OSError, subprocess.SubprocessError) as e:
            self.problem(f"{type(e).__name__}: {e}")
            try:
                # Whatever runs the job must not outlive the cell (it holds the job lock).
                if self.proc and self.proc.poll() is None:
                    self.proc.terminate()
                    self.proc.wait(timeout=JOB_TIMEOUT)
                self.w.daemon_stop()
                self.clear_fault()
            except Exception as e2:  # the next cell must still start from a sane world
                self.problem(f"cleanup: {e2}")
        finally:
            self.cleanup()
        self.duration = time.monotonic() - t0
        return not self.problems


def applicable(fault, phase):
    if fault == "remote-kill":
        return phase in ("sync", "restore")
    return True


def on_term(signum, frame):
    # meson's timeout, or a developer: tear the private engine, tmpfs and server down on the way out.
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    ap = argparse.ArgumentParser()
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--keep", action="store_true", help="keep the temp tree")
    args = ap.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    phases = [p for p in args.phases.split(",") if p]
    for f in faults:
        if f not in FAULTS:
            ap.error(f"unknown fault '{f}'")
    for p in phases:
        if p not in PHASES:
            ap.error(f"unknown phase '{p}'")
    build = os.environ.get("SB_BUILD")
    if not build:
        ap.error("SB_BUILD must point at the build directory")

    t_start = time.monotonic()
    w = World(build, args.keep)
    results = {}
    try:
        w.setup()
        log(f"set-up done in {time.monotonic() - t_start:.1f}s ({w.t})")
        for fault in faults:
            for phase in phases:
                if not applicable(fault, phase):
                    continue
                c = Cell(w, fault, phase)
                ok = c.execute()
                results[(fault, phase)] = c
                extra = "; ".join(c.notes + [f"job {getattr(c, 'elapsed', 0):.1f}s, check {getattr(c, 'check_s', 0):.1f}s"])
                log(f"{'PASS' if ok else 'FAIL'} {fault} x {phase} ({c.duration:.1f}s)"
                    + (f" [{extra}]" if extra else ""))
                for p in c.problems:
                    log(f"    - {p}")
    except Fail as e:
        log(f"FAIL: set-up: {e}")
        w.teardown()
        return 1
    except BaseException:
        w.teardown()
        raise
    w.teardown()

    width = max(len(p) for p in phases) + 1
    log("")
    log(f"{'fault / phase':16}" + "".join(f"{p:>{width}}" for p in phases))
    passed = failed = 0
    for fault in faults:
        row = f"{fault:16}"
        for phase in phases:
            c = results.get((fault, phase))
            if not c:
                row += f"{'n/a':>{width}}"
            elif c.problems:
                row += f"{'FAIL':>{width}}"
                failed += 1
            else:
                row += f"{'pass':>{width}}"
                passed += 1
        log(row)
    log(f"matrix time {time.monotonic() - t_start:.0f}s")
    log(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
