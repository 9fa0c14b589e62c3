"""``mirrorctl serve --front nginx``: nginx, started and configured by mirrorctl as its child, listens on the public
host and port and sends package files itself; everything else (index pages, metadata, ``/healthz``, any URL no
file tree holds) it passes to mirrorctl's own server on a unix socket in a private runtime folder.

nginx reaches files only through the store's ``current`` link and ``channels/<name>`` links, into the served
view's file tree (mirrorctl/inside/filetree.py): paths are resolved at each request (``open_file_cache off``),
so a promote, rollback or import is seen at the next request, and a view no link points at cannot be reached.
``disable_symlinks`` refuses any symbolic link below that link, so nothing planted in a tree reaches outside the
store. A URL the tree lacks falls through to mirrorctl, which answers it exactly as without the front.

The runtime folder (mode 0700) holds the generated nginx.conf, nginx's pid file, its error log, its temporary
folders and the unix socket mirrorctl serves on; nothing else can reach that socket. nginx runs in the
foreground (``daemon off``, master process on); stopping serve stops it, and nginx exiting stops serve with its
error log's last lines. The folder is removed on a clean stop and kept (and named) when nginx failed.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mirrorctl.errors import MirrorctlError, UserError

NGINX_HINT = (
    "install nginx (Debian: apt-get install nginx), or set [serve] nginx = \"/path/to/nginx\" in "
    "mirrorctl.toml; or serve without --front"
)
# Where Debian and most builds put the binary, which is not on a non-root user's PATH.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_IMMUTABLE = "public, max-age=31536000, immutable"  # a blob's bytes never change under its URL
_STOP_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class FileRoute:
    """URLs under ``prefix`` ("" for the plain layout, ``/prod`` for a channel) are files of the view ``link``
    points at (``<store>/current``, ``<store>/channels/prod``), in its tree ``<link>/files``."""

    prefix: str
    link: Path


def find_nginx(configured: Path | None, config_path: Path | None) -> Path:
    """The nginx binary: ``[serve] nginx`` when set (it must be an executable file), else nginx on PATH or in
    the usual sbin folders. Missing: a UserError naming the setting and how to install nginx."""
    if configured is not None:
        if not configured.is_file() or not os.access(configured, os.X_OK):
            where = config_path or "mirrorctl.toml"
            raise UserError(f"{where}: serve.nginx: {configured} is not an executable file", hint=NGINX_HINT)
        return configured
    found = shutil.which("nginx") or next(
        (str(p) for d in _SBIN if (p := Path(d) / "nginx").is_file() and os.access(p, os.X_OK)), None
    )
    if found is None:
        raise UserError(
            "serve --front nginx: no nginx binary on PATH or in " + ", ".join(_SBIN) + " ([serve] nginx is not set)",
            hint=NGINX_HINT,
        )
    return Path(found)


def _q(value: str | Path) -> str:
    """A quoted nginx configuration string."""
    text = str(value)
    if any(c in text for c in "\"\\\n\r\0;{}$"):
        raise UserError(f"serve --front nginx: the path {text!r} holds a character nginx's configuration cannot carry",
                        hint="move the store to a plain path")
    return f'"{text}"'


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_config(
    *,
    run_dir: Path,
    host: str,
    port: int,
    app_socket: Path,
    routes: Sequence[FileRoute],
    access_log: bool,
    user: str | None,
) -> str:
    """The whole nginx.conf. Per route, one regex location for URLs not ending in ``/`` (a file may be there;
    a folder never is) tried against the tree, else mirrorctl; every other URL goes to mirrorctl."""
    proxy = """
            proxy_pass http://mirrorctl;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $mirror_host;
            proxy_redirect off;
            proxy_buffering on;"""
    files = []
    for route in routes:
        root = route.link / "files"
        # The prefix is a channel name (letters, digits, '-', '_', '.'): a literal in the regex once escaped.
        pattern = "^" + "".join("\\" + c if not c.isalnum() and c not in "/_-" else c for c in route.prefix)
        files.append(f"""
        location ~ "{pattern}(?<tail>/.*[^/])$" {{
            root {_q(root)};
            disable_symlinks on from=$document_root;
            try_files $tail @mirrorctl;
            add_header Cache-Control "{_IMMUTABLE}";
        }}""")
    shown = _listen(host, port)
    return f"""\
