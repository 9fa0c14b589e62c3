"""The apt closure: alternatives, Provides, versioned constraints, Multi-Arch, pins, the essential set, refusals."""

from __future__ import annotations

import pytest

from mirrorctl.ecosystems.apt.index import FIELDS, LazyStanza, read_index, scan_index
from mirrorctl.ecosystems.apt.release import parse_packages, read_stanzas
from mirrorctl.ecosystems.apt.resolve import BinaryPackage, resolve
from mirrorctl.errors import IntegrityError, ResolutionError


def stanza(name: str, version: str = "1.0", arch: str = "amd64", **fields: str) -> str:
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}"]
    lines += [f"{key.replace('_', '-').title()}: {value}" for key, value in fields.items()]
    lines += [f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb", "Size: 100", f"SHA256: {'a' * 64}"]
    return "\n".join(lines) + "\n"


def index(*stanzas: str) -> list:
    return parse_packages("\n".join(stanzas).encode())


def names(result: list) -> dict[str, str]:
    return {p.name: p.version for p in result}


def test_depends_and_pre_depends_closure_with_highest_version() -> None:
    idx = index(
        stanza("app", depends="liba (>= 1.2)", pre_depends="libpre"),
        stanza("liba", "1.1"),
        stanza("liba", "1.10"),  # Debian ordering: 1.10 > 1.2 > 1.1
        stanza("libpre", "2:0.1"),
        stanza("unrelated"),
    )
    assert names(resolve(idx, ["app"], arch="amd64")) == {"app": "1.0", "liba": "1.10", "libpre": "2:0.1"}


def test_first_satisfiable_alternative_wins() -> None:
    idx = index(
        stanza("app", depends="missing | old (>= 2) | good | other"),
        stanza("old", "1.0"),
        stanza("good"),
        stanza("other"),
    )
    assert names(resolve(idx, ["app"], arch="amd64")) == {"app": "1.0", "good": "1.0"}


def test_alternative_already_chosen_is_reused() -> None:
    idx = index(stanza("app", depends="first | second, tool"), stanza("first"), stanza("second"),
                stanza("tool", depends="second"))
    assert set(names(resolve(idx, ["tool", "app"], arch="amd64"))) == {"app", "tool", "second"}


def test_virtual_package_and_versioned_provides() -> None:
    idx = index(
        stanza("app", depends="mail-transport-agent, libfoo-abi (>= 3)"),
        stanza("postfix", priority="optional", provides="mail-transport-agent"),
        stanza("exim4", priority="standard", provides="mail-transport-agent"),
        stanza("libfoo-old", provides="libfoo-abi"),  # unversioned: cannot satisfy a versioned dependency
        stanza("libfoo3", provides="libfoo-abi (= 3.1)"),
    )
    assert set(names(resolve(idx, ["app"], arch="amd64"))) == {"app", "exim4", "libfoo3"}


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [("<< 2.0", "1.5"), ("<= 1.5", "1.5"), ("= 1.0", "1.0"), (">= 2.0~rc1", "2.0"), (">> 1.5", "2.0")],
)
def test_versioned_constraint_operators(constraint: str, expected: str) -> None:
    # The candidate is the highest version; a constraint it fails is unsatisfiable, exactly as in apt.
    idx = index(stanza("app", depends=f"lib ({constraint})"), stanza("lib", "1.0"), stanza("lib", "1.5"),
                stanza("lib", "2.0"))
    if expected == "2.0":
        assert names(resolve(idx, ["app"], arch="amd64"))["lib"] == "2.0"
    else:
        with pytest.raises(ResolutionError):
            resolve(idx, ["app"], arch="amd64")
        assert names(resolve(idx, ["app"], arch="amd64", pins={"lib": expected}))["lib"] == expected


def test_multi_arch_all_and_any() -> None:
    idx = index(
        stanza("app", depends="python3:any, data"),
        stanza("python3", multi_arch="allowed"),
        stanza("data", arch="all"),
        stanza("armonly", arch="arm64"),
    )
    assert set(names(resolve(idx, ["app"], arch="amd64"))) == {"app", "python3", "data"}
    notallowed = index(stanza("app", depends="perl:any"), stanza("perl"))
    with pytest.raises(ResolutionError, match=r"depends on perl:any"):
        resolve(notallowed, ["app"], arch="amd64")


