"""Signed bundles: the only thing that crosses the gap, and the only contract between the two sides.

manifest.py   the signed manifest and the member naming rules
container.py  the tar framing: a bounded, exact reader and the writer (nothing else opens a bundle's tar)
sbom.py       the CycloneDX SBOM carried in every bundle
export.py     locks + store -> bundle (outside)
verify.py     bundle -> verified manifest and locks, nothing written (inside)
importer.py   bundle -> new served view, all or nothing (inside)
"""

from .export import ExportReport, export_bundle
from .importer import ImportReport, import_bundle
from .verify import VerifiedManifest, verify_bundle

__all__ = [
    "ExportReport",
    "ImportReport",
    "VerifiedManifest",
    "export_bundle",
    "import_bundle",
    "verify_bundle",
]
