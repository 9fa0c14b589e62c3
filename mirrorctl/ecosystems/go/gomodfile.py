"""The go.mod parser locking needs (golang.org/x/mod ``modfile``): ``module``, ``go``, ``toolchain``,
``require`` (with ``// indirect``), ``exclude``, ``replace`` (module and local-path forms), ``retract``
(versions and ``[low, high]`` ranges, with the rationale from the comments), each with its line number.

    mod = parse(Path("go.mod").read_bytes(), "team/go.mod")
    mod.module, mod.go, [r.path for r in mod.require if not r.indirect]
    [r for r in mod.replace if r.local]          # a local path: the lock refuses it, naming the line

Both one-line (``require a v1``) and block (``require ( ... )``) forms; ``//`` comments; ``"quoted"``
strings (a backquote is refused, as the go command refuses it). ``strict`` (a team's own go.mod) refuses
unknown directives as the go command does; a dependency's go.mod is read ``strict=False`` (the go command
ignores what it does not know there, and its ``replace`` and ``exclude`` lines). Versions are canonicalized
as the go command does (``v1.2`` -> ``v1.2.0``). Errors are :class:`GoModError` naming the file and line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from mirrorctl.ecosystems.go import modpath
from mirrorctl.errors import UserError, shorten

_GO_VERSION = re.compile(r"^(?:[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))?(?:(?:rc|beta)[1-9][0-9]*)?$")
_TOOLCHAIN = re.compile(
    r"^(?:default|go(?:[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))?"
    r"(?:(?:rc|beta)[1-9][0-9]*)?(?:-[A-Za-z0-9._+-]+)?)$"
)
_KNOWN = ("module", "go", "toolchain", "require", "exclude", "replace", "retract", "godebug", "tool", "ignore")


class GoModError(UserError):
    """A go.mod line the go command would refuse: ``source`` names the file, ``line`` the line."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}", hint="run `go mod tidy` on it, or fix the line by hand")


@dataclass(frozen=True, slots=True)
class Require:
    path: str
    version: str
    indirect: bool
    line: int


@dataclass(frozen=True, slots=True)
class Exclude:
    path: str
    version: str
    line: int


@dataclass(frozen=True, slots=True)
class Replace:
    old_path: str
    old_version: str  # "" replaces every version
    new_path: str
    new_version: str  # "" for a local path
    line: int

    @property
    def local(self) -> bool:
        """A directory on the machine that ran ``go``: nothing a mirror can serve."""
        return self.new_version == ""


@dataclass(frozen=True, slots=True)
class Retract:
    low: str
    high: str  # == low for a single version
    rationale: str
    line: int


@dataclass(frozen=True, slots=True)
class GoMod:
    module: str | None
    go: str | None
    toolchain: str | None
    require: tuple[Require, ...] = ()
    exclude: tuple[Exclude, ...] = ()
    replace: tuple[Replace, ...] = ()
    retract: tuple[Retract, ...] = ()
    module_line: int = 0
    deprecated: str = field(default="")  # the "Deprecated:" paragraph of the module line's comment


@dataclass
class _Line:
    no: int
    tokens: list[str]
    before: list[str]  # comment lines directly above
    suffix: str | None  # the comment at the end of the line


_TOKEN = re.compile(r'\s+|//[^\n]*|"(?:[^"\\\n]|\\.)*"?|=>|[()\[\],]|(?:[^\s()\[\],"=]|=(?!>))+')


def _lex(text: str, source: str) -> list[list[tuple[int, str]]]:
    """Split into lines of (line number, token); comments kept as tokens starting with //."""
    lines: list[list[tuple[int, str]]] = []
    for no, raw in enumerate(text.split("\n"), 1):
        toks: list[tuple[int, str]] = []
        pos = 0
        while pos < len(raw):
            m = _TOKEN.match(raw, pos)
            if m is None or m.end() == pos:
                raise GoModError(source, no, f"unexpected input {shorten(raw[pos:], 40)!r}")
            tok = m.group(0)
            pos = m.end()
            if tok.startswith(("\t", " ", "\r")) or tok.isspace():
                continue
            if (tok[0] == '"' and not tok.endswith('"')) or tok == '"':
                raise GoModError(source, no, "unterminated quoted string")
            toks.append((no, tok))
        lines.append(toks)
    return lines