def test_per_architecture_closure_differs() -> None:
    idx = index(
        stanza("app", arch="amd64", depends="libx86"),
        stanza("app", arch="arm64", depends="libarm"),
        stanza("libx86", arch="amd64"),
        stanza("libarm", arch="arm64"),
    )
    assert set(names(resolve(idx, ["app"], arch="amd64"))) == {"app", "libx86"}
    assert set(names(resolve(idx, ["app"], arch="arm64"))) == {"app", "libarm"}


def test_essential_flag_adds_required_and_essential() -> None:
    idx = index(stanza("app"), stanza("base-files", priority="required"), stanza("dash", essential="yes",
                depends="libc6"), stanza("libc6"), stanza("extra", priority="optional"))
    assert set(names(resolve(idx, ["app"], arch="amd64"))) == {"app"}
    assert set(names(resolve(idx, ["app"], arch="amd64", essential=True))) == {"app", "base-files", "dash", "libc6"}


def test_resolved_record_carries_lock_fields() -> None:
    [pkg] = resolve(index(stanza("solo", "3.2-1")), ["solo"], arch="amd64")
    assert (pkg.filename, pkg.size, pkg.sha256, pkg.architecture) == (
        "pool/main/s/solo/solo_3.2-1_amd64.deb", 100, "a" * 64, "amd64")


def test_refusal_unsatisfiable_names_package_constraint_and_chain() -> None:
    idx = index(stanza("app", depends="mid"), stanza("mid", depends="libz (>= 2)"), stanza("libz", "1.9"))
    with pytest.raises(ResolutionError) as err:
        resolve(idx, ["app"], arch="amd64")
    assert "mid 1.0 on amd64 depends on libz (>= 2)" in err.value.message
    assert "chain: mid <- app" in err.value.message
    assert "candidate libz is 1.9" in (err.value.hint or "")


def test_refusal_missing_package_for_architecture() -> None:
    idx = index(stanza("armonly", arch="arm64"))
    with pytest.raises(ResolutionError, match=r"package armonly does not exist for architecture amd64"):
        resolve(idx, ["armonly"], arch="amd64")


def test_refusal_pin_not_available() -> None:
    with pytest.raises(ResolutionError, match=r"pin lib=9.9 cannot be met on amd64: available versions 1.0"):
        resolve(index(stanza("lib")), ["lib"], arch="amd64", pins={"lib": "9.9"})


def test_refusal_ambiguous_virtual_root() -> None:
    idx = index(stanza("a", provides="v"), stanza("b", provides="v"))
    with pytest.raises(ResolutionError, match=r"v is a virtual package on amd64, provided by a, b"):
        resolve(idx, ["v"], arch="amd64")


def test_conflicting_version_of_chosen_package_is_refused() -> None:
    idx = index(stanza("app", depends="lib (= 1.0), tool"), stanza("tool", depends="lib (>= 2.0)"),
                stanza("lib", "1.0"), stanza("lib", "2.0"))
    with pytest.raises(ResolutionError, match=r"tool 1.0 on amd64 depends on lib \(>= 2.0\)"):
        resolve(idx, ["app"], arch="amd64", pins={"lib": "1.0"})


def test_recommends_followed_only_on_request_and_never_fatal() -> None:
    idx = index(
        stanza("app", recommends="helper | fallback, absent (>= 1)"),
        stanza("helper", recommends="deep"),
        stanza("fallback"),
        stanza("deep"),
    )
    assert set(names(resolve(idx, ["app"], arch="amd64"))) == {"app"}
    assert set(names(resolve(idx, ["app"], arch="amd64", recommends=True))) == {"app", "helper", "deep"}


def test_fast_reader_gives_the_same_closure_as_deb822() -> None:
    text = "\n".join([
        stanza("app", depends="liba (>= 1.2),\n libb | libc", description="an app\n more text\n .\n end"),
        stanza("liba", "1.1"), stanza("liba", "1.10"), stanza("libc"),
    ]).encode()
    fast = read_stanzas(text)
    assert fast[0]["Description"] == "an app\n more text\n .\n end"
    assert resolve(fast, ["app"], arch="amd64") == resolve(parse_packages(text), ["app"], arch="amd64")
    assert names(resolve(fast, ["app"], arch="amd64")) == {"app": "1.0", "liba": "1.10", "libc": "1.0"}


