"""Go module paths and versions, by the go command's own rules (golang.org/x/mod ``module`` and ``semver``).

A module path is checked before anything is built from it (a GOPROXY URL, an artifact path), and a version
before it is compared or served::

    check_path("github.com/spf13/cobra")            # None, or raises InvalidPath
    escape_path("github.com/BurntSushi/toml")       # "github.com/!burnt!sushi/toml"
    compare("v1.2.3-pre", "v1.2.3")                 # -1
    pseudo_base("v1.2.4-0.20191109021931-daa7c04131f5")  # "v1.2.3"

Every rule here is one the go command applies; tests/test_go_modpath.py compares the verdicts with the go
command's own on a table of tricky inputs. Errors are :class:`InvalidPath` / :class:`InvalidVersion`
(UserErrors carrying the kind, the value and the reason); callers re-raise them naming their file or artifact.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from mirrorctl.errors import UserError, shorten

# Windows device names: a path element whose part before the first dot is one of these is refused.
_WINDOWS = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MOD_CHARS = _ALNUM | frozenset("-._~")
_IMPORT_CHARS = _MOD_CHARS | frozenset("+")
_FILE_ASCII = _ALNUM | frozenset("!#$%&()+,-.=@[]^_{}~ ")
_FIRST_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz-.")


class InvalidPath(UserError):
    """A module, import or file path outside Go's grammar. ``kind`` is "module", "import" or "file"."""

    def __init__(self, kind: str, path: str, reason: str) -> None:
        self.kind = kind
        self.path = path
        self.reason = reason
        super().__init__(f"malformed {kind} path {shorten(path)!r}: {reason}")


class InvalidVersion(UserError):
    """A version the go command would not accept where it was given; ``pseudo`` when it claims to be one."""

    def __init__(self, version: str, reason: str, *, pseudo: bool = False) -> None:
        self.version = version
        self.reason = reason
        self.pseudo = pseudo
        noun = "pseudo-version" if pseudo else "version"
        super().__init__(f"{noun} {shorten(version)!r} invalid: {reason}")


def _file_char(c: str) -> bool:
    if c < "\x80":
        return c in _FILE_ASCII
    return unicodedata.category(c).startswith("L")


def _elem_error(elem: str, kind: str) -> str | None:
    if elem == "":
        return "empty path element"
    if elem.count(".") == len(elem):
        return f"invalid path element {elem!r}"
    if elem[0] == "." and kind == "module":
        return "leading dot in path element"
    if elem[-1] == ".":
        return "trailing dot in path element"
    allowed = _MOD_CHARS if kind == "module" else _IMPORT_CHARS
    for c in elem:
        if not (_file_char(c) if kind == "file" else c in allowed):
            return f"invalid char {c!r}"
    short = elem.split(".", 1)[0]
    if short.upper() in _WINDOWS:
        return f"{short!r} disallowed as path element component on Windows"
    if kind == "file":
        return None
    # "a~1" looks like a Windows short name (8.3): two paths could name one directory there.
    tilde = short.rfind("~")
    if 0 <= tilde < len(short) - 1 and short[tilde + 1 :].isascii() and short[tilde + 1 :].isdigit():
        return "trailing tilde and digits in path element"
    return None


def _valid_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: what invalid UTF-8 becomes when decoded leniently
        return False
    return True


def _path_error(path: str, kind: str) -> str | None:
    if not _valid_utf8(path):
        return "invalid UTF-8"
    if path == "":
        return "empty string"
    if path[0] == "-" and kind != "file":
        return "leading dash"
    if "//" in path:
        return "double slash"
    if path[-1] == "/":
        return "trailing slash"
    for elem in path.split("/"):
        if (err := _elem_error(elem, kind)) is not None:
            return err
    return None


def check_path(path: str) -> None:
    """Go's ``module.CheckPath``: a module path (a dot in the first element, lowercase there, a valid /vN)."""
    err = _path_error(path, "module")
    if err is None:
        first = path.split("/", 1)[0]
        if first == "":
            err = "leading slash"
        elif "." not in first:
            err = "missing dot in first path element"
        elif path[0] == "-":
            err = "leading dash in first path element"
        else:
            bad = next((c for c in first if c not in _FIRST_CHARS), None)
            if bad is not None:
                err = f"invalid char {bad!r} in first path element"
            elif split_path_version(path) is None:
                err = "invalid version"
    if err is not None:
        raise InvalidPath("module", path, err)