def _unquote(tok: str, source: str, no: int) -> str:
    if tok.startswith('"'):
        try:
            value = ast.literal_eval(tok)
        except (ValueError, SyntaxError) as exc:
            raise GoModError(source, no, f"invalid quoted string {shorten(tok)!r}") from exc
        if not isinstance(value, str):
            raise GoModError(source, no, f"invalid quoted string {shorten(tok)!r}")
        return value
    if any(q in tok for q in "\"'`"):
        raise GoModError(source, no, f"{shorten(tok)!r}: unquoted string cannot contain quote")
    return tok


def _statements(text: str, source: str) -> list[tuple[str, _Line]]:
    """(verb, line) for each directive, block entries as lines of their own."""
    out: list[tuple[str, _Line]] = []
    pending: list[str] = []
    block: str | None = None
    block_comments: list[str] = []
    block_line = 0
    for toks in _lex(text, source):
        if not toks:
            pending = []
            continue
        no = toks[0][0]
        words = [t for _, t in toks if not t.startswith("//")]
        comment = next((t for _, t in toks if t.startswith("//")), None)
        if not words:
            pending.append(comment or "")
            continue
        if block is not None:
            if words == [")"]:
                block = None
                pending = []
                continue
            before = pending if pending or comment else block_comments
            line = _Line(no, words, before, comment)
            out.append((block, line))
            pending = []
            continue
        if len(words) == 2 and words[1] == "(":
            block, block_comments, pending, block_line = words[0], pending, [], no
            continue
        out.append((words[0], _Line(no, words[1:], pending, comment)))
        pending = []
    if block is not None:
        raise GoModError(
            source, len(text.split("\n")), f"syntax error (unterminated {block} block started at line {block_line})"
        )
    return out


def _comment_text(comments: list[str]) -> str:
    return "\n".join(c[2:].strip() for c in comments if c.startswith("//"))


def _version(verb: str, path: str, tok: str, source: str, no: int) -> str:
    v = _unquote(tok, source, no)
    cv = modpath.canonical_version(v)
    if cv == "":
        raise GoModError(source, no, f"{verb} {path}: version {shorten(v)!r} invalid: must be of the form v1.2.3")
    return cv


def _path(verb: str, tok: str, source: str, no: int) -> str:
    p = _unquote(tok, source, no)
    try:
        modpath.check_import_path(p)
    except modpath.InvalidPath as exc:
        raise GoModError(source, no, f"{verb}: {exc}") from exc
    return p


def _major_ok(verb: str, path: str, version: str, source: str, no: int) -> None:
    split = modpath.split_path_version(path)
    if split is None:
        raise GoModError(source, no, f"{verb} {path}: invalid module path")
    try:
        modpath.check_path_major(version, split[1])
    except modpath.InvalidVersion as exc:
        raise GoModError(source, no, f"{verb} {path}: {exc}") from exc


def is_directory_path(p: str) -> bool:
    """modfile's rule: a replacement that is a file system path (``./x``, ``../x``, ``/x``, a drive letter)."""
    return (
        p in (".", "..")
        or p.startswith(("./", "../", "/", ".\\", "..\\"))
        or (len(p) >= 2 and p[1] == ":" and p[0].isalpha())
    )


