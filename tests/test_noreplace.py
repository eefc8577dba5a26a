"""Saving on drives without hard links (vfat, exFAT, many SMB and FUSE mounts): renameat2, else a
placeholder, with the same promises as a link: never clobber, never follow a symlink, adopt the same bytes."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time

import pytest

from conftest import FAST, assert_clean, read_manifest
from imgfetch import download, fetch
from imgfetch.store import noreplace
from imgfetch.store.files import write_atomic

DATA = b"\x89PNG not really, but bytes all the same" * 40
WAYS = {"renameat2": noreplace.RENAME, "no renameat2": noreplace.PLACEHOLDER,
        "renameat2 without the flag": noreplace.PLACEHOLDER}
FUSEFAT, MKFS_VFAT = shutil.which("fusefat"), shutil.which("mkfs.vfat")
FUSERMOUNT = shutil.which("fusermount") or shutil.which("fusermount3")
VFAT_SIZE = 16 << 20  # bytes of the vfat image: FAT16
MOUNT_WAIT_S = 10     # for fusefat to mount, and to exit once unmounted


@pytest.fixture(autouse=True)
def fresh_way(monkeypatch):
    """Each test starts as a new process does, trying os.link first, and leaves the process so."""
    monkeypatch.setattr(noreplace, "_way", noreplace.LINK)


@pytest.fixture()
def link_calls(monkeypatch):
    """os.link refuses as vfat's does (EPERM); the list counts the tries."""
    calls = []

    def refuse(src, dst, *args, **kwargs):
        calls.append(dst)
        raise PermissionError(errno.EPERM, "Operation not permitted", dst)
    monkeypatch.setattr(os, "link", refuse)
    return calls


@pytest.fixture(params=list(WAYS))
def way(request, monkeypatch, link_calls):
    """A machine with renameat2, one without it, and a filesystem whose renameat2 lacks the flag."""
    assert noreplace._rename_noreplace is not None  # glibc >= 2.28 here: the first case is real
    if request.param == "no renameat2":
        monkeypatch.setattr(noreplace, "_rename_noreplace", None)
    elif request.param == "renameat2 without the flag":
        def no_flag(src, dst):
            raise OSError(errno.EINVAL, "Invalid argument", dst)
        monkeypatch.setattr(noreplace, "_rename_noreplace", no_flag)
    return WAYS[request.param]


def folders(tmp_path):
    root, tmp = tmp_path / "out", tmp_path / "out" / ".tmp"
    tmp.mkdir(parents=True)
    return root, tmp


def test_saves_and_remembers_the_way(tmp_path, way, link_calls):
    root, tmp = folders(tmp_path)
    for name in ("a.png", "b.png", "c.png"):
        write_atomic(root, tmp, name, DATA, replace=False)
        assert (root / name).read_bytes() == DATA
    assert noreplace.way() == way and len(link_calls) == 1  # os.link is not tried again after it failed
    assert os.listdir(tmp) == []


def test_refuses_to_clobber_a_different_file(tmp_path, way):
    root, tmp = folders(tmp_path)
    (root / "a.png").write_bytes(b"the user's own file")
    with pytest.raises(FileExistsError, match="a different file is already there"):
        write_atomic(root, tmp, "a.png", DATA, replace=False)
    assert (root / "a.png").read_bytes() == b"the user's own file" and os.listdir(tmp) == []
    write_atomic(root, tmp, "a.png", DATA, replace=True)  # --overwrite still replaces it
    assert (root / "a.png").read_bytes() == DATA and os.listdir(tmp) == []


def test_adopts_a_file_with_the_same_bytes(tmp_path, way):
    root, tmp = folders(tmp_path)
    (root / "a.png").write_bytes(DATA)
    inode = (root / "a.png").stat().st_ino
    write_atomic(root, tmp, "a.png", DATA, replace=False)
    assert (root / "a.png").read_bytes() == DATA and (root / "a.png").stat().st_ino == inode  # left alone


def test_never_follows_a_symlink(tmp_path, way):
    root, tmp = folders(tmp_path)
    outside = tmp_path / "outside.png"
    (root / "a.png").symlink_to(outside)  # dangling: a create through it would make outside.png
    with pytest.raises(FileExistsError, match="a symlink is already there"):
        write_atomic(root, tmp, "a.png", DATA, replace=False)
    assert not outside.exists() and (root / "a.png").is_symlink()


def test_an_empty_placeholder_left_by_a_crash_is_taken_over(tmp_path):
    root, tmp = folders(tmp_path)
    (root / "a.png").touch()  # what a crash between the placeholder and the rename leaves
    write_atomic(root, tmp, "a.png", DATA, replace=False)
    assert (root / "a.png").read_bytes() == DATA


def test_fetch_saves_without_hard_links(server, tmp_path, way):
    r = fetch(server.image_urls()[3], tmp_path / "out", **FAST)
    assert (r.status, r.error) == ("ok", None)
    assert (tmp_path / "out" / r.path).read_bytes() == server.image_bytes(3)
    assert sorted(os.listdir(tmp_path / "out")) == [r.path]


# A real filesystem without hard links: vfat, mounted through FUSE (fusefat), since a kernel
# vfat mount of a loop device needs a vfat module this sandbox's kernel lacks.
@pytest.fixture()
def vfat(tmp_path):
    image, mount = tmp_path / "fat.img", tmp_path / "fat"
    with open(image, "wb") as f:
        f.truncate(VFAT_SIZE)
    subprocess.run([MKFS_VFAT, str(image)], check=True, capture_output=True, timeout=30)
    mount.mkdir()
    # In the foreground, so that this test owns the process and waits for it after unmounting. Its
    # chatter goes to a file: a pipe nobody reads would fill up and stall every file operation.
    log = open(tmp_path / "fusefat.log", "wb")
    proc = subprocess.Popen([FUSEFAT, "-f", "-o", "rw+", str(image), str(mount)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + MOUNT_WAIT_S
        while not os.path.ismount(mount) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not os.path.ismount(mount):
            pytest.skip(f"cannot mount a vfat image with fusefat here: {(tmp_path / 'fusefat.log').read_text()[-200:]}")
        yield mount
    finally:
        subprocess.run([FUSERMOUNT, "-u", str(mount)], capture_output=True, timeout=30)
        try:
            proc.wait(timeout=MOUNT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.skipif(not (FUSEFAT and MKFS_VFAT and FUSERMOUNT and os.path.exists("/dev/fuse")),
                    reason="needs fusefat, mkfs.vfat (dosfstools), fusermount and /dev/fuse")
def test_a_real_vfat_drive(server, vfat):
    r = fetch(server.image_urls()[0], vfat / "one", **FAST)
    assert r.status == "ok" and noreplace.way() == noreplace.PLACEHOLDER  # fusefat: no link, no flag
    urls = server.image_urls()[:12]
    out = vfat / "out"
    results = download(urls, out, workers=2, threads=4, start_method="fork", **FAST)
    assert [(r.status, r.error) for r in results] == [("ok", None)] * len(urls)
    for i, record in enumerate(results):
        assert (out / record.path).read_bytes() == server.image_bytes(i)
    assert_clean(out, read_manifest(out / "manifest.jsonl"))
    again = download(urls, out, workers=1, threads=2, start_method="spawn", **FAST)
    assert {(r.status, r.skipped) for r in again} == {("ok", True)}