def check_import_path(path: str) -> None:
    """Go's ``module.CheckImportPath``: what may name a package (``+`` allowed, no first-element rules)."""
    if (err := _path_error(path, "import")) is not None:
        raise InvalidPath("import", path, err)


def check_file_path(path: str) -> None:
    """Go's ``module.CheckFilePath``: a file's path inside a module (spaces and most punctuation allowed)."""
    if (err := _path_error(path, "file")) is not None:
        raise InvalidPath("file", path, err)


def is_valid_path(path: str) -> bool:
    try:
        check_path(path)
    except InvalidPath:
        return False
    return True


def split_path_version(path: str) -> tuple[str, str] | None:
    """``example.com/m/v2`` -> (``example.com/m``, ``/v2``); ``gopkg.in/yaml.v3`` -> (``gopkg.in/yaml``,
    ``.v3``); a path without a major suffix -> (path, ""). None when the suffix is malformed (``/v1``, ``/v0``,
    ``/v2.1``, ``/v02``): such a path is not a module path."""
    if path.startswith("gopkg.in/"):
        return _split_gopkg_in(path)
    i = len(path)
    dot = False
    while i > 0 and (path[i - 1].isascii() and (path[i - 1].isdigit() or path[i - 1] == ".")):
        dot = dot or path[i - 1] == "."
        i -= 1
    if i <= 1 or i == len(path) or path[i - 1] != "v" or path[i - 2] != "/":
        return path, ""
    prefix, major = path[: i - 2], path[i - 2 :]
    if dot or len(major) <= 2 or major[2] == "0" or major == "/v1":
        return None
    return prefix, major


def _split_gopkg_in(path: str) -> tuple[str, str] | None:
    i = len(path) - (len("-unstable") if path.endswith("-unstable") else 0)
    while i > 0 and path[i - 1].isascii() and path[i - 1].isdigit():
        i -= 1
    if i <= 1 or path[i - 1] != "v" or path[i - 2] != ".":
        return None
    prefix, major = path[: i - 2], path[i - 2 :]
    if len(major) <= 2 or (major[2] == "0" and major != ".v0"):
        return None
    return prefix, major


def check_path_major(version: str, path_major: str) -> None:
    """Go's ``module.CheckPathMajor``: ``version`` fits the path's major suffix (``/v2`` wants v2.x.y; no
    suffix wants v0, v1 or a ``+incompatible`` build)."""
    if path_major.startswith(".v") and path_major.endswith("-unstable"):
        path_major = path_major[: -len("-unstable")]
    if version.startswith("v0.0.0-") and path_major == ".v1":
        return  # gopkg.in/x.v1 resolves commits of v1 to v0.0.0 pseudo-versions
    m = major(version)
    if path_major == "":
        if m in ("v0", "v1") or build(version) == "+incompatible":
            return
        want = "v0 or v1"
    elif path_major[0] in "/.":
        if m == path_major[1:]:
            return
        want = path_major[1:]
    else:
        want = path_major
    raise InvalidVersion(version, f"should be {want}, not {m}")


def check(path: str, version: str) -> None:
    """Go's ``module.Check``: a module path and a semver version that matches its major suffix."""
    check_path(path)
    if not is_valid(version):
        raise InvalidVersion(version, "not a semantic version")
    split = split_path_version(path)
    check_path_major(version, split[1] if split else "")


# ---- case escaping: upper case becomes "!" + lower case (file systems that fold case stay unambiguous)


def _escape(text: str) -> str:
    return "".join(f"!{c.lower()}" if "A" <= c <= "Z" else c for c in text)


def escape_path(path: str) -> str:
    """Go's ``module.EscapePath``: ``github.com/Azure/go`` -> ``github.com/!azure/go``; checks the path first."""
    check_path(path)
    return _escape(path)


def escape_version(version: str) -> str:
    """Go's ``module.EscapeVersion``: any valid file-name element without ``!``."""
    if _elem_error(version, "file") is not None or "!" in version or not version.isascii():
        raise InvalidVersion(version, "disallowed version string")
    return _escape(version)


def _unescape(escaped: str) -> str | None:
    out: list[str] = []
    bang = False
    for c in escaped:
        if c >= "\x80":
            return None
        if bang:
            bang = False
            if not "a" <= c <= "z":
                return None
            out.append(c.upper())
        elif c == "!":
            bang = True
        elif "A" <= c <= "Z":
            return None
        else:
            out.append(c)
    return None if bang else "".join(out)


