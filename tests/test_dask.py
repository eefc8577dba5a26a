"""--executor dask against a real `dask scheduler` and two `dask worker` processes on loopback (more on shards in
test_dask_shards.py), and a LocalCluster."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import tree, wait_for
from imgfetch import download, read_manifest
from imgfetch.cli import main


def assert_clean(out, records) -> None:
    """OUT holds the images of ok records and the manifest parts; no temporary folder, no lock."""
    parts = {"manifest.parts"} | {f"manifest.parts/{name}" for name in os.listdir(out / "manifest.parts")}
    assert tree(out) == {r["path"] for r in records if r["status"] == "ok"} | parts


def test_images_through_two_dask_workers(cluster, tmp_path):
    from imgfetch.server import ImageServer

    with ImageServer(count=120, seed=11, latency_ms=5) as many:
        urls = many.image_urls()
        out = tmp_path / "out"
        results = download(urls, out, executor="dask", scheduler=cluster, threads=8, progress=False,
                           timeout=2, retries=1, shard_size=12)
        assert len(results) == 120 and all(r.status == "ok" for r in results)
        for r in results:
            assert (out / r.path).read_bytes() == many.image_bytes(r.line - 1)
        records = read_manifest(out)
        assert len(records) == 120 and len(os.listdir(out / "manifest.parts")) == 2 * 10
        assert len({r["pid"] for r in records}) > 1  # both Dask worker processes did work
        assert os.getpid() not in {r["pid"] for r in records}
        assert_clean(out, records)


def test_scheduler_needs_the_dask_executor(tmp_path, capsys):
    assert main(["get", "x.txt", "-o", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1", "-q"]) == 2
    assert "--scheduler needs --executor dask" in capsys.readouterr().err


def test_local_cluster_when_no_scheduler_is_given(server, tmp_path):
    results = download(server.image_urls()[:30], tmp_path / "o", executor="dask", workers=2, threads=4,
                       progress=False, timeout=2, shard_size=5)
    assert all(r.status == "ok" for r in results)
    assert len({r.pid for r in results}) == 2 and os.getpid() not in {r.pid for r in results}


def test_missing_dask_exits_2_with_the_install_hint(monkeypatch, server, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    urls = tmp_path / "urls.txt"
    urls.write_text(server.image_urls()[0] + "\n")
    assert main(["get", str(urls), "-o", str(tmp_path / "o"), "--executor", "dask", "-q"]) == 2
    assert capsys.readouterr().err.strip() == "imgfetch: error: --executor dask needs Dask: pip install 'imgfetch[dask]'"
    assert not (tmp_path / "o").exists()



def test_records_done_but_not_yet_reported_when_a_stop_gives_up_are_kept(cluster, monkeypatch, tmp_path):
    """The engine gives up on a stop the moment it starts (no grace, no wait), after every task has
    finished but before any record was collected: each saved image still gets its record."""
    from distributed import wait

    from conftest import tree
    from imgfetch.engine import engine as engine_module
    from imgfetch.options import Options
    from imgfetch.records import Task
    from imgfetch.server import ImageServer
    from imgfetch.store.files import OutputDir
    from imgfetch.urls import normalized_key

    monkeypatch.setattr(engine_module, "STOP_GRACE_S", 0.0)
    monkeypatch.setattr(engine_module, "ABORT_WAIT_S", 0.0)
    opts = Options(executor="dask", scheduler=cluster, timeout=2, retries=0, progress=False)

    def all_finished() -> bool:
        held = list(engine.backend.held) if engine.backend is not None else []
        if not held:
            return False  # nothing handed out yet
        wait(held)  # every task has saved its image; their records wait to be collected
        return True

    with ImageServer(count=4, latency_ms=300) as srv, OutputDir(tmp_path / "out") as out:
        engine = engine_module.Engine(opts, str(out.root), str(out.tmp), stop_requested=all_finished)
        tasks = [Task(url, normalized_key(url), n) for n, url in enumerate(srv.image_urls(), 1)]
        records = list(engine.run(tasks))
        saved = tree(out.root) - {out.tmp.name} - {p for p in tree(out.root) if p.startswith(out.tmp.name + "/")}
    assert sorted(r.line for r in records) == [1, 2, 3, 4] and all(r.status == "ok" for r in records)
    assert saved - {".imgfetch.lock"} == {r.path for r in records}


def test_ctrl_c_does_not_kill_the_local_clusters_workers_mid_save(tmp_path):
    """Without --scheduler the LocalCluster's worker processes are in the terminal's process group:
    a Ctrl-C must not kill the one holding a slow image, which would save it with no record."""
    from imgfetch.server import ImageServer

    with ImageServer(count=20, latency_ms=50) as srv:
        slow = srv.url(srv.images.path(19) + "?latency_ms=2000")
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join([*srv.image_urls()[:6], slow, *srv.image_urls()[6:19]]) + "\n")
        out = tmp_path / "out"
        proc = subprocess.Popen([sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "-q",
                                 "--executor", "dask", "--workers", "1", "--threads", "2", "--timeout", "5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            wait_for(lambda: "/img/" + slow.rsplit("/img/", 1)[1].split("?")[0] in srv.stats.by_path, 60)
            os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C does
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    records = read_manifest(out)
    assert 7 in {r["line"] for r in records}  # in flight at the stop, finished in the grace period
    assert all(r["status"] == "ok" for r in records)
    assert_clean(out, records)  # every image has its record
