"""Ids that become paths are checked, and the guarded delete/move never leaves its root (symlinks included)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.features.snapshot import current_batch_dir
from pipelines.paths import InvalidIdError, UnsafePathError, check_batch_id, confined, move_tree, remove_tree
from pipelines.settings import Settings

HOSTILE_IDS = ["..", ".", "", "../data", "/tmp", "/", "a/b", "a\\b", "../../etc", "~", "a b", "-rf", "x" * 65,
               "batch\n", "é", None, 3]


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_batch_ids_are_refused_with_a_one_line_error(value) -> None:
    with pytest.raises(InvalidIdError) as err:
        check_batch_id(value)
    message = str(err.value)
    assert message.startswith("batch_id: ") and "\n" not in message


@pytest.mark.parametrize("value", ["25c217eb51a7c139", "b1", "subset-fk", "My_Batch-2024", "x" * 64])
def test_well_formed_batch_ids_pass(value: str) -> None:
    assert check_batch_id(value) == value


def test_remove_and_move_stay_inside_their_root(tmp_path: Path) -> None:
    root = tmp_path / "home"
    (root / "landing" / "b1").mkdir(parents=True)
    (root / "landing" / "b1" / "t.parquet").write_text("x")
    outside = tmp_path / "victim"
    outside.mkdir()
    (outside / "keep").write_text("keep")

    for bad in (root, root / "landing" / "..", root / "..", outside, root / "landing" / ".." / ".." / "victim",
                Path("/")):
        with pytest.raises(UnsafePathError):
            remove_tree(bad, root)
        with pytest.raises(UnsafePathError):
            move_tree(root / "landing" / "b1", bad, root)
    assert (outside / "keep").exists() and (root / "landing" / "b1" / "t.parquet").exists()

    moved = move_tree(root / "landing" / "b1", root / "data" / "b1", root)
    assert moved == root / "data" / "b1" and (moved / "t.parquet").exists()
    assert remove_tree(root / "data" / "b1", root) and not moved.exists()
    assert remove_tree(root / "data" / "b1", root) is False  # nothing there: nothing done


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "home"
    (root / "landing").mkdir(parents=True)
    outside = tmp_path / "victim"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    link = root / "landing" / "evil"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        remove_tree(link, root)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        move_tree(link, root / "data" / "evil", root)
    # A symlinked parent that leads outside is caught too.
    (root / "quarantine").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="not inside"):
        remove_tree(root / "quarantine" / "keep", root)
    assert (outside / "keep").read_text() == "keep" and link.is_symlink()


def test_move_never_overwrites(tmp_path: Path) -> None:
    root = tmp_path
    (root / "a").mkdir()
    (root / "b").mkdir()
    with pytest.raises(FileExistsError):
        move_tree(root / "a", root / "b", root)


def test_confined_resolves_parents(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    assert confined(tmp_path / "x" / ".." / "x" / "y", tmp_path) == Path(os.path.realpath(tmp_path)) / "x" / "y"


def test_a_tampered_current_pointer_is_not_joined_onto_a_path(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.current_pointer.parent.mkdir(parents=True)
    settings.current_pointer.write_text("../../etc\n")
    with pytest.raises(InvalidIdError, match="CURRENT"):
        current_batch_dir(settings)
