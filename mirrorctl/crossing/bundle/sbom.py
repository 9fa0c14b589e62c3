"""A CycloneDX 1.5 SBOM for a bundle: one component per artifact file, with its package URL and sha256.

Plain JSON built by hand (no extra dependency) and deterministic apart from ``serialNumber`` (the bundle id)
and ``metadata.timestamp`` (the bundle's creation time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mirrorctl.ecosystems.base import Ecosystem, package_url
from mirrorctl.lockfile import Artifact

SPEC_VERSION = "1.5"


def purl(artifact: Artifact, ecosystems: Mapping[str, Ecosystem]) -> str:
    """The package URL the artifact's adapter gives (``pkg:pypi/requests@2.32.3?file_name=...``: names the exact
    file); ``pkg:generic/...`` for an ecosystem that is not installed."""
    adapter = ecosystems.get(artifact.ecosystem)
    if adapter is None:
        return package_url("generic", artifact.name, artifact.version, artifact.filename)
    return adapter.purl(artifact)


def build_sbom(
    artifacts: Sequence[Artifact],
    *,
    bundle_id: str,
    timestamp: str,
    tool_version: str,
    profiles: Sequence[str],
    ecosystems: Mapping[str, Ecosystem],
) -> bytes:
    components: list[dict[str, Any]] = []
    for a in sorted(artifacts, key=Artifact.sort_key):
        ref = purl(a, ecosystems)
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
