"""A private Mosquitto broker on a free local port: for ``devattest demo``, the fleet
simulator and tests. Not for production (run a managed broker with TLS there).

The broker runs Debian's ``/usr/sbin/mosquitto`` (or ``mosquitto`` on ``PATH``) with a
generated configuration in a temporary directory: one listener on ``127.0.0.1:PORT``,
anonymous access or a password file (and optionally an ACL file), no persistence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from devattest.errors import ConfigurationError, TransportError


def mosquitto_binary() -> str | None:
    """The mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedMosquitto:
    """A private mosquitto process. ``restart()`` keeps the port, so clients reconnect."""

    def __init__(self, *, port: int = 0, users: Mapping[str, str] | None = None,
                 acl: str | None = None, binary: str | None = None) -> None:
        self.binary = binary or mosquitto_binary()
        if self.binary is None:
            raise ConfigurationError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = port or free_port()
        self.users = dict(users or {})
        self.acl = acl
        self.dir = Path(tempfile.mkdtemp(prefix="devattest-mosquitto-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's log file."""
        return self.dir / "mosquitto.log"

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 1000000",
            "max_inflight_messages 0",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would drop to the "mosquitto" user, which cannot read this
            # private directory; stay as the caller.
            lines.append("user root")
        if self.users:
            pw = self.dir / "passwd"
            pw.touch(mode=0o600)
            passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            for user, password in self.users.items():
                subprocess.run([passwd, "-b", str(pw), user, password], check=True,  # noqa: S603
                               capture_output=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl_path = self.dir / "acl"
            acl_path.write_text(self.acl)
            lines.append(f"acl_file {acl_path}")
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self, *, timeout: float = 10.0) -> EmbeddedMosquitto:
        """Start the broker and wait until it accepts connections (a no-op while it runs: a
        second process would be left running when this one is closed).

        Raises:
            TransportError: it did not come up in time.
        """
        assert self.binary is not None
        if self.running:
            return self
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [self.binary, "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise TransportError(f"mosquitto exited: {self._tail()}")
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise TransportError(f"mosquitto did not start on port {self.port}: {self._tail()}")

    def _tail(self) -> str:
        try:
            return self.log_path.read_text()[-500:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the broker (every client is disconnected)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """Stop the broker and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedMosquitto:
        return self.start() if not self.running else self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