# Written by mirrorctl serve --front nginx; replaced at every start.
daemon off;
master_process on;
worker_processes auto;
pid {_q(run_dir / "nginx.pid")};
error_log {_q(run_dir / "error.log")} warn;
{f"user {user};" if user else ""}
events {{ worker_connections 4096; }}
http {{
    {"access_log /dev/stderr combined;" if access_log else "access_log off;"}
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    open_file_cache off;
    keepalive_timeout 30s;
    keepalive_requests 100000;
    client_max_body_size 1m;
    client_body_temp_path {_q(run_dir / "tmp" / "body")};
    proxy_temp_path {_q(run_dir / "tmp" / "proxy")};
    fastcgi_temp_path {_q(run_dir / "tmp" / "fastcgi")};
    uwsgi_temp_path {_q(run_dir / "tmp" / "uwsgi")};
    scgi_temp_path {_q(run_dir / "tmp" / "scgi")};
    types {{
        application/vnd.debian.binary-package deb;
        application/gzip tgz gz;
        application/zip whl zip;
        application/x-xz xz;
    }}
    default_type application/octet-stream;
    # What mirrorctl sees as Host: the client's, or, when it sent none, this address (as without the front).
    map $http_host $mirror_host {{
        "" "{shown}";
        default $http_host;
    }}
    upstream mirrorctl {{
        server {_q(f"unix:{app_socket}")};
        keepalive 64;
    }}
    server {{
        listen {shown} backlog=1024;
        server_name _;
        location @mirrorctl {{{proxy}
        }}
        location / {{{proxy}
        }}{"".join(files)}
    }}
}}
"""


def make_run_dir() -> Path:
    """A private folder for nginx's config, pid, logs and temporary files and mirrorctl's socket."""
    run = Path(tempfile.mkdtemp(prefix="mirrorctl-front-"))
    run.chmod(0o700)
    (run / "tmp").mkdir()
    return run


def worker_user(store_root: Path, run_dir: Path) -> str | None:
    """As root, nginx would drop its workers to ``nobody``, who may not read the store: run them as the store's
    owner instead (who then owns the runtime folder too). Not root: nginx keeps this user, no directive."""
    if os.geteuid() != 0:
        return None
    st = store_root.stat()
    try:
        name = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        name = str(st.st_uid)
    if st.st_uid != 0:
        for folder, _, files in os.walk(run_dir):
            os.chown(folder, st.st_uid, st.st_gid)
            for f in files:
                os.chown(Path(folder) / f, st.st_uid, st.st_gid)
    return name


def unix_listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError as exc:  # a TMPDIR so long that the socket's path passes the 107-byte limit, say
        sock.close()
        raise UserError(
            f"serve --front nginx: cannot listen on the unix socket {path}: {exc.strerror or exc}",
            hint="set TMPDIR to a short folder this user may write to (the runtime folder is made there)",
        ) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _prctl()  # looked up here: the child, after fork, only calls it


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Nginx:
    """The nginx child: started with the generated config, polled, stopped."""

    def __init__(self, binary: Path, run_dir: Path) -> None:
        self.binary = binary
        self.run_dir = run_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def error_log(self) -> Path:
        return self.run_dir / "error.log"

    def spawn(self) -> None:
        """Start nginx. Call it on the main thread: nginx is sent SIGTERM when the thread that started it ends
        (PR_SET_PDEATHSIG), so even a mirrorctl killed with SIGKILL leaves no nginx behind."""
        conf = self.run_dir / "nginx.conf"
        self.proc = subprocess.Popen(
            [str(self.binary), "-p", str(self.run_dir), "-e", str(self.error_log), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None,  # the access log, when asked for, and nginx's own start-up complaints
            start_new_session=True,  # a Ctrl-C in the terminal reaches mirrorctl, which stops nginx in order
            preexec_fn=_die_with_parent,
        )

    def wait_listening(self, host: str, port: int, timeout: float = 15.0) -> None:
        """Wait until nginx accepts connections on ``host:port``; raise when it exits or never does."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            try:
                with socket.create_connection((host, port), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise MirrorctlError(
                    f"mirrorctl serve: nginx did not listen on {_listen(host, port)} within {timeout:.0f} s",
                    hint=f"see its error log {self.error_log}",
                )
            time.sleep(0.05)

    def check(self) -> None:
        """Raise, with the error log's last lines, when nginx has exited."""
        if self.proc is None or self.proc.poll() is None:
            return
        raise MirrorctlError(
            f"mirrorctl serve: nginx exited with code {self.proc.returncode}: {self.last_error()}",
            hint=f"its error log is {self.error_log}; its configuration {self.run_dir / 'nginx.conf'}",
        )

    def last_error(self) -> str:
        try:
            lines = [ln for ln in self.error_log.read_text(errors="replace").splitlines() if ln.strip()]
        except FileNotFoundError:
            return "no error log written"
        return " | ".join(lines[-3:])[-600:] or "its error log is empty"

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            # TERM is nginx's fast shutdown: the master stops its workers and exits.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(_STOP_WAIT)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of its process group (workers of a master that was killed) goes too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(5)
