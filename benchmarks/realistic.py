"""Side-by-side benchmark on what users meet: per-image latency spread, failing URLs, fixed latency.

Every tool downloads the same URL list into a fresh folder, runs are interleaved
(A B C D A B C D ...) and each figure is the median of --rounds runs. Each run is wrapped in
treecpu.py, so its CPU time covers the whole process tree (fork-server workers included).

Servers, all on 127.0.0.1 with an ephemeral port (scenarios.py):
- nginx (one worker, echo module) serves a corpus of images rendered by imgfetch.server.make_image;
  /v/<file>?s=SECONDS answers after its own delay. No Python in the hot path.
- `python -m imgfetch serve` serves the failures of the faulty scenario (404, 403, 410, 500,
  hang, drip, reset, HTML sent as image/jpeg).

Scenarios:
- lognormal: --count distinct images, each delayed log-normally (median 80 ms, sigma 1.0,
  p99 ~ 0.8 s, capped at 5 s);
- faulty: the lognormal list with ~10 % of its URLs replaced by failures at random positions;
- uniformN: --uniform-count images, each delayed N ms (uniform0, uniform50, uniform200, ...);
- web, web-faulty: --web-urls HTTPS URLs over --web-hosts host names, each on its own loopback
  address, with a private CA; connections and resumed TLS sessions counted from nginx's log
  (webshape.py; needs root, openssl, nginx-light, libnginx-mod-http-echo, curl and aria2).

Images: --image-sizes small (default) serves make_image's 64-320 px images (about 12 KB) in the
plain scenarios; web serves web-sized ones (scenarios.web_size: about 600 x 450, tens of KB), as the
web scenarios always do.

Tools: imgfetch get (defaults), imgfetch get --verify none, benchmarks/threadpool.py
(ThreadPoolExecutor(128), timeout=30), curl --parallel, aria2c and, on uniform0 only,
benchmarks/classic.py (the textbook ProcessPoolExecutor(3) of imgfetch bench; --tools ...,classic).

    python benchmarks/realistic.py --scenarios lognormal,faulty,uniform0,uniform50,uniform200 \\
        --count 4000 --uniform-count 10000 --rounds 3 \\
        --tools imgfetch,imgfetch-verify-none,threadpool,curl,aria2c,classic --json realistic.json
    python benchmarks/realistic.py --scenarios web,web-faulty --web-urls 4000 --rounds 3 --json web.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import webshape
from benchlib import EXTS, HERE, PY
from scenarios import (
    CAP_S,
    FAULT_SERVER_COUNT,
    Scenario,
    check_fault_server,
    check_nginx,
    describe_corpus,
    ensure_corpus,
    faulty,
    lognormal,
    start_nginx,
    uniform,
)

SCENARIOS = ("lognormal", "faulty", "uniform0", "uniform50", "uniform200")
WEB_SCENARIOS = ("web", "web-faulty")
ALL_TOOLS = ("imgfetch", "imgfetch-verify-none", "threadpool", "curl", "aria2c", "classic")
DEFAULT_TOOLS = "imgfetch,imgfetch-verify-none,threadpool,curl,aria2c"
LABELS = {
    "imgfetch": "imgfetch get (defaults)",
    "imgfetch-verify-none": "imgfetch get --verify none",
    "threadpool": "ThreadPoolExecutor(128)",
    "curl": "curl --parallel-max 200",
    "aria2c": "aria2c -j 128",
    "classic": "classic ProcessPoolExecutor(3)",
}
# aria2c has no cap on a URL's total time. These flags bound it as closely as it allows:
# a hang costs 3 tries x 10 s = 30 s; a body slower than 1 KiB/s is aborted after aria2c's
# fixed 10 s start-up grace (not retried); 4xx, 5xx and resets are not retried at all.
ARIA2C_CAPS = ["--connect-timeout=10", "--timeout=10", "--max-tries=3", "--retry-wait=0",
               "--lowest-speed-limit=1K"]
ARIA2C_FLAGS = ["-j", "128", *ARIA2C_CAPS, "--allow-overwrite=true", "--auto-file-renaming=false",
                "--file-allocation=none", "--summary-interval=0", "-q"]
CURL_FLAGS = ["--parallel", "--parallel-max", "200", "--max-time", str(CAP_S), "-s", "--no-progress-meter",
              "--fail"]


def out_name(i: int, url: str) -> str:
    path = url.split("?", 1)[0]
    ext = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    return f"{i:06d}.{ext if ext in EXTS else 'bin'}"


def write_lists(sc: Scenario, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"txt": folder / "urls.txt", "curl": folder / "curl.cfg", "aria2c": folder / "aria2c.txt"}
    files["txt"].write_text("".join(u + "\n" for u in sc.urls))
    files["curl"].write_text("".join(f'url = "{u}"\noutput = "{out_name(i, u)}"\n' for i, u in enumerate(sc.urls)))
    files["aria2c"].write_text("".join(f"{u}\n  out={out_name(i, u)}\n" for i, u in enumerate(sc.urls)))
    return files


# --------------------------------------------------------------------------- tools

def imgfetch_has_max_time() -> bool:
    done = subprocess.run([PY, "-m", "imgfetch", "get", "--help"], capture_output=True, text=True, timeout=60)
    return "--max-time" in done.stdout


def tool_argv(tool: str, lists: dict[str, Path], out: Path, imgfetch_extra: list[str]) -> list[str]:
    if tool in ("imgfetch", "imgfetch-verify-none"):
        extra = ["--verify", "none"] if tool == "imgfetch-verify-none" else []
        return [PY, "-m", "imgfetch", "get", str(lists["txt"]), "-o", str(out), "-q", *extra, *imgfetch_extra]
    if tool == "threadpool":
        return [PY, str(HERE / "threadpool.py"), str(lists["txt"]), str(out), "128"]
    if tool == "classic":
        return [PY, str(HERE / "classic.py"), str(lists["txt"]), str(out)]
    if tool == "curl":
        return ["curl", *CURL_FLAGS, "--output-dir", str(out), "-K", str(lists["curl"])]
    if tool == "aria2c":
        return ["aria2c", "-i", str(lists["aria2c"]), "-d", str(out), *ARIA2C_FLAGS]
    raise ValueError(tool)


def tool_template(tool: str, imgfetch_extra: list[str]) -> str:
    lists = {"txt": Path("LIST.txt"), "curl": Path("LIST.curl.cfg"), "aria2c": Path("LIST.aria2c.txt")}
    argv = tool_argv(tool, lists, Path("OUT"), imgfetch_extra)
    argv = ["python" if a == PY else a.replace(str(HERE.parent) + "/", "") for a in argv]
    return shlex.join(argv)


def web_template(tool: str, imgfetch_extra: list[str]) -> str:
    web = webshape.WebShape(Path("WORK"), Path("CORPUS"), 0)
    web.bundle = Path("TRUST.pem")
    lists = {"txt": Path("LIST.txt"), "curl": Path("LIST.curl.cfg"), "aria2c": Path("LIST.aria2c.txt")}
    argv = web.argv(tool, lists, Path("OUT"), imgfetch_extra)
    return shlex.join(["python" if a == PY else a.replace(str(HERE.parent) + "/", "") for a in argv])


# --------------------------------------------------------------------------- measuring

def count_output(out: Path, good_hashes: set[str]) -> tuple[int, int]:
    """(files, good): files written except manifest.jsonl and aria2c's *.aria2 control files;
    good = files byte-identical to a corpus image."""
    files = [p for p in benchlib.output_files(out) if not p.name.endswith(".aria2")]
    good = sum(1 for p in files if benchlib.sha1(p.read_bytes()) in good_hashes)
    return len(files), good


def run_scenario(sc: Scenario, tools: list[str], args, work: Path, good_hashes: set[str],
                 imgfetch_extra: list[str], web: webshape.WebShape | None = None, servers: tuple = ()) -> list[dict]:
    """Every tool on sc's list, --rounds interleaved rounds. With `web`, each run gets its own
    tagged copy of the list (its requests are told apart in nginx's log) and the web tools' flags.
    Each run also records the servers' CPU time and the other work on the machine meanwhile
    (the machine's CPU time less the run's and the servers')."""
    folder = work / sc.name
    lists = write_lists(sc, folder)
    runs = []
    for r in range(args.rounds):
        for tool in tools:
            run_dir = folder / f"r{r + 1}-{tool}"
            out = run_dir / "out"
            out.mkdir(parents=True)
            tag = f"{sc.name}-{r + 1}-{tool}"
            env, accepted = None, None
            if web is None:
                argv = tool_argv(tool, lists, out, imgfetch_extra)
            else:
                run_lists = write_lists(Scenario(sc.name, sc.title, web.tagged(sc.urls, tag), sc.kinds), run_dir)
                argv, env, accepted = web.argv(tool, run_lists, out, imgfetch_extra), web.env(tool), web.accepted()
            machine0, server0 = benchlib.machine_cpu_s(), benchlib.server_cpu_s(list(servers))
            res = benchlib.run_measured(argv, run_dir / "treecpu.json", run_dir / "log.txt", args.run_timeout, env)
            server_cpu = benchlib.server_cpu_s(list(servers)) - server0
            others = (benchlib.machine_cpu_s() - machine0 - server_cpu - res["cpu_s"]) / max(res["wall_s"], 1e-9)
            if web is not None:
                accepted = web.accepted() - accepted - 1  # less the second status request's own connection
            files, good = count_output(out, good_hashes)
            run = {"round": r + 1, "tool": tool, "wall_s": res["wall_s"], "cpu_s": res["cpu_s"],
                   "user_s": res["user_s"], "sys_s": res["sys_s"], "returncode": res["returncode"],
                   "timed_out": res["timed_out"], "tree_wall_s": res.get("tree_wall_s"),
                   "orphans_killed": res.get("orphans_killed"), "files": files, "good": good,
                   "expected": sc.expected, "loadavg_1m": round(os.getloadavg()[0], 2), "tag": tag,
                   "accepted": accepted, "server_cpu_s": round(server_cpu, 2), "other_cpus": round(others, 2)}
            if res["timed_out"] or (res["returncode"] not in (0, 1, 22) and "faulty" not in sc.name):
                run["log_tail"] = benchlib.log_tail(run_dir / "log.txt")
            runs.append(run)
            print(f"  [{sc.name} {r + 1}/{args.rounds}] {LABELS[tool]:<28} {res['wall_s']:8.2f} s  "
                  f"{good:>6}/{sc.expected} good images, {files} files  cpu {res['cpu_s']:7.2f} s  "
                  f"exit {res['returncode']}{'  TIMED OUT' if res['timed_out'] else ''}"
                  f"{f'  {accepted} connections' if accepted is not None else ''}  server cpu {server_cpu:.1f} s, "
                  f"others {others:.1f} CPUs"
                  f"{'  << FLAG: too few good images' if good < args.min_good * sc.expected else ''}", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
    return runs


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def summarize(runs: list[dict], tools: list[str], expected: int, min_good: float) -> dict[str, dict]:
    summary = {}
    for tool in tools:
        mine = [r for r in runs if r["tool"] == tool]
        if not mine:
            continue
        ips = [r["good"] / r["wall_s"] if r["wall_s"] > 0 else float("nan") for r in mine]
        cpu_ms = [1000 * r["cpu_s"] / r["good"] if r["good"] else float("nan") for r in mine]
        s = {"label": LABELS[tool], "rounds": len(mine), "wall_s": median([r["wall_s"] for r in mine]),
             "wall_runs_s": [r["wall_s"] for r in mine], "good": median([r["good"] for r in mine]),
             "files": median([r["files"] for r in mine]), "expected": expected,
             "images_per_s": median(ips), "cpu_s": median([r["cpu_s"] for r in mine]),
             "cpu_ms_per_image": median(cpu_ms), "returncodes": sorted({r["returncode"] for r in mine}),
             "timed_out": any(r["timed_out"] for r in mine),
             "server_cpu_s": median([r.get("server_cpu_s") for r in mine]),
             "other_cpus": median([r.get("other_cpus") for r in mine]),
             "other_cpus_max": max((r.get("other_cpus") or 0) for r in mine)}
        flags = []
        worst = min(r["good"] for r in mine)
        if worst < min_good * expected:
            flags.append(f"FLAG: only {worst}/{expected} good images in a run")
        if s["timed_out"]:
            flags.append("FLAG: a run hit --run-timeout")
        s["flags"] = flags
        summary[tool] = s
    ref, base = summary.get("imgfetch"), summary.get("threadpool")
    for s in summary.values():
        s["imgfetch_ips_over_tool_ips"] = ref["images_per_s"] / s["images_per_s"] if ref and s["images_per_s"] else None
        s["imgfetch_wall_over_tool_wall"] = ref["wall_s"] / s["wall_s"] if ref and s["wall_s"] else None
        s["cpu_per_image_over_threadpool"] = (s["cpu_ms_per_image"] / base["cpu_ms_per_image"]
                                              if base and base["cpu_ms_per_image"] else None)
    return summary


def fmt(value, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:{spec}}{suffix}"


def report(sc: Scenario, summary: dict[str, dict], rounds: int) -> str:
    info = sc.describe()
    wall_ratio = "faulty" in sc.name
    lines = [f"### {sc.name}: {sc.title}", ""]
    if "delay_median_s" in info:
        lines.append(f"{info['urls']} URLs, {info['image_urls']} of them images; image delay median "
                     f"{info['delay_median_s'] * 1000:.0f} ms, p99 {info['delay_p99_s'] * 1000:.0f} ms, "
                     f"max {info['delay_max_s'] * 1000:.0f} ms. Median of {rounds} interleaved run(s).")
    lines.append("")
    head = ["tool", "wall s", "runs s", "good images", "files", "images/s", "imgfetch ÷ tool (images/s)"]
    if wall_ratio:
        head.append("imgfetch wall ÷ tool wall")
    head += ["CPU s", "CPU ms/image", "CPU/image ÷ threadpool", "exit", "notes"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary.values():
        row = [s["label"], fmt(s["wall_s"], ".2f"), " ".join(f"{w:.2f}" for w in s["wall_runs_s"]),
               f"{s['good']:g}/{s['expected']}", f"{s['files']:g}", fmt(s["images_per_s"], ".0f"),
               fmt(s["imgfetch_ips_over_tool_ips"], ".2f", "×")]
        if wall_ratio:
            row.append(fmt(s["imgfetch_wall_over_tool_wall"], ".2f", "×"))
        row += [fmt(s["cpu_s"], ".2f"), fmt(s["cpu_ms_per_image"], ".2f"),
                fmt(s["cpu_per_image_over_threadpool"], ".2f", "×"),
                ",".join(str(c) for c in s["returncodes"]), "; ".join(s["flags"])]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "images/s = good images (byte-identical to the served image) ÷ wall time. "
              "\"imgfetch ÷ tool (images/s)\" = imgfetch's images/s divided by the tool's: above 1 means "
              "imgfetch was faster."]
    if wall_ratio:
        lines.append("\"imgfetch wall ÷ tool wall\": below 1 means imgfetch finished the list sooner.")
    lines.append("CPU = user + sys of the whole process tree; \"CPU/image ÷ threadpool\": below 1 means less "
                 "CPU per image than the hand-written pool in the same run.")
    lines.append("Server CPU per run (median): " + ", ".join(f"{s['label']} {fmt(s['server_cpu_s'], '.1f')} s"
                                                            for s in summary.values())
                 + ". Other work on the machine during the runs (CPUs busy with neither the tool nor the "
                 f"servers, of {os.cpu_count()}; median, max): "
                 + ", ".join(f"{s['label']} {fmt(s['other_cpus'], '.1f')}, {fmt(s['other_cpus_max'], '.1f')}"
                             for s in summary.values()) + ".")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from lognormal, faulty, uniformN, web, web-faulty "
                             f"(default: {','.join(SCENARIOS)})")
    parser.add_argument("--count", type=int, default=4000, help="URLs of lognormal and faulty (default: 4000)")
    parser.add_argument("--uniform-count", type=int, default=10000, help="URLs of uniformN (default: 10000)")
    parser.add_argument("--web-urls", type=int, default=4000, help="URLs of web and web-faulty (default: 4000)")
    parser.add_argument("--web-hosts", type=int, default=350,
                        help="host names of web and web-faulty, one loopback address each (default: 350)")
    parser.add_argument("--web-trust", choices=("bundle", "ca"), default="bundle",
                        help="trust store every tool gets in the web scenarios: bundle (certifi's roots plus the "
                             "private CA, like a user's) or ca (the private CA alone) (default: bundle)")
    parser.add_argument("--image-sizes", choices=("small", "web"), default="small",
                        help="images of the plain scenarios: small (64-320 px, ~12 KB) or web (~600 x 450, tens of "
                             "KB; the web scenarios always use these) (default: small)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per tool (default: 3)")
    parser.add_argument("--tools", default=DEFAULT_TOOLS,
                        help=f"comma-separated, from {','.join(ALL_TOOLS)}; classic runs on uniform0 only "
                             f"(default: {DEFAULT_TOOLS})")
    parser.add_argument("--imgfetch-args", default="", help="extra flags for both imgfetch rows, one string")
    parser.add_argument("--corpus-size", type=int, default=2000,
                        help="distinct image files nginx serves; URLs stay distinct beyond it (default: 2000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the URL lists (default: 1)")
    parser.add_argument("--corpus-seed", type=int, default=0, help="make_image seed (default: 0)")
    parser.add_argument("--min-good", type=float, default=0.98,
                        help="flag a tool whose run wrote fewer good images than this share of the image URLs "
                             "(default: 0.98)")
    parser.add_argument("--run-timeout", type=float, default=900.0,
                        help="seconds before one tool run is stopped (default: 900)")
    parser.add_argument("--json", type=Path, help="write every run, summary and the machine here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the downloaded files")
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for name in args.scenario_list:
        if name not in ("lognormal", "faulty", *WEB_SCENARIOS) and not re.fullmatch(r"uniform\d+(\.\d+)?", name):
            parser.error(f"unknown scenario {name!r}")
    args.tool_list = [t.strip() for t in args.tools.split(",") if t.strip()]
    for tool in args.tool_list:
        if tool not in ALL_TOOLS:
            parser.error(f"unknown tool {tool!r} (choose from {', '.join(ALL_TOOLS)})")
    if args.rounds < 1 or args.count < 1 or args.uniform_count < 1 or args.corpus_size < 8:
        parser.error("--rounds, --count and --uniform-count must be >= 1, --corpus-size >= 8")
    if not 1 <= args.web_hosts <= 500 or args.web_urls < 1:
        parser.error("--web-hosts must be 1 to 500, --web-urls >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/realistic.py", *(sys.argv[1:] if argv is None else argv)])
    for sig in (signal.SIGTERM, signal.SIGHUP):  # run the finally: blocks (servers stop, /etc/hosts restored)
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))

    webs = [name for name in args.scenario_list if name in WEB_SCENARIOS]
    lacking = webshape.missing(args.tool_list) if webs else []
    if lacking:
        sys.exit(f"the web scenarios need root, openssl, nginx-light, libnginx-mod-http-echo, curl and aria2; "
                 f"missing: {', '.join(lacking)} ({webshape.APT})")
    tools = []
    for tool in args.tool_list:
        binary = {"curl": "curl", "aria2c": "aria2c"}.get(tool)
        if binary and not shutil.which(binary):
            print(f"{binary} is not installed: no {tool} row")
            continue
        tools.append(tool)
    imgfetch_extra = user_extra = shlex.split(args.imgfetch_args)
    if imgfetch_extra:
        LABELS["imgfetch"] = f"imgfetch get {args.imgfetch_args}"
        LABELS["imgfetch-verify-none"] = f"imgfetch get --verify none {args.imgfetch_args}"
    max_time = imgfetch_has_max_time()
    if max_time and not any(a.startswith("--max-time") for a in imgfetch_extra):
        imgfetch_extra = ["--max-time", str(CAP_S), *imgfetch_extra]

    machine = benchlib.machine_info()
    print("## Machine\n")
    for key, value in machine.items():
        print(f"- {key}: {value}")
    print(f"\n## Command\n\n    {command}\n")
    plain = [name for name in args.scenario_list if name not in WEB_SCENARIOS]
    if plain:
        print("## Tools (per-URL cap: %d s wherever the tool allows)\n" % CAP_S)
        for tool in tools:
            print(f"- {LABELS[tool]}: `{tool_template(tool, imgfetch_extra)}`")
        if not max_time:
            print("- note: this imgfetch has no --max-time yet; it runs with its defaults "
                  "(--timeout 10 per read, --deadline 60 per attempt, --retries 3)")
        print("- aria2c cannot cap a URL's total time: a hang costs 3 tries x 10 s; a body slower than 1 KiB/s "
              "is dropped after aria2c's fixed 10 s grace; 4xx/5xx/resets are not retried")
    if webs:
        print(f"## Tools in {', '.join(webs)} ({webshape.CAPS_NOTE})\n")
        for tool in tools:
            if tool != "classic":
                print(f"- {LABELS[tool]}: `{web_template(tool, user_extra)}`")
    print(flush=True)

    results = {"command": command, "machine": machine, "cap_s": CAP_S, "imgfetch_max_time_flag": max_time,
               "tools": {t: {"label": LABELS[t], "command": tool_template(t, imgfetch_extra)} for t in tools},
               "args": {k: v for k, v in vars(args).items() if k not in ("json",)}, "scenarios": {}}
    results["args"]["json"] = str(args.json) if args.json else None

    corpus = ensure_corpus(args.corpus_size, args.corpus_seed, args.image_sizes) if plain else None
    web_corpus = ensure_corpus(args.corpus_size, args.corpus_seed, "web") if webs else None
    good_hashes = {benchlib.sha1(p.read_bytes()) for c in {corpus, web_corpus} - {None}
                   for p in c.iterdir() if p.name != "corpus.json"}
    work = Path(tempfile.mkdtemp(prefix="imgfetch-realistic-"))
    work.chmod(0o755)
    nginx = fault = web = None
    started = time.perf_counter()
    try:
        base = fault_base = None
        if plain:
            nginx, base = start_nginx(corpus, work / "nginx")
            check_nginx(base, corpus)
            print(f"nginx on {base} (corpus {corpus}: {describe_corpus(corpus)})", flush=True)
        if "faulty" in args.scenario_list:
            fault, fault_base = benchlib.start_server(FAULT_SERVER_COUNT)
            check_fault_server(fault_base)
            print(f"faults from imgfetch serve on {fault_base}", flush=True)
        if webs:
            web = webshape.WebShape(work / "web", web_corpus, args.web_hosts, args.web_trust)
            web.start()
            print(f"web: nginx over TLS on {args.web_hosts} loopback addresses, port {web.port}, names in "
                  f"/etc/hosts until the end; every tool trusts {web.bundle} (--web-trust {args.web_trust}) "
                  f"(corpus {web_corpus}: {describe_corpus(web_corpus)})", flush=True)
        print(flush=True)
        for name in args.scenario_list:
            if name in WEB_SCENARIOS:
                sc = Scenario(name, *web.lists(name, args.web_urls, args.seed, args.corpus_size))
            elif name == "lognormal":
                sc = lognormal(base, args.count, args.corpus_size, args.seed)
            elif name == "faulty":
                sc = faulty(base, fault_base, args.count, args.corpus_size, args.seed)
            else:
                sc = uniform(base, name, args.uniform_count, float(name[len("uniform"):]), args.corpus_size)
            here = [t for t in tools if t != "classic" or name == "uniform0"]
            if "classic" in tools and name != "uniform0":
                print(f"  (classic skipped on {name}: it runs on uniform0 only)")
            t0, load0 = time.perf_counter(), os.getloadavg()
            scenario_web = web if name in WEB_SCENARIOS else None
            runs = run_scenario(sc, here, args, work, good_hashes,
                                imgfetch_extra if scenario_web is None else user_extra, scenario_web,
                                (nginx, fault, web.nginx if web else None))
            summary = summarize(runs, here, sc.expected, args.min_good)
            text = report(sc, summary, args.rounds)
            if scenario_web is not None:
                scenario_web.settle("faulty" in name)
                webshape.add_connections(runs, scenario_web.log_counts())
                text += "\n\n" + webshape.connection_report(runs, LABELS)
            print("\n" + text + "\n", flush=True)
            results["scenarios"][name] = {**sc.describe(), "seconds": round(time.perf_counter() - t0, 1),
                                          "loadavg_before": [round(x, 2) for x in load0],
                                          "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                                          "runs": runs, "summary": summary, "markdown": text}
            if args.json:  # after every scenario, so a stopped run keeps what it measured
                args.json.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        benchlib.stop(nginx)
        benchlib.stop(fault)
        if web is not None:
            web.close()  # nginx stops and /etc/hosts is restored
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started
    results["total_seconds"] = round(total, 1)
    flagged = [f"{name}: {s['label']}: {'; '.join(s['flags'])}" for name, sc in results["scenarios"].items()
               for s in sc["summary"].values() if s["flags"]]
    if flagged:
        print("\nFLAGGED (do not read these rows as speed):\n  " + "\n  ".join(flagged))
    print(f"total: {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
