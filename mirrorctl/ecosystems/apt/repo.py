"""The apt repository of one served view: Packages indexes, Release, and (signed) InRelease and Release.gpg.

Layout, relative to the repository root (``/apt/`` under ``mirrorctl serve``)::

    dists/<suite>/InRelease, Release, Release.gpg      (every suite of the view's artifacts and their attrs.suites)
    dists/<suite>/<component>/binary-<arch>/Packages, Packages.gz, Packages.xz
    dists/<suite>/<component>/binary-<arch>/by-hash/SHA256/<hex>     (each of the three, by content)
    <attrs.pool>                                                      the .deb (e.g. pool/main/c/curl/...)

Each Packages stanza is rebuilt from the .deb's own control file (as dpkg-scanpackages and pulp_deb do), in
dpkg's field order, plus Filename (the lock's ``pool``), Size and SHA256 (the lock's, checked at import), so
only the verified .deb crosses the gap. An ``Architecture: all`` package is listed under every served
architecture of its ``targets``. Release and Packages are deterministic for a view (Date is the view's
creation time; no Valid-Until unless configured); only the signatures carry a signing time.

The unsigned part is built once per view (a view is immutable) and the control stanzas are cached per .deb
digest under ``<store>/cache/apt-control``, so a restarted server does not reopen every .deb.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from debian.deb822 import Deb822

from mirrorctl.ecosystems.base import ServedView, StaticFile
from mirrorctl.errors import IntegrityError, MirrorctlError
from mirrorctl.inside.store import atomic_write
from mirrorctl.lockfile import Artifact

from .archive_key import ArchiveKey
from .settings import ReleaseOptions

ECOSYSTEM = "apt"
CONTROL_CACHE = "control"  # the view's cache_dir("apt", ...): <store>/cache/apt-control
FALLBACK_CREATED = "1970-01-01T00:00:00Z"
INDEX_NAMES = ("Packages", "Packages.gz", "Packages.xz")

# dpkg's order for a Packages stanza (Dpkg::Control::FieldsCore, CTRL_INDEX_PKG); other fields follow in the
# order the control file has them.
FIELD_ORDER = (
    "Package", "Package-Type", "Source", "Version", "Kernel-Version", "Built-For-Profiles", "Auto-Built-Package",
    "Architecture", "Subarchitecture", "Installer-Menu-Item", "Build-Essential", "Essential", "Protected",
    "Origin", "Bugs", "Maintainer", "Installed-Size",
    "Pre-Depends", "Depends", "Recommends", "Suggests", "Enhances", "Conflicts", "Breaks", "Replaces", "Provides",
    "Built-Using", "Static-Built-Using",
    "Filename", "Size", "MD5sum", "SHA1", "SHA256",
    "Section", "Priority", "Multi-Arch", "Homepage", "Description", "Tag", "Task",
)
_ORDER = {name.lower(): i for i, name in enumerate(FIELD_ORDER)}
# Fields the archive sets; a control file that carries them must not decide where apt fetches from.
_ARCHIVE_FIELDS = {"filename", "size", "md5sum", "sha1", "sha256", "sha512", "description-md5"}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
_POOL = re.compile(r"^[A-Za-z0-9._+~%-]+(/[A-Za-z0-9._+~%-]+)+$")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Repository:
    """The generated files of one view (path -> bytes), the pool (path -> artifact) and the Release per suite."""

    view_id: str
    files: Mapping[str, bytes]
    pool: Mapping[str, Artifact]
    releases: Mapping[str, bytes]  # suite -> Release (also in files)
    suites: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]  # suite -> (components, architectures)
    signed: dict[tuple[str, ...], Mapping[str, bytes]] = field(default_factory=dict)  # signers -> signed files


def together_suites(a: Artifact) -> list[str]:
    """The suites ``a`` was resolved together with (``attrs.suites``; its own suite alone when absent)."""
    value = a.attrs.get("suites")
    return value.split() if isinstance(value, str) else []


def release_date(t: datetime) -> str:
    """RFC 2822 in UTC with English names whatever the locale: ``Mon, 01 Jan 2024 00:00:00 UTC``."""
    t = t.astimezone(UTC)
    return f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} {t:%H:%M:%S} UTC"


def view_created(view: ServedView) -> datetime:
    text = view.created or FALLBACK_CREATED
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=UTC)


# --- control stanzas ---------------------------------------------------------------------------------------


def read_control(deb: Path, where: str) -> bytes:
    """The raw ``control`` file of a .deb (python-debian; ``dpkg-deb -f`` for what it cannot open)."""
    try:
        from debian.debfile import DebFile

        with DebFile(str(deb)) as d:
            data = d.control.get_content("control")
        if isinstance(data, bytes) and data.strip():
            return data
    except Exception:  # e.g. a compression python-debian lacks: dpkg-deb decides below
        pass
    try:
        proc = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IntegrityError(f"{where}: the control file cannot be read ({exc})") from exc
    if proc.returncode != 0 or not proc.stdout.strip():
        raise IntegrityError(
            f"{where}: not a readable .deb ({proc.stderr.decode(errors='replace').strip()[-200:]})",
            hint="run `mirrorctl verify` on the mirror host",
        )
    return proc.stdout


class ControlCache:
    """Control files by .deb sha256, on disk (``None`` folder: memory only). A digest names the bytes forever."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def get(self, sha256: str, deb: Path, where: str) -> bytes:
        cached = self.folder / sha256[:2] / f"{sha256}.control" if self.folder else None
        if cached is not None:
            try:
                return cached.read_bytes()
            except FileNotFoundError:
                pass
        if not deb.exists():
            raise MirrorctlError(f"{where}: blob {sha256} is missing", hint="run `mirrorctl verify` on the mirror host")
        data = read_control(deb, where)
        if cached is not None:
            try:
                atomic_write(cached, data)
            except OSError:
                pass  # a read-only store still serves; it just reads the .deb again next time
        return data