def unescape_path(escaped: str) -> str:
    """Go's ``module.UnescapePath``: the inverse of :func:`escape_path`; the result must be a module path."""
    path = _unescape(escaped)
    if path is None:
        raise InvalidPath("module", escaped, "invalid escaped module path")
    check_path(path)
    return path


def unescape_version(escaped: str) -> str:
    """Go's ``module.UnescapeVersion``."""
    version = _unescape(escaped)
    if version is None or _elem_error(version, "file") is not None:
        raise InvalidVersion(escaped, "invalid escaped version")
    return version


# ---- semver, Go's flavour: a leading "v", "v1" and "v1.2" shorthands, no leading zeros, build ignored

_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"^v(?P<major>{_NUM})(?:\.(?P<minor>{_NUM})(?:\.(?P<patch>{_NUM})"
    rf"(?P<pre>-{_IDENT}(?:\.{_IDENT})*)?(?P<build>\+{_IDENT}(?:\.{_IDENT})*)?)?)?$"
)
_BAD_NUM = re.compile(r"^0[0-9]+$")


def _parse(v: str) -> re.Match[str] | None:
    m = _SEMVER.match(v) if isinstance(v, str) and v.isascii() else None
    if m is None or m.end() != len(v):  # "$" would accept a trailing newline
        return None
    pre = m.group("pre")
    if pre and any(_BAD_NUM.match(part) for part in pre[1:].split(".")):
        return None
    return m


def is_valid(v: str) -> bool:
    """Go's ``semver.IsValid``: ``v1``, ``v1.2``, ``v1.2.3``, ``v1.2.3-pre.1+build`` (prerelease and build only
    after a patch number)."""
    return _parse(v) is not None


def canonical(v: str) -> str:
    """Go's ``semver.Canonical``: ``v1.2`` -> ``v1.2.0``, build metadata dropped; "" when invalid."""
    m = _parse(v)
    if m is None:
        return ""
    return f"v{m['major']}.{m['minor'] or 0}.{m['patch'] or 0}{m['pre'] or ''}"


def canonical_version(v: str) -> str:
    """Go's ``module.CanonicalVersion``: :func:`canonical`, keeping a ``+incompatible`` build."""
    c = canonical(v)
    return c + "+incompatible" if c and build(v) == "+incompatible" else c


def major(v: str) -> str:
    m = _parse(v)
    return f"v{m['major']}" if m else ""


def prerelease(v: str) -> str:
    m = _parse(v)
    return (m["pre"] or "") if m else ""


def build(v: str) -> str:
    m = _parse(v)
    return (m["build"] or "") if m else ""


def _key_num(n: str | None) -> tuple[int, str]:
    n = n or "0"
    return (len(n), n)  # no leading zeros: longer is larger, then by digits


def _compare_pre(x: str, y: str) -> int:
    if x == y:
        return 0
    if not x:
        return 1
    if not y:
        return -1
    xs, ys = x[1:].split("."), y[1:].split(".")
    for a, b in zip(xs, ys, strict=False):
        if a == b:
            continue
        an, bn = a.isdigit(), b.isdigit()
        if an != bn:
            return -1 if an else 1
        if an and len(a) != len(b):
            return -1 if len(a) < len(b) else 1
        return -1 if a < b else 1
    return -1 if len(xs) < len(ys) else 1


def compare(v: str, w: str) -> int:
    """Go's ``semver.Compare``: -1, 0 or 1; an invalid version is less than every valid one and equal to
    another invalid one; build metadata (``+incompatible`` too) is ignored."""
    a, b = _parse(v), _parse(w)
    if a is None or b is None:
        return 0 if a is None and b is None else (-1 if a is None else 1)
    for part in ("major", "minor", "patch"):
        ka, kb = _key_num(a[part]), _key_num(b[part])
        if ka != kb:
            return -1 if ka < kb else 1
    return _compare_pre(a["pre"] or "", b["pre"] or "")


def _compare_then_text(x: str, y: str) -> int:
    return compare(x, y) or (x > y) - (x < y)


sort_key = functools.cmp_to_key(_compare_then_text)
"""A key that sorts as Go's ``semver.Sort``: by :func:`compare`, ties broken by the string."""


# ---- pseudo-versions: vX.0.0-yyyymmddhhmmss-rev, vX.Y.(Z+1)-0.yyyymmddhhmmss-rev, vX.Y.Z-pre.0.yyyymmddhhmmss-rev

