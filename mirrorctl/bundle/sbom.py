"""A CycloneDX 1.5 SBOM for a bundle: one component per artifact file, with its package URL and sha256.

Plain JSON built by hand (no extra dependency) and deterministic apart from ``serialNumber`` (the bundle id)
and ``metadata.timestamp`` (the bundle's creation time).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from packaging.utils import canonicalize_name

from mirrorctl.lockfile import Artifact

SPEC_VERSION = "1.5"

# Package URL types (the purl-spec) per ecosystem; unknown ones fall back to generic.
_PURL_TYPES = {
    "pypi": "pypi",
    "npm": "npm",
    "go": "golang",
    "maven": "maven",
    "apt": "deb",
    "hf": "huggingface",
}


def purl(artifact: Artifact) -> str:
    """``pkg:pypi/requests@2.32.3?file_name=requests-2.32.3-py3-none-any.whl``: names the exact file."""
    kind = _PURL_TYPES.get(artifact.ecosystem, "generic")
    name = str(canonicalize_name(artifact.name)) if kind == "pypi" else artifact.name
    return (
        f"pkg:{kind}/{quote(name, safe='/')}@{quote(artifact.version, safe='')}"
        f"?file_name={quote(artifact.filename, safe='')}"
    )


def build_sbom(
    artifacts: Sequence[Artifact],
    *,
    bundle_id: str,
    timestamp: str,
    tool_version: str,
    profiles: Sequence[str],
) -> bytes:
    components: list[dict[str, Any]] = []
    for a in sorted(artifacts, key=Artifact.sort_key):
        ref = purl(a)
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": a.name,
            "version": a.version,
            "purl": ref,
            "hashes": [{"alg": "SHA-256", "content": a.sha256}],
            "properties": [
                {"name": "mirrorctl:ecosystem", "value": a.ecosystem},
                {"name": "mirrorctl:filename", "value": a.filename},
                {"name": "mirrorctl:size", "value": str(a.size)},
                *({"name": "mirrorctl:target", "value": t} for t in sorted(a.targets)),
            ],
        }
        components.append(component)
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{bundle_id}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "mirrorctl", "version": tool_version}]},
            "component": {
                "type": "data",
                "bom-ref": f"mirrorctl-bundle:{bundle_id}",
                "name": "mirrorctl bundle " + ", ".join(sorted(profiles)),
            },
        },
        "components": components,
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True).encode() + b"\n"