def control_cache_for(view: ServedView) -> ControlCache:
    """``<store>/cache/apt-control``."""
    return ControlCache(view.cache_dir(ECOSYSTEM, CONTROL_CACHE))


def packages_stanza(control: bytes, a: Artifact, where: str) -> str:
    """One Packages stanza (ending in a newline): the control fields in dpkg's order + Filename, Size, SHA256."""
    try:
        fields = Deb822(control.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"{where}: control file is not valid deb822 ({exc})") from exc
    got = (fields.get("Package"), fields.get("Version"), fields.get("Architecture"))
    want = (a.name, a.version, str(a.attrs.get("architecture", "")))
    if got != want:
        raise IntegrityError(
            f"{where}: the .deb says Package/Version/Architecture {got}, the lock says {want}",
            hint="the lock and the stored .deb disagree; re-create the bundle from a fresh lock",
        )
    items = [(k, v) for k, v in fields.items() if k.lower() not in _ARCHIVE_FIELDS]
    items += [("Filename", str(a.attrs["pool"])), ("Size", str(a.size)), ("SHA256", a.sha256)]
    position = {k: i for i, (k, _) in enumerate(items)}
    items.sort(key=lambda kv: (_ORDER.get(kv[0].lower(), len(_ORDER)), position[kv[0]]))
    out = Deb822()
    for k, v in items:
        out[k] = v
    text = out.dump()
    assert isinstance(text, str)
    return text if text.endswith("\n") else text + "\n"


# --- the repository ----------------------------------------------------------------------------------------


def _attr(a: Artifact, key: str, where: str) -> str:
    value = a.attrs.get(key)
    if not isinstance(value, str) or not value:
        raise IntegrityError(f"{where}: attrs.{key} is missing", hint="the view's apt artifacts must carry it")
    return value


def _check_pool(pool: str, where: str) -> str:
    parts = pool.split("/")
    if not _POOL.match(pool) or any(p in (".", "..") for p in parts) or parts[0] == "dists":
        raise IntegrityError(f"{where}: attrs.pool {pool!r} is not a plain relative path outside dists/")
    return pool


def _compress(data: bytes) -> dict[str, bytes]:
    return {
        "Packages": data,
        # mtime=0 and no name: the same Packages gives the same .gz bytes
        "Packages.gz": gzip.compress(data, compresslevel=9, mtime=0),
        "Packages.xz": lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6),
    }


def _release(
    suite: str, components: Sequence[str], arches: Sequence[str], indexes: Mapping[str, bytes],
    created: datetime, options: ReleaseOptions,
) -> bytes:
    lines = [
        f"Origin: {options.origin}",
        f"Label: {options.label}",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {release_date(created)}",
    ]
    if options.valid_until is not None:
        lines.append(f"Valid-Until: {release_date(created + options.valid_until)}")
    lines += [
        "Acquire-By-Hash: yes",
        f"Architectures: {' '.join(arches)}",
        f"Components: {' '.join(components)}",
        f"Description: {options.description}",
        "SHA256:",
    ]
    width = max((len(str(len(d))) for d in indexes.values()), default=1)
    lines += [f" {hashlib.sha256(d).hexdigest()} {len(d):>{width}} {p}" for p, d in sorted(indexes.items())]
    return ("\n".join(lines) + "\n").encode()