_PSEUDO = re.compile(
    r"^v[0-9]+\.(?:0\.0-|[0-9]+\.[0-9]+-(?:[^+]*\.)?0\.)[0-9]{14}-[A-Za-z0-9]+(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def is_pseudo(v: str) -> bool:
    """Go's ``module.IsPseudoVersion``: one of the three forms (each optionally ``+incompatible``)."""
    return v.count("-") >= 2 and is_valid(v) and _PSEUDO.match(v) is not None and not v.endswith("\n")


def _split_pseudo(v: str) -> tuple[str, str, str, str]:
    if not is_pseudo(v):
        raise InvalidVersion(v, "syntax error", pseudo=True)
    b = build(v)
    body = v[: len(v) - len(b)] if b else v
    body, rev = body.rsplit("-", 1)
    dash, dot = body.rfind("-"), body.rfind(".")
    if dot > dash:
        return body[:dot], body[dot + 1 :], rev, b
    return body[:dash], body[dash + 1 :], rev, b


def pseudo_parts(v: str) -> tuple[str, str, str]:
    """(timestamp ``yyyymmddhhmmss``, revision, build) of a pseudo-version; InvalidVersion otherwise."""
    _base, stamp, rev, b = _split_pseudo(v)
    return stamp, rev, b


def pseudo_base(v: str) -> str:
    """Go's ``module.PseudoVersionBase``: the tagged version a pseudo-version builds on ("" for the
    ``vX.0.0-`` form). ``v1.2.4-0.2019...-abc`` -> ``v1.2.3``; ``v1.2.3-pre.0.2019...-abc`` -> ``v1.2.3-pre``."""
    base, _stamp, _rev, b = _split_pseudo(v)
    pre = prerelease(base)
    if pre == "":
        if b:
            raise InvalidVersion(v, f"lacks base version, but has build metadata {b!r}", pseudo=True)
        return ""
    if pre == "-0":
        head, patch = base[: -len(pre)].rsplit(".", 1)
        if patch.strip("0") == "":
            raise InvalidVersion(v, f"version before {base} would have negative patch number", pseudo=True)
        return f"{head}.{int(patch) - 1}{b}"
    return base[: -len(".0")] + b


def pseudo_timestamp_valid(v: str) -> bool:
    """Whether the pseudo-version's timestamp is a real UTC time (Go parses it with ``time.Parse``)."""
    import datetime

    stamp = pseudo_parts(v)[0]
    try:
        datetime.datetime.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


# ---- where a GOPROXY serves a module's files (and where the go command caches them, in the same layout)

PROXY_EXTS = ("info", "mod", "zip")


def proxy_path(module: str, version: str, ext: str) -> str:
    """``example.com/Foo`` v1.0.0 ``zip`` -> ``example.com/!foo/@v/v1.0.0.zip``: the path under a GOPROXY base.
    The version must be canonical (a proxy serves no other) and fit the path's major suffix."""
    if ext not in PROXY_EXTS:
        raise ValueError(f"no GOPROXY file ends in .{ext}")
    if canonical_version(version) != version:
        raise InvalidVersion(version, f"not canonical (the proxy serves {canonical_version(version) or 'none'!r})")
    check(module, version)
    return f"{escape_path(module)}/@v/{escape_version(version)}.{ext}"


def list_path(module: str) -> str:
    return f"{escape_path(module)}/@v/list"


def latest_path(module: str) -> str:
    return f"{escape_path(module)}/@latest"


def parse_proxy_path(path: str) -> tuple[str, str | None, str]:
    """The inverse: ``(module, version, ext)``, ext ``info``/``mod``/``zip``, or ``list`` / ``latest`` with
    version None. Raises InvalidPath/InvalidVersion for anything a GOPROXY does not serve."""
    if path.endswith("/@latest"):
        return unescape_path(path[: -len("/@latest")]), None, "latest"
    head, sep, tail = path.rpartition("/@v/")
    if not sep:
        raise InvalidPath("module", path, "not a GOPROXY path (no /@v/ or /@latest)")
    module = unescape_path(head)
    if tail == "list":
        return module, None, "list"
    stem, dot, ext = tail.rpartition(".")
    if not dot or ext not in PROXY_EXTS:
        raise InvalidPath("module", path, "not a GOPROXY path (a version file ends in .info, .mod or .zip)")
    version = unescape_version(stem)
    if proxy_path(module, version, ext) != path:
        raise InvalidPath("module", path, "not the path the go command asks for")
    return module, version, ext
