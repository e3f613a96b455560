"""``melodance data import``: copy a Music-to-Dance layout into data/ with real DVC."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from melodance.data.importer import import_corpus, uncommitted_data_changes
from melodance.data.layout import LayoutError, read_corpus
from melodance.data.synth import SynthConfig, tree_digest, write_corpus

LAYOUT_FILES = {"audio.mp3", "audio.wav", "config.json", "skeletons.json"}


def _dvc(repo: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo,
                          capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory) -> Path:
    """An empty git + DVC repository, made once (``dvc init`` takes a second)."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    _dvc(repo, "config", "core.check_update", "false")
    return repo


@pytest.fixture
def repo(template_repo, tmp_path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(template_repo, dst, symlinks=True)
    return dst


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory) -> Path:
    """A one-sequence synthetic corpus, a valid layout that needs no shared data."""
    out = tmp_path_factory.mktemp("small") / "corpus"
    write_corpus(out, SynthConfig(sequences={"cha_cha": 1, "rumba": 0, "tango": 0, "waltz": 0}))
    return out


def _run(argv) -> int:
    from melodance.data import commands

    parser = argparse.ArgumentParser(prog="melodance")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_refuses_an_empty_folder(repo, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    before = tree_digest(repo)
    with pytest.raises(LayoutError, match="not the Music-to-Dance layout"):
        import_corpus(empty, repo)
    assert tree_digest(repo) == before
    assert not (repo / "data").exists()


def test_refuses_a_folder_of_random_files(repo, tmp_path):
    src = tmp_path / "random"
    (src / "songs").mkdir(parents=True)
    (src / "notes.txt").write_text("not a dataset")
    (src / "DANCE_C_1.json").write_text("{}")
    (src / "songs" / "a.mp3").write_bytes(b"\x00" * 100)
    before = tree_digest(repo)
    with pytest.raises(LayoutError, match=str(src)):
        import_corpus(src, repo)
    # a sequence folder without its skeletons is not the layout either
    (src / "DANCE_C_1").mkdir()
    (src / "DANCE_C_1" / "config.json").write_text('{"start_position": 0, "end_position": 9}')
    (src / "DANCE_C_1" / "audio.mp3").write_bytes(b"\x00" * 100)
    with pytest.raises(LayoutError, match="skeletons.json"):
        import_corpus(src, repo)
    assert tree_digest(repo) == before


def test_command_refuses_a_folder_that_is_not_the_layout(repo, tmp_path):
    with pytest.raises(LayoutError, match="not the Music-to-Dance layout"):
        _run(["data", "import", str(tmp_path), "--repo", str(repo)])
    assert not (repo / "data").exists()


def test_refuses_a_repository_without_dvc(small_synth, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ValueError, match="not a DVC repository"):
        import_corpus(small_synth, plain)
    assert list(plain.iterdir()) == []


def test_refuses_data_that_dvc_does_not_track(repo, small_synth):
    (repo / "data").mkdir()
    (repo / "data" / "mine.txt").write_text("work in progress")
    with pytest.raises(ValueError, match="not tracked by DVC"):
        import_corpus(small_synth, repo)
    assert [p.name for p in (repo / "data").iterdir()] == ["mine.txt"]
    assert not (repo / "data.dvc").exists()


def test_imports_real_sequences_and_guards_uncommitted_changes(repo, real_data, tmp_path,
                                                                small_synth):
    src = tmp_path / "src"
    for name in ("DANCE_C_2", "DANCE_W_1"):
        (src / name).mkdir(parents=True)
        for f in (real_data / name).iterdir():
            shutil.copyfile(f, src / name / f.name)  # the shared files are read-only
    (src / "README.md").write_text("not copied")
    (src / "DANCE_C_2" / "notes.txt").write_text("not copied either")

    assert import_corpus(src, repo) == ["DANCE_C_2", "DANCE_W_1"]
    data = repo / "data"
    assert (repo / "data.dvc").is_file()
    assert sorted(p.name for p in data.iterdir()) == ["DANCE_C_2", "DANCE_W_1"]
    for d in data.iterdir():
        names = {p.name for p in d.iterdir()}
        assert names <= LAYOUT_FILES and len(names) == 3
        for f in d.iterdir():
            assert f.read_bytes() == (real_data / d.name / f.name).read_bytes()
    assert [s.n_frames for s in read_corpus(data)] == [1890, 1430]
    assert uncommitted_data_changes(repo) == []
    assert "up to date" in _dvc(repo, "status")

    # a change DVC has not recorded blocks the next import and survives it
    edited = data / "DANCE_W_1" / "config.json"
    edited.write_text('{"start_position": 0, "end_position": 1400}')
    dvc_file = (repo / "data.dvc").read_text()
    with pytest.raises(ValueError, match="not committed to DVC"):
        import_corpus(small_synth, repo)
    assert edited.read_text() == '{"start_position": 0, "end_position": 1400}'
    assert (repo / "data.dvc").read_text() == dvc_file

    # once data/ matches data.dvc again, an import replaces it
    _dvc(repo, "checkout", "-q", "--force", "data.dvc")
    assert uncommitted_data_changes(repo) == []
    assert import_corpus(small_synth, repo) == ["DANCE_C_1"]
    assert sorted(p.name for p in data.iterdir()) == ["DANCE_C_1"]
    assert (repo / "data.dvc").read_text() != dvc_file
    assert uncommitted_data_changes(repo) == []
    assert [p.name for p in repo.iterdir() if p.name.startswith(".data")] == []


def test_regenerated_synth_corpus_matches_its_dvc_record(repo, monkeypatch):
    """What `make demo` relies on: synth -> dvc add -> synth again -> dvc status clean."""
    monkeypatch.chdir(repo)
    (repo / "params.yaml").write_text(
        "data:\n  synth:\n    sequences: {cha_cha: 0, rumba: 1, tango: 0, waltz: 1}\n")
    assert _run(["data", "synth"]) == 0
    _dvc(repo, "add", "-q", "data")
    shutil.rmtree(repo / "data")
    assert _run(["data", "synth"]) == 0
    assert uncommitted_data_changes(repo) == []
    assert "up to date" in _dvc(repo, "status", "data.dvc")


@pytest.mark.parametrize("kind", ["dangling", "self_loop", "cycle"])
def test_refuses_a_broken_sequence_symlink_naming_it(repo, small_synth, tmp_path, kind):
    """Issue 22 item 11: a dangling or looping DANCE_* link was skipped silently."""
    src = tmp_path / "src"
    shutil.copytree(small_synth, src)
    bad = src / "DANCE_W_99"
    if kind == "dangling":
        bad.symlink_to(tmp_path / "gone")
    elif kind == "self_loop":
        bad.symlink_to(bad)
    else:
        (src / "DANCE_W_98").symlink_to(bad)
        bad.symlink_to(src / "DANCE_W_98")
    before = tree_digest(repo)
    with pytest.raises(LayoutError, match="DANCE_W_9[89]: symbolic link") as e:
        import_corpus(src, repo)
    assert ("does not exist" if kind == "dangling" else "loops") in str(e.value)
    assert tree_digest(repo) == before
    assert not (repo / "data").exists()
