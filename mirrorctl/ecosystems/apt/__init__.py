"""apt (Debian) ecosystem: groundwork, not registered as an ecosystem yet.

Planned adapter (``AptEcosystem``, entry point ``apt`` in ``mirrorctl.ecosystems.v1``):

* profile: suite, components, architectures, packages with optional version pins, an opt-in ``essential`` flag;
* lock: fetch ``dists/<suite>/InRelease``, verify it with the configured keyring (:mod:`.release`), fetch each
  ``Packages`` index, check it against the Release SHA256 lines, then resolve the closure per architecture
  (:mod:`.resolve`); the lock records package, version, architecture, pool filename, size and sha256;
* snapshot: each .deb checked against the index sha256;
* serve / publish: a repository signed with the internal archive key (InRelease, Packages per component and
  architecture, by-hash, pool), published into Pulp with pulp_deb;
* workspace-config: a deb822 ``.sources`` file with ``Signed-By`` pointing at the exported internal keyring.

What exists now: :mod:`.release` (signature and index checks) and :mod:`.resolve` (the closure).
"""
