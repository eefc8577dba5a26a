"""Every README snippet works as written: the python blocks run for real, and every imgfetch command line parses.

A block with ``if __name__ == "__main__":`` runs as a script in a process of its own; any other python block
is the notebook flow and runs in a real Jupyter kernel, a statement per cell. Both run in a temporary folder
whose urls.txt lists images (and one missing image) on the built-in loopback server. The one URL a block
names on the internet, https://example.com/cat.jpg, is answered in the script's own process (fetch() runs
there) with an image of the built-in server, through ``responses``; any other name is refused before DNS.
"""
from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import nbclient
import nbformat
import pytest

from imgfetch.cli.get import options_from_args
from imgfetch.cli.parser import build_parser, parse_command_line

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INTERNET_IMAGE = "https://example.com/cat.jpg"
SHELL_OPERATORS = {"|", "||", "&&", ";", "&"}
REDIRECTIONS = {"<", ">", ">>", "2>"}

# Runs the script as `python script.py` would, with the internet replaced as the docstring says.
OFFLINE = textwrap.dedent("""\
    import runpy, socket, sys
    import responses

    _getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"the README test allows no DNS lookup of {host}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = loopback_only
    internet = responses.RequestsMock(assert_all_requests_are_fired=True)
    internet.add_passthru("http://127.0.0.1")
    internet.get(sys.argv[2], body=open(sys.argv[3], "rb").read(), content_type="image/jpeg")
    internet.start()
    sys.argv = sys.argv[1:2]
    runpy.run_path(sys.argv[0], run_name="__main__")
    internet.stop()  # assert_all_requests_are_fired: the script did fetch it
    """)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text(encoding="utf-8")) if lang == language]


def scripts() -> list[str]:
    return [body for body in blocks("python") if "__name__ == \"__main__\"" in body]


def library_scripts() -> list[str]:
    """The scripts of the functions; the Downloader's, beside the textbook executor, has a test of its own."""
    return [body for body in scripts() if "Downloader(" not in body]


def notebooks() -> list[str]:
    return [body for body in blocks("python") if "__name__ == \"__main__\"" not in body]


@pytest.fixture()
def folder(server, tmp_path, monkeypatch):
    """A temporary folder with urls.txt: six images and one missing image on the built-in server."""
    urls = [*server.image_urls()[:6], server.url("/status/404")]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_the_blocks_this_test_runs():
    assert len(scripts()) == 2 and len(library_scripts()) == 1 and len(notebooks()) == 1
    assert INTERNET_IMAGE in library_scripts()[0]


@pytest.mark.parametrize("index", range(len(library_scripts())))
def test_each_script_block_runs_as_written(server, folder, index):
    (folder / "script.py").write_text(library_scripts()[index], encoding="utf-8")
    (folder / "cat.jpg").write_bytes(server.image_bytes(0))  # what example.com answers
    (folder / "offline.py").write_text(OFFLINE, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    done = subprocess.run([sys.executable, "offline.py", "script.py", INTERNET_IMAGE, "cat.jpg"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "ok 6, failed 1, invalid 0" in lines[0]  # results.summary()
    assert any(line.endswith("HTTP 404 Not Found") for line in lines)  # the failed record
    assert any(re.fullmatch(rf"ok {re.escape(str(folder / 'out'))}/cat-\w+\.jpg \d+ \d+ None", line)
               for line in lines)  # fetch(): one image saved in out
    assert sum(line.startswith("ok http://127.0.0.1") for line in lines) == 6  # iter_download: done already


def test_the_downloader_block_runs_beside_the_textbook_executor(folder):
    [script] = [body for body in scripts() if "Downloader(" in body]
    (folder / "executor.py").write_text(script, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    done = subprocess.run([sys.executable, "executor.py"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    textbook = re.compile(r"\[Process ID\]:\d+ Downloading\.\.")  # the processes' prints may interleave
    assert len(textbook.findall(done.stdout)) == 7
    records = [line for line in textbook.sub("", done.stdout).splitlines() if line]
    assert sorted(records) == ["True"] * 3 + ["failed HTTP 404 Not Found"] + sorted(records)[4:]
    assert len(records) == 10 and all(re.fullmatch(r"ok \d+-\w+\.\w+", line) for line in sorted(records)[4:])
    assert len(list((folder / "classic").iterdir())) == 7  # the textbook saved whatever came back, 404 page too


def test_each_notebook_block_runs_in_a_kernel(folder):
    for body in notebooks():
        statements = ast.parse(body).body
        lines = body.splitlines()
        cells = ["\n".join(lines[node.lineno - 1:node.end_lineno]) for node in statements]
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
        client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                         resources={"metadata": {"path": str(folder)}})
        client.execute()  # raises CellExecutionError, with the cell and its traceback, if one fails
        shown = {mime for cell in notebook.cells for output in cell.outputs for mime in output.get("data", {})}
        assert "text/html" in shown and len(shown & {"image/png", "image/jpeg"}) == 1  # the table and one contact sheet


def command_lines() -> list[list[str]]:
    """Every imgfetch command in the README's sh blocks, as its argv (after `imgfetch`)."""
    found = []
    for body in blocks("sh"):
        for line in body.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            found += [argv for argv in _commands(list(lexer)) if argv is not None]
    return found


def _commands(tokens: list[str]) -> list[list[str] | None]:
    """The imgfetch argv of each command in a shell line, or None for other programs."""
    commands, current = [], []
    for token in [*tokens, ";"]:
        if token in SHELL_OPERATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    found = []
    for words in commands:
        words = [w for i, w in enumerate(words) if w not in REDIRECTIONS and (i == 0 or words[i - 1] not in REDIRECTIONS)]
        if words[:1] == ["imgfetch"]:
            found.append(words[1:])
        elif words[:3] == ["python", "-m", "imgfetch"]:
            found.append(words[3:])
    return found


def test_the_readme_shows_the_commands_this_test_checks():
    argvs = command_lines()
    assert len(argvs) >= 10
    assert ["get", "-", "-o", "out/"] in argvs  # from `curl ... | imgfetch get - -o out/` and `< urls.txt`
    assert ["--version"] in argvs


@pytest.mark.parametrize("argv", command_lines(), ids=shlex.join)
def test_each_readme_command_line_parses(argv, capsys):
    parser = build_parser()
    try:
        args = parse_command_line(parser, argv)
    except SystemExit as exc:  # --version prints and exits 0; a usage error exits 2 after one line
        assert exc.code == 0, capsys.readouterr().err
        return
    if args.command == "get":
        options_from_args(args)  # and get's option values pass their checks