def pool_files(view: ServedView) -> dict[str, StaticFile]:
    """The pool as ``build_repository`` serves it (path -> the .deb's blob), with the same refusals."""
    found: dict[str, StaticFile] = {}
    for a in view.artifacts(ECOSYSTEM):
        where = f"apt {a.name} {a.version} ({a.filename})"
        path = _check_pool(_attr(a, "pool", where), where)
        for what in ("suite", "component", "architecture"):
            if not _NAME.match(_attr(a, what, where)):
                raise IntegrityError(f"{where}: attrs.{what} {a.attrs[what]!r} is not a plain name")
        seen = found.get(path)
        if seen is not None and seen.sha256 != a.sha256:
            raise IntegrityError(f"{where}: pool path {path} also holds another file")
        found[path] = StaticFile(a.sha256, a.size, a)
    return found


def build_repository(
    view: ServedView, options: ReleaseOptions = ReleaseOptions(), *, cache: ControlCache | None = None
) -> Repository:
    """The unsigned repository of ``view``: every Packages index, by-hash copy and Release, and the pool."""
    cache = cache if cache is not None else control_cache_for(view)
    pool: dict[str, Artifact] = {}
    # suite -> component -> arch -> stanzas
    tree: dict[str, dict[str, dict[str, list[tuple[tuple[str, str, str], str]]]]] = {}
    pending: list[tuple[Artifact, str, str, str, list[str]]] = []
    arches_of: dict[str, set[str]] = {}
    for a in view.artifacts(ECOSYSTEM):
        where = f"apt {a.name} {a.version} ({a.filename})"
        suite, component = _attr(a, "suite", where), _attr(a, "component", where)
        arch, path = _attr(a, "architecture", where), _check_pool(_attr(a, "pool", where), where)
        for value, what in ((suite, "suite"), (component, "component"), (arch, "architecture")):
            if not _NAME.match(value):
                raise IntegrityError(f"{where}: attrs.{what} {value!r} is not a plain name")
        seen = pool.get(path)
        if seen is not None and seen.sha256 != a.sha256:
            raise IntegrityError(f"{where}: pool path {path} also holds another file ({seen.filename})")
        pool[path] = a
        targets = sorted({t for t in a.targets if _NAME.match(t) and t != "all"})
        arches_of.setdefault(suite, set()).update([arch] if arch != "all" else targets)
        pending.append((a, suite, component, arch, targets))
        # The suites resolved together with this one are offered even where none of their packages was
        # chosen: workspaces then name them from the start, and a later security update reaches them.
        for sibling in together_suites(a):
            if _NAME.match(sibling):
                tree.setdefault(sibling, {}).setdefault(component, {})
                arches_of.setdefault(sibling, set()).update(targets)
    for a, suite, component, arch, targets in pending:
        where = f"apt {a.name} {a.version} ({a.filename})"
        stanza = packages_stanza(cache.get(a.sha256, view.blob_path(a.sha256), where), a, where)
        listed = [arch] if arch != "all" else (targets or sorted(arches_of[suite]))
        comps = tree.setdefault(suite, {}).setdefault(component, {})
        for served_arch in listed:
            comps.setdefault(served_arch, []).append(((a.name, a.version, a.sha256), stanza))

    created = view_created(view)
    files: dict[str, bytes] = {}
    releases: dict[str, bytes] = {}
    suites: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for suite in sorted(tree):
        components = tuple(sorted(tree[suite]))
        arches = tuple(sorted(arches_of[suite]))
        indexes: dict[str, bytes] = {}
        for component in components:
            for arch in arches:  # every component x architecture, empty where nothing is: apt asks for each
                entries = sorted(dict(tree[suite][component].get(arch, [])).items())
                text = "\n".join(stanza for _, stanza in entries).encode()
                for name, data in _compress(text).items():
                    rel = f"{component}/binary-{arch}/{name}"
                    indexes[rel] = data
                    files[f"dists/{suite}/{rel}"] = data
                    files[f"dists/{suite}/{component}/binary-{arch}/by-hash/SHA256/"
                          f"{hashlib.sha256(data).hexdigest()}"] = data
        release = _release(suite, components, arches, indexes, created, options)
        releases[suite] = release
        files[f"dists/{suite}/Release"] = release
        suites[suite] = (components, arches)
    return Repository(view.view_id, files, pool, releases, suites)


def signed_files(repo: Repository, key: ArchiveKey, signers: Sequence[str]) -> Mapping[str, bytes]:
    """InRelease and Release.gpg of every suite, signed by ``signers`` (cached on ``repo`` per signer set)."""
    wanted = tuple(signers)
    done = repo.signed.get(wanted)
    if done is not None:
        return done
    out: dict[str, bytes] = {}
    for suite, release in repo.releases.items():
        out[f"dists/{suite}/InRelease"] = key.clearsign(release, signers=wanted)
        out[f"dists/{suite}/Release.gpg"] = key.detach_sign(release, signers=wanted)
    repo.signed[wanted] = out
    return out
