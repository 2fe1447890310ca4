# The test containers' exec server: started once per container by the project's
# podman connection (connection/podman.py) with `podman exec CONTAINER
# python3 - SOCKET` (this source on stdin), it then runs each command the
# connection sends it, as `podman exec` would have: the container's
# environment and working directory, its user (root), stdin when given, and
# the exit code, stdout and stderr back.
#
# Why: one `podman exec` starts podman, conmon and runc, about 0.1 CPU-second
# on the controller's machine for every task. A command through this server
# costs a unix-socket connection and a fork.
#
# Protocol, one command per connection: the client sends a JSON line
# {"argv": [...], "stdin": N or null}, then N bytes of stdin; the server
# answers "+\n" once it has the whole request and is about to start the
# command, then, when the command has ended, a JSON line {"rc": R, "stdout":
# N1, "stderr": N2} and N1 + N2 bytes. A client that got no "+" knows the
# command never started and may send it again; after it, never.
#
# stdlib only, Python 3.6+: it runs on the container's own python3.
import json
import os
import socket
import socketserver
import subprocess
import sys


class CommandHandler(socketserver.StreamRequestHandler):
    def handle(self):
        header = json.loads(self.rfile.readline().decode())
        stdin_len = header.get("stdin")
        stdin = self.rfile.read(stdin_len) if stdin_len is not None else None
        self.wfile.write(b"+\n")
        try:
            # A session of its own: a command that signals its process group
            # never reaches this server.
            proc = subprocess.Popen(header["argv"], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            # What `podman exec` answers for a command it cannot start.
            rc = 127 if isinstance(exc, FileNotFoundError) else 126
            self.reply(rc, b"", ("%s: %s\n" % (header["argv"][0], exc.strerror)).encode())
            return
        stdout, stderr = proc.communicate(stdin)
        # Killed by a signal: 128 + its number, as podman exec reports it.
        rc = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        self.reply(rc, stdout, stderr)

    def reply(self, rc, stdout, stderr):
        head = json.dumps({"rc": rc, "stdout": len(stdout), "stderr": len(stderr)}).encode() + b"\n"
        self.wfile.write(head + stdout + stderr)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def already_serving(path):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def main(path):
    # Started with PYTHONCOERCECLOCALE=0 so that Python leaves LC_CTYPE unset,
    # as `podman exec` would; the commands must not see either.
    os.environ.pop("PYTHONCOERCECLOCALE", None)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if already_serving(path):
        return 0
    if os.path.exists(path):
        os.unlink(path)  # left by a server that is gone (container restarted)
    old_umask = os.umask(0o177)
    server = Server(path, CommandHandler)
    os.umask(old_umask)
    # Listening before `podman exec` returns: the connection may use the socket
    # as soon as this process has exited, no wait needed.
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
