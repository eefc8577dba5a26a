"""benchmarks/hostsfile.py: the web benchmark's names leave /etc/hosts exactly as they found it.

Tried on a copy in tmp_path, never on /etc/hosts itself.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
_spec = importlib.util.spec_from_file_location("hostsfile", BENCHMARKS / "hostsfile.py")
hostsfile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostsfile)  # a benchmark script, loaded by its path: benchmarks/ is no package
HostsBlock, remove_stale = hostsfile.HostsBlock, hostsfile.remove_stale

ORIGINAL = b"127.0.0.1 localhost\n::1 localhost ip6-localhost\n# a comment, kept\n10.1.2.3 printer.lan"
ENTRIES = [("127.0.101.1", "img-000.webshape.test"), ("127.0.101.2", "img-001.webshape.test")]


def test_names_are_there_while_open_and_the_file_comes_back_byte_for_byte(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)  # no newline at the end: it must not gain one
    with HostsBlock(ENTRIES, hosts):
        lines = hosts.read_text().splitlines()
        assert "127.0.101.2 img-001.webshape.test" in lines
        assert hosts.read_bytes().startswith(ORIGINAL)  # the lines before ours are never rewritten
    assert hosts.read_bytes() == ORIGINAL


def test_ctrl_c_inside_the_block_restores_the_file(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL + b"\n")
    with pytest.raises(KeyboardInterrupt):
        with HostsBlock(ENTRIES, hosts):
            raise KeyboardInterrupt
    assert hosts.read_bytes() == ORIGINAL + b"\n"


def test_ctrl_c_of_a_running_process_restores_the_file(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL + b"\n")
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; from pathlib import Path; from hostsfile import HostsBlock\n"
                               f"with HostsBlock([('127.0.101.1', 'a.webshape.test')], Path({str(hosts)!r})):\n"
                               "    print('ready', flush=True); time.sleep(30)"],
        cwd=BENCHMARKS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # -c: the cwd is on sys.path
    with child:  # closes its pipes
        try:
            assert child.stdout.readline().strip() == "ready"
            assert b"a.webshape.test" in hosts.read_bytes()
            child.send_signal(signal.SIGINT)
            child.wait(10)
        finally:
            child.kill()
            child.wait(10)
    assert hosts.read_bytes() == ORIGINAL + b"\n"


def test_a_change_made_meanwhile_by_another_program_is_kept(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL + b"\n")
    with HostsBlock(ENTRIES, hosts):
        with open(hosts, "ab") as handle:
            handle.write(b"192.0.2.7 added.meanwhile\n")
    assert hosts.read_bytes() == ORIGINAL + b"\n192.0.2.7 added.meanwhile\n"


def test_a_block_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL + b"\n")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    time.sleep(0.05)
    block = HostsBlock(ENTRIES, hosts)
    block.__enter__()
    left = hosts.read_bytes().replace(f"pid {os.getpid()}".encode(), f"pid {gone.pid}".encode())
    hosts.write_bytes(left)  # as if the run that wrote it had been killed with SIGKILL
    assert remove_stale(hosts) == 1
    assert hosts.read_bytes() == ORIGINAL + b"\n"
