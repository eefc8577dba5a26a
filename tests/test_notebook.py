"""A real Jupyter kernel runs the README's notebook flow: the widget bar, the HTML table, the
contact sheet, and the quiet fallback to a text bar when ipywidgets is missing."""
from __future__ import annotations

import json

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

WIDGET = "application/vnd.jupyter.widget-view+json"
SAVED_NOTEBOOK_BYTES = 200_000  # the contact sheet stored once (as PNG and JPEG both: 454 KB)


def outputs_of(cell) -> tuple[str, set[str], list]:
    """(all stream text, the MIME types shown, the outputs)."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    mimes = {mime for o in cell.outputs for mime in o.get("data", {})}
    return text, mimes, cell.outputs


def test_notebook_flow_in_a_real_kernel(server, tmp_path):
    urls = server.image_urls()[:8] + [server.url("/status/404"), "not a url"]
    cells = [
        f"import sys, imgfetch\nurls = {json.dumps(urls)}\n"
        "results = imgfetch.download(urls, 'out', workers=1, threads=4, retries=0, timeout=2)",
        "results",
        "results.show(n=12, failed=True)",
        "sys.modules['ipywidgets'] = None  # as if ipywidgets were not installed\n"
        "again = imgfetch.download(urls, 'out2', workers=1, threads=4, retries=0, timeout=2)",
        "df = results.to_pandas()\nprint(len(df), list(df.status).count('ok'), len(again.ok))",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    saved = nbformat.writes(notebook)
    run, table, sheet, fallback, frame = (outputs_of(cell) for cell in nbformat.reads(saved, as_version=4).cells)

    assert WIDGET in run[1]  # the widget bar, with ipywidgets installed
    assert "TqdmWarning" not in run[0] + fallback[0] and "TqdmExperimentalWarning" not in run[0]
    [bar_text] = [o["data"]["text/plain"] for o in run[2] if WIDGET in o.get("data", {})]
    assert "100%" in bar_text and "10/10" in bar_text and "ok=8 failed=1 invalid=1" in bar_text  # not 0%

    html = next(o["data"]["text/html"] for o in table[2] if "text/html" in o.get("data", {}))
    assert "imgfetch results</b>: 10 URLs" in html and "ok 8, failed 1, invalid 1" in html
    assert "HTTP 404 Not Found" in html and html.count("<tr>") >= 10

    [image] = [mime for mime in sheet[1] if mime.startswith("image/")]  # the contact sheet is displayed...
    assert not [o for o in sheet[2] if o.output_type == "execute_result"]  # ...once, not also returned
    assert len(saved) < SAVED_NOTEBOOK_BYTES, f"{len(saved):,} bytes saved, {image} sheet"

    assert WIDGET not in fallback[1]  # no ipywidgets: a text bar, quietly
    assert "100%" in fallback[0] and "10/10" in fallback[0] and "ok=8 failed=1 invalid=1" in fallback[0]
    assert frame[0].strip() == "10 8 8"


def test_a_kernel_completes_and_shows_the_option_keywords(tmp_path):
    """The signatures built from the declarations reach a notebook user: Tab and Shift-Tab."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        client.execute_interactive("import imgfetch", timeout=60)
        code = "imgfetch.download('urls.txt', 'out', max_re"
        client.complete(code, len(code))
        matches = client.get_shell_msg(timeout=30)["content"]["matches"]
        code = "imgfetch.fetch("
        client.inspect(code, len(code))
        shown = client.get_shell_msg(timeout=30)["content"]["data"]["text/plain"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert {"max_redirects=", "max_retry_after="} <= set(matches)
    assert "timeout" in shown and "max_time" in shown and "workers" not in shown  # fetch: one URL's options
