"""File modes of stored files: the web server reads artifacts through a group ACL."""

import stat
from pathlib import Path

from documents import storage


def test_write_atomic_gives_group_read(tmp_path: Path) -> None:
    target = tmp_path / "artifacts" / "document.md"
    storage.write_atomic(target, b"# Title\n")
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o640


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "document.md"
    storage.write_atomic(target, b"one")
    storage.write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [path.name for path in tmp_path.iterdir()] == ["document.md"]