def parse(data: bytes, source: str, *, strict: bool = True) -> GoMod:
    """Parse a go.mod's bytes; ``source`` names it in errors (``team/go.mod``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GoModError(source, data[: exc.start].count(b"\n") + 1, "not valid UTF-8") from exc
    module = go = toolchain = None
    module_line = 0
    deprecated = ""
    require: list[Require] = []
    exclude: list[Exclude] = []
    replace: list[Replace] = []
    retract: list[Retract] = []
    for verb, line in _statements(text, source):
        no, args = line.no, line.tokens

        def fail(reason: str, no: int = no) -> GoModError:
            return GoModError(source, no, reason)

        if verb == "module":
            if module is not None:
                raise fail(f"repeated module statement (first on line {module_line})")
            if len(args) != 1:
                raise fail("usage: module module/path")
            module, module_line = _unquote(args[0], source, no), no
            text_c = _comment_text([*line.before, *([line.suffix] if line.suffix else [])])
            deprecated = _deprecation(text_c)
        elif verb == "go":
            if go is not None:
                raise fail("repeated go statement")
            if len(args) != 1 or not _GO_VERSION.match(args[0]):
                raise fail(f"invalid go version {shorten(' '.join(args))!r}: must match format 1.23.0")
            go = args[0]
        elif verb == "toolchain":
            if toolchain is not None:
                raise fail("repeated toolchain statement")
            if len(args) != 1 or not _TOOLCHAIN.match(args[0]):
                raise fail(f"invalid toolchain version {shorten(' '.join(args))!r}: must match format go1.23.0")
            toolchain = args[0]
        elif verb in ("require", "exclude"):
            if verb == "exclude" and not strict:
                continue
            if len(args) != 2:
                raise fail(f"usage: {verb} module/path v1.2.3")
            p = _path(verb, args[0], source, no)
            v = _version(verb, p, args[1], source, no)
            _major_ok(verb, p, v, source, no)
            if verb == "require":
                require.append(Require(p, v, _indirect(line.suffix), no))
            else:
                exclude.append(Exclude(p, v, no))
        elif verb == "replace":
            if strict:
                replace.append(_replace(args, source, no))
        elif verb == "retract":
            retract.append(_retract(args, line, source))
        elif verb in _KNOWN:
            continue  # godebug, tool, ignore: nothing a mirror needs
        elif strict:
            raise fail(f"unknown directive: {shorten(verb)}")
    return GoMod(
        module, go, toolchain, tuple(require), tuple(exclude), tuple(replace), tuple(retract), module_line, deprecated
    )


def _deprecation(text: str) -> str:
    # modfile: a paragraph starting "Deprecated: " in the module comment.
    for para in text.split("\n\n"):
        if para.startswith("Deprecated: "):
            return para[len("Deprecated: ") :].replace("\n", " ").strip()
    return ""


def _indirect(suffix: str | None) -> bool:
    if not suffix:
        return False
    words = suffix[2:].strip()
    return words == "indirect" or words.startswith("indirect;")


def _replace(args: list[str], source: str, no: int) -> Replace:
    usage = "usage: replace module/path [v1.2.3] => other/module v1.4 (or => ../local/directory)"
    if "=>" not in args:
        raise GoModError(source, no, usage)
    arrow = args.index("=>")
    left, right = args[:arrow], args[arrow + 1 :]
    if len(left) not in (1, 2) or len(right) not in (1, 2):
        raise GoModError(source, no, usage)
    old = _path("replace", left[0], source, no)
    old_v = _version("replace", old, left[1], source, no) if len(left) == 2 else ""
    if old_v:
        _major_ok("replace", old, old_v, source, no)
    new = _unquote(right[0], source, no)
    if len(right) == 1:
        if not is_directory_path(new):
            raise GoModError(
                source,
                no,
                "replacement module without version must be directory path (rooted or starting with ./ or ../)",
            )
        return Replace(old, old_v, new, "", no)
    if is_directory_path(new):
        raise GoModError(source, no, "replacement module directory path must not have a version")
    try:
        modpath.check_path(new)
    except modpath.InvalidPath as exc:
        raise GoModError(source, no, f"replace {old}: {exc}") from exc
    new_v = _version("replace", new, right[1], source, no)
    _major_ok("replace", new, new_v, source, no)
    return Replace(old, old_v, new, new_v, no)


def _retract(args: list[str], line: _Line, source: str) -> Retract:
    no = line.no
    rationale = _comment_text([*line.before, *([line.suffix] if line.suffix else [])])
    if len(args) == 1:
        v = _version("retract", "", args[0], source, no)
        return Retract(v, v, rationale, no)
    if len(args) == 5 and args[0] == "[" and args[2] == "," and args[4] == "]":
        low = _version("retract", "", args[1], source, no)
        high = _version("retract", "", args[3], source, no)
        return Retract(low, high, rationale, no)
    raise GoModError(source, no, "usage: retract version or retract [low, high]")