def test_index_reader_keeps_what_resolution_needs() -> None:
    text = "\n".join([
        stanza("app", depends="liba (>= 1.2),\n libb | libc", description="an app\n Depends: not a field\n end"),
        stanza("liba", "1.1"), stanza("liba", "1.10"), stanza("libc"),
    ]).encode()
    fast = read_index(text)
    full = read_stanzas(text)
    assert fast == [{k: v for k, v in s.items() if k in FIELDS} for s in full]
    assert fast[0]["Depends"] == "liba (>= 1.2),\n libb | libc" and "Description" not in fast[0]
    assert resolve(fast, ["app"], arch="amd64") == resolve(parse_packages(text), ["app"], arch="amd64")
    with pytest.raises(IntegrityError, match=r"a stanza without Package or Version"):
        read_index(b"Package: a\nArchitecture: all\n")


def test_fast_reader_refuses_malformed_index() -> None:
    with pytest.raises(IntegrityError, match=r"Packages index: malformed line 'garbage without colon'"):
        read_stanzas(b"Package: a\nVersion: 1\ngarbage without colon\n")
    with pytest.raises(IntegrityError, match=r"a stanza without Package or Version"):
        read_stanzas(b"Package: a\nArchitecture: all\n")


def _scan_text() -> bytes:
    return "\n".join([
        stanza("app", depends="liba (>= 1.2),\n libb | libc", description="an app\n Package: not a field\n end"),
        stanza("liba", "1.1"), stanza("liba", "1.10"), stanza("libc"),
        stanza("virt-user", depends="virt"), "Package: provider\nVersion: 2\nArchitecture: all\nProvides: virt (= 2)\n",
    ]).encode()


def test_scan_reads_what_the_full_reader_reads_and_only_what_resolution_asks_for() -> None:
    text = _scan_text()
    lazy = scan_index(text)
    assert all(isinstance(s, LazyStanza) for s in lazy)
    assert [dict(s) for s in lazy] == read_index(text)  # every field, read in full on demand
    lazy = scan_index(text)
    closure = resolve([BinaryPackage(s) for s in lazy], ["app", "virt-user"], arch="amd64")
    assert closure == resolve(read_index(text), ["app", "virt-user"], arch="amd64")
    assert names(closure) == {"app": "1.0", "liba": "1.10", "libc": "1.0", "virt-user": "1.0", "provider": "2"}
    # Stanzas resolution never examined are never read beyond Package, Architecture and Provides.
    untouched = scan_index(text + b"\nPackage: unused\nVersion: 1\nArchitecture: amd64\n")
    resolve([BinaryPackage(s) for s in untouched], ["libc"], arch="amd64")
    assert untouched[-1]._full is None and untouched[3]._full is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "odd_line",
    [
        "Architecture:all",  # no space
        "Architecture:\tall",  # a tab
        "Provides:  virt",  # two spaces
        "Provides: virt,\n other",  # a continuation line
    ],
)
def test_scan_leaves_an_index_with_unusual_lines_to_the_full_reader(odd_line: str) -> None:
    text = _scan_text() + f"\nPackage: odd\nVersion: 1\n{odd_line}\n".encode()
    read = scan_index(text)
    assert not any(isinstance(s, LazyStanza) for s in read)
    assert read == read_index(text)


def test_scan_refuses_a_stanza_without_package_and_one_that_reads_differently_in_full() -> None:
    with pytest.raises(IntegrityError, match=r"a stanza without Package"):
        scan_index(b"Package: a\nVersion: 1\n\nVersion: 2\nArchitecture: all\n")
    # Two Package lines: the scan takes the first, the full reader the last: refused when it is read in full.
    (twice,) = scan_index(b"Package: a\nVersion: 1\nPackage: b\n")
    assert twice["Package"] == "a"
    with pytest.raises(IntegrityError, match=r"the stanza of 'a' reads differently in full"):
        twice["Version"]
    (no_version,) = scan_index(b"Package: a\nArchitecture: all\n")
    with pytest.raises(IntegrityError, match=r"a stanza without Package or Version"):
        BinaryPackage(no_version).version_text  # noqa: B018
