"""npm as a static registry: the tree ``static_layout`` gives, for servers that only serve files (Pulp's
pulp_file; see mirrorctl/targets/pulp/files.py for why pulp_npm is not used).

* tarballs at their artifact path, ``<name>/-/<tarball filename>`` (``@scope/name/-/name-1.0.0.tgz``; spec.py
  ``tarball_path``): the public registry's layout, so that ``npm ci`` of a package-lock.json made against the
  public registry finds them where ``replace-registry-host`` sends it;
* packuments at ``-/packuments/<name>`` (``-/packuments/@scope/name``), read by npm through a scope registry
  (clientconfig.py ``PACKUMENT_DIR``; the workspace config says why that reaches every package). ``-`` is never
  a package name, so no packument path is a prefix folder of a tarball path: pulp_file refuses a version where
  one path is a folder of another, and a packument at ``<name>/index.html`` is not served for ``<name>``.

A packument carries, for each version, what ``mirrorctl serve`` serves (serve.py ``version_document``: the
tarball's own package.json read by manifest.py, ``_id``, ``dist`` {tarball, integrity, shasum, fileCount,
unpackedSize}, ``deprecated`` from the lock) and the ``dist-tags`` it serves (serve.py ``dist_tags``). The bytes
are deterministic (sorted keys, no timestamps), so an unchanged set makes the same packuments and a republish
changes nothing. Served as files without an extension, packuments get ``application/octet-stream``; npm parses
the body as JSON whatever the type (tried with npm 11).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mirrorctl.ecosystems.base import ServedView, StaticFile
from mirrorctl.errors import IntegrityError, MirrorctlError
from mirrorctl.lockfile import Artifact

from .clientconfig import PACKUMENT_DIR
from .manifest import read_tarball_info
from .serve import ECOSYSTEM, VERSION_KEY, build_index, dist_tags, version_document
from .spec import validate_artifact


def packument_path(name: str) -> str:
    return PACKUMENT_DIR + name


def _label(a: Artifact) -> str:
    return f"npm {a.name} {a.version} ({a.filename})"


def _sri_and_sha1(path: Path) -> tuple[str, str]:
    sha512, sha1 = hashlib.sha512(), hashlib.sha1()  # npm's dist.shasum is SHA-1 by definition
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha512.update(chunk)
            sha1.update(chunk)
    return "sha512-" + base64.b64encode(sha512.digest()).decode(), sha1.hexdigest()


def version_object(artifact: Artifact, path: Path, registry_url: str) -> dict[str, Any]:
    """The version entry ``mirrorctl serve`` serves, its tarball URL under ``registry_url``."""
    label = _label(artifact)
    info = read_tarball_info(path, where=label)
    manifest = info.manifest
    if manifest.get("name") != artifact.name or manifest.get("version") != artifact.version:
        raise IntegrityError(
            f"{label}: the tarball's package.json says {manifest.get('name')}@{manifest.get('version')}",
            hint="the lock and the tarball disagree; run `mirrorctl verify` and lock again",
        )
    doc = version_document(artifact, info, registry_url, corgi=False)
    dist = doc["dist"]
    if not dist.get("integrity") or not dist.get("shasum"):  # a lock always has both; computed otherwise
        integrity, shasum = _sri_and_sha1(path)
        dist.setdefault("integrity", integrity)
        dist.setdefault("shasum", shasum)
    return doc


def render_packument(name: str, versions: Mapping[str, dict[str, Any]], tags: Mapping[str, str]) -> bytes:
    doc = {
        "_id": name,
        "name": name,
        "dist-tags": dict(tags),
        "versions": {v: versions[v] for v in sorted(versions, key=VERSION_KEY)},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def static_layout(view: ServedView, base_url: str) -> dict[str, StaticFile]:
    """Every file of the tree: each tarball (a blob of the view) and one generated packument per package.
    Refuses an artifact outside npm's grammar (its name becomes a path) or whose blob is missing, naming it."""
    files: dict[str, StaticFile] = {}
    by_name: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    arts_by_name: dict[str, list[Artifact]] = defaultdict(list)
    artifacts: Sequence[Artifact] = view.artifacts(ECOSYSTEM)
    for a in sorted(artifacts, key=lambda a: (a.name, a.path)):
        try:
            validate_artifact(a)  # names become paths (``..``, a stray ``/``): the grammar first
        except MirrorctlError as exc:
            raise IntegrityError(f"{_label(a)}: {exc.message}", hint=exc.hint) from None
        path = view.blob_path(a.sha256)
        if not path.is_file():
            raise IntegrityError(f"{_label(a)}: blob {a.sha256} is not in the store", hint="run `mirrorctl verify`")
        by_name[a.name][a.version] = version_object(a, path, base_url)
        arts_by_name[a.name].append(a)
        files[a.path] = StaticFile(a.sha256, a.size, a)  # validate_artifact: the path is the public layout
    for name, versions in sorted(by_name.items()):
        data = render_packument(name, versions, dist_tags(arts_by_name[name]))
        files[packument_path(name)] = StaticFile(hashlib.sha256(data).hexdigest(), len(data), None, data)
    return files



def served_tarballs(view: ServedView) -> dict[str, StaticFile]:
    """The tarballs ``mirrorctl serve`` answers with their blob, at their artifact path (``<name>/-/<file>``):
    the ones serve.py ``build_index`` keeps, one per version."""
    files: dict[str, StaticFile] = {}
    for package in build_index(view).packages.values():
        for path, a in package.files.items():
            files[path] = StaticFile(a.sha256, a.size, a)
    return files
