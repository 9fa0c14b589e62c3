"""The update cycle through the CLI: full bundle, `state export` inside, `bundle export --since --chunk-size`
outside, parts spread over two folders, `bundle verify` / `import` with `--from`; a missing part exits 2 named."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Lock, dump_lock
from mirrorctl.outside.profiles import load_profile
from tests.fixtures.bundles import add_dists, fingerprint
from tests.fixtures.wheels import Dist
from tests.test_bundle_cli import cli, sites  # noqa: F401  (the two-site fixture)


def _relock(outside: Path, work: Path, dists: list[Dist]) -> None:
    artifacts = add_dists(Store(outside / "store"), work, dists)
    profile = load_profile(outside / "profiles" / "web.toml", load_ecosystems())
    lock = Lock("web", profile.inputs_digest, ("pypi:py3.11-manylinux_2_28_x86_64",), tuple(artifacts))
    profile.lock_path.write_text(dump_lock(lock, source="profiles/web.toml"))


def test_help_has_examples() -> None:
    for args in (["state", "export"], ["bundle", "export"], ["bundle", "verify"], ["import"]):
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Example: mirrorctl" in result.output, args
    assert "--since" in CliRunner().invoke(app, ["bundle", "export", "--help"]).output


def test_delta_in_parts_from_two_folders(sites: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    outside, inside = sites
    assert cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)[0] == 0
    (inside / "keys" / "mirrorctl.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())
    assert cli("bundle", "export", "--out", "full.bundle", "web", cwd=outside)[0] == 0
    assert cli("import", str(outside / "full.bundle"), cwd=inside)[0] == 0

    state = tmp_path / "inside.state"
    code, out = cli("state", "export", "--out", str(state), cwd=inside)
    assert code == 0, out
    assert "lineages: " in out and "at sequence 1" in out and "(the store's own state key)" in out
    digest = out.split("state sha256")[1].split()[0]

    _relock(outside, tmp_path / "work2", [Dist("alpha", "1.0"), Dist("beta", "2.1")])
    media = tmp_path / "out"
    media.mkdir()
    code, out = cli(
        "bundle", "export", "--since", str(state), "--chunk-size", "2K", "--out", str(media / "web.bundle"), "web",
        cwd=outside,
    )  # fmt: skip
    assert code == 0, out
    assert "delta bundle" in out and "sequence 2" in out and f"(state {digest})" in out
    assert "1 expected from the inside" in out or "2 expected from the inside" in out
    assert "web.bundle.parts.json + " in out

    a, b = tmp_path / "media-a", tmp_path / "media-b"
    a.mkdir()
    b.mkdir()
    parts = sorted(media.glob("web.bundle.part[0-9]*"))
    assert len(parts) >= 2
    for i, part in enumerate(parts):
        shutil.move(part, (b if i % 2 else a) / part.name)
    shutil.move(media / "web.bundle.parts.json", b / "web.bundle.parts.json")

    code, out = cli("bundle", "verify", str(a / parts[0].name), "--from", str(b), cwd=inside)
    assert code == 0, out
    assert "OK" in out and "delta      against state" in out

    missing = b / parts[1].name
    hidden = tmp_path / parts[1].name
    shutil.move(missing, hidden)
    before = fingerprint(Store(inside / "store"))
    code, out = cli("import", str(b / "web.bundle.parts.json"), "--from", str(a), cwd=inside)
    assert code == 2
    assert f"part 2 of {len(parts)} (web.bundle.part0002) missing in {b}, {a}" in out
    assert fingerprint(Store(inside / "store")) == before
    shutil.move(hidden, missing)

    code, out = cli("import", str(b / "web.bundle.parts.json"), "--from", str(a), cwd=inside)
    assert code == 0, out
    assert "sequence 2" in out
    view = Store(inside / "store").current_view()
    assert view is not None and {(x.name, x.version) for x in view.artifacts} == {("alpha", "1.0"), ("beta", "2.1")}
