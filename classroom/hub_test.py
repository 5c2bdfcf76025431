"""The hub test: a real JupyterHub on 127.0.0.1, several students at once, notebook 04 for each.

    python course.py hub-test                          # 4 students, notebook 04, full mode
    python course.py hub-test --students 6 --notebooks 02 04

What it does, with bounded waits everywhere and only 127.0.0.1 addresses:

1. Installs its own tools, once, into ``.hub-env/`` (gitignored; reinstalled only when a pin
   below changes): a venv with JupyterHub, jupyter_server, nbgitpuller and websocket-client
   from PyPI, and configurable-http-proxy from npm (Node.js from apt-get when root has none).
   The single-user servers run from that venv; their one kernel, "course", is the course's
   own .venv python, as on a hub whose user environment holds the course's requirements.
2. Copies the course (tracked files plus new unignored ones, from the working tree) twice: a
   shared folder, and a local git repository that nbgitpuller clones from.
3. In a private mount namespace (``unshare -m``: Linux, root) where the shared folder, the
   course's .venv and the hub venv are read-only, starts the hub with the DummyAuthenticator
   (one shared password) and SimpleLocalProcessSpawner (no system users; ``--allow-root``
   passed to the single-user servers as root).
4. For each student, concurrently: logs in through the hub's login form, gets an API token,
   starts their server (POST /hub/api/users/NAME/server), gets the course (every other
   student: the read-only shared folder, linked into the home as ``course``; the others:
   nbgitpuller's ``git-pull`` API cloning the repository into ``~/course``, as the link in
   docs/INSTRUCTORS.md does), opens a session on the notebook, and runs its code cells in
   order over the kernel channels websocket.
5. Passes when every student's every cell ran with no error, and the shared folder is unchanged.
   Prints per-student wall time and peak kernel memory (VmHWM from /proc), and the peak of
   all kernels' resident memory together.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    NOTEBOOKS,
    REPO,
    changes,
    copy_course,
    listing,
    mib,
    peak_rss_kib,
    read_only_prefix,
    rss_kib,
    unshare_problem,
)

HUB_ENV = REPO / ".hub-env"
PIP_PINS = ["jupyterhub==6.1.1", "jupyter-server==2.21.1", "nbgitpuller==1.3.0", "websocket-client==1.9.2"]
# configurable-http-proxy 5 needs Node.js 20 or newer; Debian 12's apt-get gives Node 18, which 4.6 supports.
PROXY_PINS = {20: "configurable-http-proxy@5.3.0", 0: "configurable-http-proxy@4.6.3"}
KERNEL_NAME = "course"


def say(message: str) -> None:
    print(f"hub_test: {message}", flush=True)


def run(cmd: list, timeout: int, **kwargs) -> None:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    result = subprocess.run([str(c) for c in cmd], timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"hub_test: `{' '.join(str(c) for c in cmd)}` failed (exit {result.returncode}).")


# ----------------------------------------------------------------------------- the tools, once
def hub_python() -> Path:
    return HUB_ENV / "venv" / "bin" / "python"


def proxy_command() -> Path:
    return HUB_ENV / "node" / "node_modules" / ".bin" / "configurable-http-proxy"


def node_major() -> int | None:
    if not shutil.which("node"):
        return None
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    match = re.match(r"v(\d+)", out.stdout.strip())
    return int(match.group(1)) if match else None


def proxy_pin(major: int) -> str:
    return next(pin for least, pin in sorted(PROXY_PINS.items(), reverse=True) if major >= least)


def ensure_hub_env(course_python: Path) -> None:
    """Install JupyterHub and the proxy into .hub-env, unless the pins are what the stamp says."""
    if not shutil.which("npm") or node_major() is None:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            say("installing Node.js and npm for configurable-http-proxy (apt-get)")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "update", "-qq"], 600, env=env)
            run(["apt-get", "install", "-y", "-qq", "nodejs", "npm"], 900, env=env, stdout=subprocess.DEVNULL)
        else:
            raise SystemExit("hub_test: the hub's proxy needs Node.js and npm: install them (e.g. apt-get install "
                             "nodejs npm) and run the command again.")
    npm_pins = [proxy_pin(node_major() or 0)]
    want = hashlib.sha256(json.dumps([PIP_PINS, npm_pins, str(course_python)]).encode()).hexdigest()
    stamp = HUB_ENV / ".installed"
    if stamp.is_file() and stamp.read_text().strip() == want and hub_python().exists() and proxy_command().exists():
        say(".hub-env is up to date")
        return
    say(f"installing {', '.join(PIP_PINS + npm_pins)} into .hub-env (a minute or two)")
    HUB_ENV.mkdir(exist_ok=True)
    if not hub_python().exists():
        run([sys.executable, "-m", "venv", HUB_ENV / "venv"], 300)
    run([hub_python(), "-m", "pip", "install", "-qq", *PIP_PINS], 900)
    run(["npm", "install", "--prefix", HUB_ENV / "node", "--no-audit", "--no-fund", "--loglevel=error", *npm_pins],
        900)
    kernel = HUB_ENV / "venv" / "share" / "jupyter" / "kernels" / KERNEL_NAME
    kernel.mkdir(parents=True, exist_ok=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(course_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (course)", "language": "python"}, indent=1) + "\n")
    stamp.write_text(want + "\n")


# ----------------------------------------------------------------------------- the hub
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_CONFIG = """\
# Written by classroom/hub_test.py for one run; see docs/INSTRUCTORS.md for a real hub's settings.
import json
c = get_config()  # noqa: F821
run = json.load(open({run_file!r}))
c.JupyterHub.bind_url = f"http://127.0.0.1:{{run['port']}}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = run["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{{run['proxy_api_port']}}"
c.ConfigurableHTTPProxy.command = [run["proxy"]]
c.ConfigurableHTTPProxy.pid_file = run["dir"] + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + run["dir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = run["dir"] + "/jupyterhub_cookie_secret"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = run["password"]
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = run["homes"] + "/{{username}}"
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [run["singleuser"]]
c.Spawner.args = run["spawner_args"]
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
# As on a hub that gives each student one CPU: torch should not start more threads than that.
env = {{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COURSE_FAST": run["course_fast"]}}
# The course's .venv has course_utils installed editable from the repository; each student's kernel
# must import the copy it was given (the shared folder or their own clone), as a hub's would.
env["PYTHONPATH"] = lambda spawner: run["pythonpath"][spawner.user.name]
c.Spawner.environment = env
c.JupyterHub.services = [{{"name": "classroom-test", "api_token": run["admin_token"]}}]
c.JupyterHub.load_roles = [{{"name": "classroom-test", "services": ["classroom-test"],
                            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"]}}]
"""


class Hub:
    """A JupyterHub process and the requests a student or an instructor makes to it."""

    def __init__(self, run_info: dict, log: Path):
        self.base = f"http://127.0.0.1:{run_info['port']}"
        self.admin_token = run_info["admin_token"]
        self.log = log
        config = Path(run_info["dir"]) / "jupyterhub_config.py"
        self.proc = subprocess.Popen(
            [str(Path(run_info["singleuser"]).parent / "jupyterhub"), "-f", str(config)], cwd=run_info["dir"],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def request(self, method: str, path: str, token: str | None = None, body: dict | None = None,
                opener: urllib.request.OpenerDirector | None = None, timeout: float = 60,
                headers: dict | None = None, form: dict | None = None):
        headers = dict(headers or {})
        data = None
        if token:
            headers["Authorization"] = f"token {token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        opener = opener or urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read(), dict(err.headers)

    def wait_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited ({self.proc.returncode}); see {self.log}")
            try:
                status, _, _ = self.request("GET", "/hub/api/", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"the hub did not answer within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the hub stops the proxy and, cleanup_servers, the servers
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 is an answer to look at (login), not something to follow


# ----------------------------------------------------------------------------- one student
def login_xsrf(page: bytes) -> str:
    """The _xsrf value of the hub's login form."""
    tag = re.search(rb'<input[^>]*name="_xsrf"[^>]*>', page)
    value = re.search(rb'value="([^"]*)"', tag.group(0)) if tag else None
    return value.group(1).decode() if value else ""


class Student:
    def __init__(self, hub: Hub, name: str, delivery: str, run_info: dict, notebooks: list[str], cell_timeout: int):
        self.hub, self.name, self.delivery = hub, name, delivery
        self.run_info, self.notebooks, self.cell_timeout = run_info, notebooks, cell_timeout
        self.result = {"student": name, "delivery": delivery, "error": None, "notebooks": []}
        self.token: str | None = None
        self.kernel_pids: list[int] = []

    def fail(self, message: str) -> None:
        raise RuntimeError(message)

    def login(self) -> None:
        """Through the login form, as a browser would: the page's _xsrf, then the form's POST."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        status, page, _ = self.hub.request("GET", "/hub/login", opener=opener)
        xsrf = login_xsrf(page)
        if status != 200 or not xsrf:
            self.fail(f"the login page answered {status} without an _xsrf field")
        form = {"username": self.name, "password": self.run_info["password"], "_xsrf": xsrf}
        status, _, headers = self.hub.request("POST", "/hub/login?next=", opener=opener, form=form)
        if status != 302:
            self.fail(f"logging in answered {status}, not a redirect")
        status, body, _ = self.hub.request("GET", "/hub/api/user", opener=opener)
        if status != 200 or json.loads(body)["name"] != self.name:
            self.fail(f"after logging in, /hub/api/user answered {status}")
        wrong = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                            NoRedirect)
        status, page, _ = self.hub.request("GET", "/hub/login", opener=wrong)
        status, _, _ = self.hub.request("POST", "/hub/login?next=", opener=wrong,
                                        form={"username": self.name, "password": "wrong", "_xsrf": login_xsrf(page)})
        if status == 302:
            self.fail("the hub let a wrong password in")

    def get_token(self) -> None:
        status, body, _ = self.hub.request("POST", f"/hub/api/users/{self.name}/tokens", token=self.hub.admin_token,
                                           body={"note": "hub-test", "expires_in": 7200})
        if status not in (200, 201):
            self.fail(f"creating a token answered {status}: {body[:200]!r}")
        self.token = json.loads(body)["token"]

    def start_server(self, timeout: float = 240) -> None:
        status, body, _ = self.hub.request("POST", f"/hub/api/users/{self.name}/server", token=self.token, body={})
        if status not in (201, 202):
            self.fail(f"starting the server answered {status}: {body[:300]!r}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body, _ = self.hub.request("GET", f"/hub/api/users/{self.name}", token=self.token)
            server = json.loads(body).get("servers", {}).get("", {}) if status == 200 else {}
            if server.get("ready"):
                return
            if status == 200 and not server.get("pending") and not server:
                self.fail("the server stopped while starting; see the hub's log")
            time.sleep(1)
        self.fail(f"the server was not ready within {timeout:.0f} s")

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 60):
        return self.hub.request(method, f"/user/{self.name}{path}", token=self.token, body=body, timeout=timeout)

    def get_course(self) -> None:
        home = Path(self.run_info["homes"]) / self.name
        if self.delivery == "shared":
            return  # the link ~/course -> the shared folder was made before the server started
        # nbgitpuller, as the link in docs/INSTRUCTORS.md runs it: its API streams the clone's progress
        query = urllib.parse.urlencode({"repo": self.run_info["origin"], "branch": "main", "targetpath": "course"})
        req = urllib.request.Request(f"{self.hub.base}/user/{self.name}/git-pull/api?{query}",
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            events = resp.read().decode(errors="replace")
        phases = re.findall(r'"phase":\s*"(\w+)"', events)
        if "finished" not in phases or "error" in phases:
            self.fail(f"nbgitpuller did not finish the clone: {events[-600:]}")
        if not (home / "course" / "notebooks").is_dir():
            self.fail(f"nbgitpuller said finished, but {home / 'course' / 'notebooks'} is missing")

    def run_notebook(self, name: str) -> dict:
        import websocket  # websocket-client, from the hub venv

        path = f"course/notebooks/{name}.ipynb"
        status, body, _ = self.api("POST", "/api/sessions",
                                   {"path": path, "type": "notebook", "name": f"{name}.ipynb",
                                    "kernel": {"name": KERNEL_NAME}}, timeout=180)
        if status != 201:
            self.fail(f"opening a session on {path} answered {status}: {body[:300]!r}")
        session = json.loads(body)
        kernel_id = session["kernel"]["id"]
        notebook = json.loads((Path(self.run_info["homes"]) / self.name / path).read_text())
        cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
        url = (self.hub.base.replace("http://", "ws://") + f"/user/{self.name}/api/kernels/{kernel_id}/channels"
               f"?session_id={uuid.uuid4().hex}")
        ws = websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=60)
        out = {"notebook": name, "cells": len(cells), "ran": 0, "errors": [], "stderr_outputs": 0}
        try:
            probe = self.execute(ws, "import os, json, course_utils\nfrom course_utils import settings\n"
                                     "print(json.dumps({'pid': os.getpid(), 'course_utils': course_utils.__file__, "
                                     "'work_dir': str(settings.work_dir()), 'root': str(settings.course_root())}))",
                                 timeout=180)
            if probe["errors"]:
                self.fail(f"the probe cell failed: {probe['errors'][0]}")
            facts = json.loads(probe["stdout"].strip().splitlines()[-1])
            out["kernel"] = facts
            pid = facts["pid"]
            self.kernel_pids.append(pid)
            start = time.perf_counter()
            for index, code in enumerate(cells):
                reply = self.execute(ws, code, timeout=self.cell_timeout)
                out["stderr_outputs"] += reply["stderr"]
                if reply["errors"]:
                    out["errors"].append(f"cell {index}: {reply['errors'][0]}")
                    break
                out["ran"] += 1
            out["seconds"] = round(time.perf_counter() - start, 1)
            out["peak_rss_kib"] = peak_rss_kib(pid)
        finally:
            ws.close()
            self.api("DELETE", f"/api/sessions/{session['id']}")
        return out

    def execute(self, ws, code: str, timeout: float) -> dict:
        """Send one execute_request on the shell channel; wait for its reply and for the kernel to go idle."""
        import websocket

        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                       "session": uuid.uuid4().hex, "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        result = {"errors": [], "stderr": 0, "stdout": ""}
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"a cell ran past {timeout:.0f} s")
            ws.settimeout(min(left, 30))
            try:
                opcode, frame = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            if opcode != 1:  # binary frames: widget messages with buffers, not errors
                continue
            msg = json.loads(frame)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "error":
                result["errors"].append(f"{content.get('ename')}: {content.get('evalue')}"[:400])
            elif kind == "stream" and content.get("name") == "stderr":
                result["stderr"] += 1
            elif kind == "stream" and content.get("name") == "stdout":
                result["stdout"] += content.get("text", "")
            elif kind == "execute_reply":
                replied = True
                if content.get("status") != "ok" and not result["errors"]:
                    result["errors"].append(f"{content.get('ename', content.get('status'))}: {content.get('evalue')}")
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        return result

    def stop_server(self) -> None:
        if self.token:
            self.hub.request("DELETE", f"/hub/api/users/{self.name}/server", token=self.token, timeout=120)

    def __call__(self) -> None:
        start = time.perf_counter()
        try:
            self.login()
            self.get_token()
            t = time.perf_counter()
            self.start_server()
            self.result["spawn_seconds"] = round(time.perf_counter() - t, 1)
            self.get_course()
            for name in self.notebooks:
                self.result["notebooks"].append(self.run_notebook(name))
            pid = server_pid(Path(self.run_info["homes"]) / self.name)
            self.result["server_peak_rss_kib"] = peak_rss_kib(pid) if pid else None
        except Exception as err:  # noqa: BLE001 (one student's failure is a result, not a crash)
            self.result["error"] = f"{type(err).__name__}: {err}"[:800]
        finally:
            self.result["wall_seconds"] = round(time.perf_counter() - start, 1)
            try:
                self.stop_server()
            except OSError:
                pass


def server_pid(home: Path) -> int | None:
    """The student's single-user server: the jupyterhub-singleuser process whose HOME is theirs."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (b"jupyterhub-singleuser" in (entry / "cmdline").read_bytes()
                        and f"HOME={home}\0".encode() in (entry / "environ").read_bytes()):
                    return int(entry.name)
            except OSError:
                continue
    return None


def poll_total_rss(students: list[Student], stop: threading.Event, peak: dict) -> None:
    """Every half second: all students' kernels' resident memory added up; keep the peak."""
    while not stop.wait(0.5):
        total = sum(rss_kib(pid) or 0 for s in students for pid in list(s.kernel_pids))
        peak["kib"] = max(peak["kib"], total)


# ----------------------------------------------------------------------------- inside the namespace
def inner(args: argparse.Namespace) -> int:
    run_info = json.loads(Path(args.run_file).read_text())
    hub = Hub(run_info, Path(run_info["dir"]) / "jupyterhub.log")
    report = {"students": []}
    try:
        hub.wait_up()
        say(f"hub up at {hub.base}; {len(run_info['students'])} students log in and run {', '.join(args.notebooks)}")
        students = [Student(hub, name, delivery, run_info, args.notebooks, args.cell_timeout)
                    for name, delivery in run_info["students"].items()]
        stop, peak = threading.Event(), {"kib": 0}
        poller = threading.Thread(target=poll_total_rss, args=(students, stop, peak), daemon=True)
        poller.start()
        threads = [threading.Thread(target=s, name=s.name) for s in students]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, args.timeout - (time.perf_counter() - start)))
        stop.set()
        report["wall_seconds"] = round(time.perf_counter() - start, 1)
        report["peak_total_kernel_rss_kib"] = peak["kib"]
        for student, thread in zip(students, threads):
            if thread.is_alive():
                student.result["error"] = student.result["error"] or f"still running after {args.timeout} s"
            report["students"].append(student.result)
    except Exception as err:  # noqa: BLE001
        report["error"] = f"{type(err).__name__}: {err}"
    finally:
        hub.stop()
        Path(args.json_inner).write_text(json.dumps(report, indent=1))
    return 0


# ----------------------------------------------------------------------------- outside
def leftover_pids(marker: str) -> list[int]:
    """Processes this run started that are still alive: their command line, working folder or
    environment names this run's own temporary folder (the hub, the proxy, servers, kernels)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (marker.encode() in (entry / "cmdline").read_bytes() or os.readlink(entry / "cwd").startswith(marker)
                    or marker.encode() in (entry / "environ").read_bytes()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def make_origin(course: Path, origin: Path) -> str:
    """A local git repository holding the course, for nbgitpuller to clone (as it would a GitHub one)."""
    shutil.copytree(course, origin)
    git = ["git", "-C", str(origin), "-c", "user.name=hub-test", "-c", "user.email=hub-test@127.0.0.1"]
    run(["git", "init", "-q", "-b", "main", origin], 120)
    run([*git, "add", "-A"], 300)
    run([*git, "commit", "-q", "-m", "the course, as the hub test gives it"], 300)
    return f"file://{origin}"


def outer(args: argparse.Namespace) -> int:
    problem = unshare_problem()
    if problem:
        print(f"hub_test: {problem}.", file=sys.stderr)
        return 2
    course_venv = Path(sys.prefix).resolve()
    course_python = course_venv / "bin" / "python"
    ensure_hub_env(course_python)
    tmp = Path(tempfile.mkdtemp(prefix="course-hub-"))
    shared = copy_course(Path(args.source).resolve(), tmp / "srv" / "course")
    origin = make_origin(shared, tmp / "srv" / "course-origin")
    homes = tmp / "home"
    names = [f"student{i + 1}" for i in range(args.students)]
    deliveries = {n: ("shared" if i % 2 == 0 else "nbgitpuller") for i, n in enumerate(names)}
    if args.delivery != "both":
        deliveries = dict.fromkeys(names, args.delivery)
    for name in names:
        (homes / name).mkdir(parents=True)
        if deliveries[name] == "shared":
            (homes / name / "course").symlink_to(shared, target_is_directory=True)
    run_info = {
        "dir": str(tmp / "hub"), "port": free_port(), "hub_port": free_port(), "proxy_api_port": free_port(),
        "proxy": str(proxy_command()), "singleuser": str(hub_python().parent / "jupyterhub-singleuser"),
        "password": "course-" + secrets.token_hex(4), "admin_token": secrets.token_hex(32),  # new for every run
        "homes": str(homes), "origin": origin,
        "spawner_args": ["--allow-root"] if os.geteuid() == 0 else [], "students": deliveries,
        "course_fast": "1" if args.mode == "fast" else "0",
        "pythonpath": {n: str(shared if deliveries[n] == "shared" else homes / n / "course") for n in names},
    }
    (tmp / "hub").mkdir()
    (tmp / "hub" / "run.json").write_text(json.dumps(run_info, indent=1))
    (tmp / "hub" / "jupyterhub_config.py").write_text(HUB_CONFIG.format(run_file=str(tmp / "hub" / "run.json")))
    before = listing(shared)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COURSE_", "JUPYTER", "PYTHON", "VIRTUAL_ENV")) and k not in ("CI", "XDG_CACHE_HOME")}
    cmd = [*read_only_prefix([shared, course_venv, HUB_ENV / "venv"]), hub_python(), Path(__file__).resolve(),
           "--inner", "--run-file", tmp / "hub" / "run.json", "--json-inner", tmp / "inner.json",
           "--timeout", str(args.timeout), "--cell-timeout", str(args.cell_timeout), "--notebooks", *args.notebooks]
    say(f"{args.students} students ({', '.join(f'{n}: {d}' for n, d in deliveries.items())}); "
        f"run folder {tmp}")
    start = time.perf_counter()
    try:
        code = subprocess.run([str(c) for c in cmd], env=env, timeout=args.timeout + 300,
                              stdin=subprocess.DEVNULL).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    finally:
        for pid in leftover_pids(str(tmp)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    total = time.perf_counter() - start
    report = json.loads((tmp / "inner.json").read_text()) if (tmp / "inner.json").exists() else {"students": []}
    written = changes(before, listing(shared))
    report.update(total_seconds=round(total, 1), written_into_shared_course=written, mode=args.mode,
                  cpus=os.cpu_count(), notebooks=args.notebooks, tmp=str(tmp))

    problems = [f"the driver exited with {code}"] if code != 0 else []
    if report.get("error"):
        problems.append(report["error"])
    if len(report["students"]) != args.students:
        problems.append(f"{len(report['students'])} of {args.students} students reported")
    for s in report["students"]:
        if s["error"]:
            problems.append(f"{s['student']}: {s['error']}")
        for nb in s["notebooks"]:
            if nb["errors"] or nb["ran"] != nb["cells"]:
                problems.append(f"{s['student']} {nb['notebook']}: {nb['ran']}/{nb['cells']} cells, {nb['errors']}")
            kernel = nb.get("kernel", {})
            where = Path(run_info["pythonpath"][s["student"]])
            if not Path(kernel.get("course_utils", "/")).resolve().is_relative_to(where.resolve()):
                problems.append(f"{s['student']} imported course_utils from {kernel.get('course_utils')}")
            if s["delivery"] == "shared" and not Path(kernel.get("work_dir", "/")).is_relative_to(homes):
                problems.append(f"{s['student']}: the shared course was writable (work_dir {kernel.get('work_dir')})")
        if len(s["notebooks"]) != len(args.notebooks) and not s["error"]:
            problems.append(f"{s['student']} ran {len(s['notebooks'])} of {len(args.notebooks)} notebooks")
    if written:
        problems.append(f"{len(written)} change(s) in the read-only shared course: {', '.join(written[:5])}")
    report["problems"] = problems

    print(f"\nJupyterHub test: {args.students} students at once, {args.mode} mode, {', '.join(args.notebooks)} "
          f"({sys.platform}, {os.cpu_count()} CPUs, 1 torch thread per kernel); {total:.0f} s in all")
    print(f"{'student':10} {'delivery':12} {'spawn s':>8} {'notebook':28} {'cells':>7} {'run s':>7} "
          f"{'kernel peak':>12}  result")
    for s in report["students"]:
        for nb in s["notebooks"] or [{"notebook": "-", "cells": 0, "ran": 0, "errors": []}]:
            print(f"{s['student']:10} {s['delivery']:12} {s.get('spawn_seconds', 0):8.1f} {nb['notebook']:28} "
                  f"{nb['ran']:>3}/{nb['cells']:<3} {nb.get('seconds', 0):7.1f} {mib(nb.get('peak_rss_kib')):>12}  "
                  f"{'error' if nb['errors'] or s['error'] else 'ok'}")
    servers = [s["server_peak_rss_kib"] for s in report["students"] if s.get("server_peak_rss_kib")]
    if servers:
        print(f"single-user servers (jupyter_server, no kernel), peak resident memory: {mib(max(servers))} at most")
    print(f"all kernels together, peak resident memory: {mib(report.get('peak_total_kernel_rss_kib'))}; "
          f"written into the shared course: {len(written)} path(s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if problems:
        print("FAILED: " + "; ".join(problems)[:3000] + f" (logs and homes kept in {tmp})", file=sys.stderr)
        return 1
    print(f"PASSED: {args.students} students ran {', '.join(args.notebooks)} on a real JupyterHub with no error")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=4, help="students at once (default 4)")
    parser.add_argument("--notebooks", nargs="+", default=["04"], help="notebooks each student runs (default: 04)")
    parser.add_argument("--delivery", choices=("both", "shared", "nbgitpuller"), default="both",
                        help="how students get the course (default: every other one each way)")
    parser.add_argument("--mode", choices=("full", "fast"), default="full")
    parser.add_argument("--source", default=str(REPO), help="the course to copy (default: this repository)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds for all students (default 1800)")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds for one cell (default 900)")
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (homes, hub log)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-file", help=argparse.SUPPRESS)
    parser.add_argument("--json-inner", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        return inner(args)
    if not 1 <= args.students <= 50:
        parser.error("--students must be between 1 and 50")
    chosen = []
    for name in args.notebooks:
        hits = [nb for nb in NOTEBOOKS if nb.startswith(name)]
        if len(hits) != 1:
            parser.error(f"{name!r} names no single notebook; use one of {', '.join(NOTEBOOKS)}")
        chosen.append(hits[0])
    args.notebooks = chosen
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
