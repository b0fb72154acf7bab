"""Atomic writes never follow a planted symlink (issue 17 item 3).

A symlink an attacker plants at a temporary name in an output folder (the old predictable
``<name>.py.tmp``, or the very random names ``mkstemp`` is about to try) must never have its
target overwritten: temporary files are created exclusively (O_CREAT|O_EXCL, which does not
follow links) and renamed over the destination, which replaces a link, not its target.
"""

from __future__ import annotations

import itertools
import os
import stat
import tempfile
from pathlib import Path

import pytest

from deqfam import fsutil
from deqfam.derive.codegen import TARGETS, output_paths, write_generated
from deqfam.derive.family import load_family

ROOT = Path(__file__).resolve().parents[1]
VICTIM_TEXT = "precious data outside the output folder\n"
#: the first names mkstemp will try once patched (see ``planted_candidates``)
PLANTED = ("planted0", "planted1", "planted2")


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


@pytest.fixture
def planted_candidates(monkeypatch):
    """Make ``tempfile`` try the PLANTED names first (then fresh ones), so a test can plant
    symlinks exactly where the next temporary file would go."""

    def names():
        return itertools.chain(PLANTED, (f"fresh{i}" for i in itertools.count()))

    monkeypatch.setattr(tempfile, "_get_candidate_names", names)


def _plant(dest: Path, victim: Path) -> list[Path]:
    """Symlinks to ``victim`` at every temp name a writer of ``dest`` used or will try."""
    links = [
        dest.with_name(dest.name + ".tmp"),  # the old write_generated / demo name
        dest.with_name(dest.stem + ".tmp" + dest.suffix),  # the old plot name
        dest.with_name(f".{dest.name}.tmp{os.getpid()}"),  # the old checkpoint name
        *(dest.with_name(f".{dest.name}.{n}.tmp{dest.suffix}") for n in PLANTED),
    ]
    for link in links:
        link.symlink_to(victim)
    return links


def test_generate_leaves_planted_symlinks_untouched(tmp_path, victim, planted_candidates):
    fam = load_family("gaussian")
    out = tmp_path / "gen"
    out.mkdir()
    paths = output_paths(fam, out)
    links = [link for p in paths.values() for link in _plant(p, victim)]
    # the committed golden files record the checked verdict (`deqfam generate --builtins`)
    write_generated(fam, out, targets=TARGETS, verdict="admissible")
    assert victim.read_text() == VICTIM_TEXT
    assert all(link.is_symlink() for link in links)
    for path in paths.values():  # byte-identical to the committed golden files
        assert not path.is_symlink()
        assert path.read_bytes() == (ROOT / "generated" / path.name).read_bytes()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and "fresh" in p.name]
    assert leftovers == []


def test_symlink_at_the_destination_is_replaced_not_followed(tmp_path, victim):
    dest = tmp_path / "out.txt"
    dest.symlink_to(victim)
    fsutil.atomic_write_text(dest, "new\n")
    assert victim.read_text() == VICTIM_TEXT
    assert not dest.is_symlink() and dest.read_text() == "new\n"


def test_failed_write_leaves_destination_and_no_temp_file(tmp_path):
    dest = tmp_path / "fig.png"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer failed"):
        with fsutil.atomic_path(dest) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".png")
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_permissions_follow_umask_or_the_replaced_file(tmp_path):
    old = os.umask(0o027)
    try:
        fresh = fsutil.atomic_write_bytes(tmp_path / "fresh.bin", b"x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 600
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"y")
        kept.chmod(0o604)
        fsutil.atomic_write_bytes(kept, b"z")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604
    finally:
        os.umask(old)


def test_checkpoint_save_leaves_planted_symlinks_untouched(tmp_path, victim, planted_candidates):
    import torch

    from deqfam.runtime.train import load_checkpoint, save_checkpoint

    dest = tmp_path / "last.pt"
    _plant(dest, victim)
    state = {"w": torch.arange(4.0), "epoch": 3}
    save_checkpoint(dest, state)
    assert victim.read_text() == VICTIM_TEXT
    loaded = load_checkpoint(dest)
    assert loaded["epoch"] == 3 and torch.equal(loaded["w"], state["w"])


def test_plot_and_report_writes_leave_planted_symlinks_untouched(
    tmp_path, victim, planted_candidates
):
    from deqfam.fsutil import atomic_write_text
    from deqfam.runtime.plots import save_history_png

    png, report = tmp_path / "loss.png", tmp_path / "report.md"
    _plant(png, victim)
    _plant(report, victim)
    save_history_png(png, [3.0, 2.0, 1.5])
    atomic_write_text(report, "# report\n")
    assert victim.read_text() == VICTIM_TEXT
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert report.read_text() == "# report\n"


def test_plot_without_a_suffix_is_a_png_at_exactly_that_path(tmp_path):
    from deqfam.runtime.plots import save_history_png

    save_history_png(tmp_path / "curve", [2.0, 1.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve"]
    assert (tmp_path / "curve").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
