"""Go modules (issue 15): the foundations, as pure library modules with their own tests.

Nothing here is registered as an ecosystem yet: a registered ecosystem must pass the whole contract suite
(tests/contract), and the adapter class, its entry point in ``mirrorctl.ecosystems.v1``, the lock (minimal
version selection), the fetch plan, the GOPROXY layout, the client configuration and the Pulp strategy come
next. What exists, each module following the go command's own rules (golang.org/x/mod):

    modpath      module paths, import and file paths (CheckPath, CheckImportPath, CheckFilePath), ``!`` case
                 escaping, Go's semver (canonical forms, comparison), pseudo-versions, ``+incompatible``
    dirhash      the ``h1:`` hash (dirhash Hash1) of a module zip, streaming, and of a go.mod's bytes
    modzip       a module zip checked as CheckZip checks it (paths, duplicates, size limits), bounded
    gomodfile    the go.mod parser locking needs (module, go, toolchain, require, exclude, replace, retract)
    gosum        a go.sum read as the go command reads it (lines refused naming file and line)
    profile      the ``[go]`` profile table -> typed specs, errors naming file, field and line
    sumdb/       the checksum database: signed notes, tlog tiles, inclusion and consistency proofs, the client
                 (lookups through the proxy, the evidence a lock carries), the inside's passthrough answers

To come, in this order: the adapter class and its entry point (``go``, the profile table's name) with
``tests/contract/go.py``; the lock (minimal version selection with graph pruning over the ``.mod`` files,
``exclude``, module ``replace``, local replacements refused naming the go.mod line, ``retract`` warned about;
every ``h1:`` checked with ``sumdb``); the fetch plan (``.info``/``.mod``/``.zip`` as three artifacts at
``<escaped module>/@v/<escaped version>.<ext>``, each zip through ``modzip.check_zip``); the GOPROXY
``static_layout`` with the checksum database under ``sumdb/<name>/``; the client configuration; the Pulp
strategy (``FileLayoutPlugin``); docs/go.md.
"""
