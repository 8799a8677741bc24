"""Fixtures for the integration suite: fake origins, the portico process, per-test deadlines.

Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/integration -q
The binary is $PORTICO_BIN, or build/portico under the repository root.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import helpers
import tls_util
from helpers import HttpOrigin, RawOrigin, free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DEADLINE = 30.0  # seconds per test unless @pytest.mark.deadline(N)

CRASH_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                 "ThreadSanitizer", "runtime error:", "Segmentation fault", "Assertion",
                 "double free", "stack smashing", "core dumped")


# ---------------------------------------------------------------------------------------------
# Per-test deadline without pytest-timeout: SIGALRM raises inside the test.

class DeadlineExceeded(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): fail the test after that long")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("deadline")
    limit = float(marker.args[0]) if marker else DEFAULT_DEADLINE

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test ran longer than {limit:g}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------------
# YAML writer (block style; strings quoted unless plainly safe)

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./:+-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    s = str(v)
    if _PLAIN.fullmatch(s) and s.lower() not in _RESERVED and not s.endswith(":"):
        return s
    return json.dumps(s)


def to_yaml(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = _scalar(k)
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{key}:\n" + to_yaml(v, indent + 1))
            elif isinstance(v, dict):
                out.append(f"{pad}{key}: {{}}\n")
            elif isinstance(v, list):
                out.append(f"{pad}{key}: []\n")
            else:
                out.append(f"{pad}{key}: {_scalar(v)}\n")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 1)
                # Put the first key on the dash line.
                first, rest = body.split("\n", 1)
                out.append(f"{pad}- {first.lstrip()}\n{rest}")
            elif isinstance(item, list) and item:
                out.append(f"{pad}-\n" + to_yaml(item, indent + 1))
            else:
                out.append(f"{pad}- {_scalar(item)}\n")
    else:
        out.append(pad + _scalar(obj) + "\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The portico process

class Portico:
    def __init__(self, args, tmp, port, drain, label, host="127.0.0.1"):
        self.args = args
        self.tmp = tmp
        self.port = port
        self.host = host
        self.drain = drain
        self.stdout_path = os.path.join(tmp, f"{label}.stdout")
        self.stderr_path = os.path.join(tmp, f"{label}.stderr")
        self.access_log = os.path.join(tmp, f"{label}.access.log")
        self.returncode = None
        self.finished = False
        self.signalled = False  # the test sent a signal itself
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=REPO)
        self.pid = self.proc.pid

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, timeout=10.0, host=None):
        host = host or self.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"portico exited with {self.proc.returncode} before listening:\n"
                    + self.stderr())
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                try:
                    s.connect((host, self.port))
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise AssertionError(f"portico not listening on {host}:{self.port} after {timeout}s:\n"
                             + self.stderr())

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def send_signal(self, sig):
        self.signalled = True
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Stops portico with <sig> and returns its exit status (None if it had to be killed)."""
        if self.finished:
            return self.returncode
        helpers.close_all_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.wait(timeout if timeout is not None else self.drain + 5)
        if rc is None:
            self.proc.kill()
            self.proc.wait(5)
        self.finished = True
        return rc

    def check_clean_exit(self):
        """Stops portico if still running and asserts a clean exit with no crash report."""
        early = self.proc.poll()
        was_finished = self.finished
        rc = self.stop()
        err = self.stderr()
        if not was_finished and not self.signalled:
            assert early is None, f"portico died during the test (status {early}):\n{err[-3000:]}"
        assert rc == 0, f"portico exit status {rc} after SIGTERM:\n{err[-3000:]}"
        for m in CRASH_MARKERS:
            assert m not in err, f"portico stderr reports {m!r}:\n{err[-3000:]}"

    def access_entries(self, count=1, timeout=5.0):
        """Parsed JSON lines of the access log; waits until at least <count> are there."""
        deadline = time.monotonic() + timeout
        entries = []
        while True:
            entries = []
            if os.path.exists(self.access_log):
                with open(self.access_log, "rb") as f:
                    for line in f.read().splitlines():
                        if line.strip():
                            entries.append(json.loads(line))
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)

    def access_text(self, min_lines=1, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            text = ""
            if os.path.exists(self.access_log):
                with open(self.access_log, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            if len(text.splitlines()) >= min_lines or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def threads(self):
        return len(os.listdir(f"/proc/{self.pid}/task"))


@pytest.fixture
def _origins():
    made = []
    yield made
    errors = []
    for o in made:
        try:
            o.stop()
        except AssertionError as e:
            errors.append(str(e))
    for o in made:
        if not getattr(o, "allow_protocol_errors", False) and o.protocol_errors:
            errors.append(f"origin {o.name} got invalid HTTP from portico: {o.protocol_errors}")
    assert not errors, "\n".join(errors)


@pytest.fixture
def make_origin(_origins):
    """Factory: make_origin(name="a", **HttpOrigin options) -> a running HttpOrigin."""
    def make(name="origin", **kw):
        o = HttpOrigin(name, **kw)
        _origins.append(o)
        return o
    return make


@pytest.fixture
def make_raw(_origins):
    """Factory: make_raw(script, read_request=True) -> a running RawOrigin."""
    def make(script, name="raw", **kw):
        o = RawOrigin(script, name, **kw)
        _origins.append(o)
        return o
    return make


@pytest.fixture
def origin(make_origin):
    return make_origin("a")


@pytest.fixture(scope="session")
def ec_cert(tmp_path_factory):
    """A self-signed ECDSA P-256 certificate for a.example.com: (cert file, key file)."""
    d = tmp_path_factory.mktemp("eccert")
    c, k = str(d / "cert.pem"), str(d / "key.pem")
    tls_util.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-keyout", k, "-out", c, "-days", "2",
                  "-subj", "/CN=a.example.com", "-addext", "subjectAltName=DNS:a.example.com"])
    return c, k


def _merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


@pytest.fixture
def portico(request, tmp_path, _origins):
    """Factory that starts build/portico and checks on teardown that it stops cleanly.

    portico(origin_or_config, **top_level_overrides) -> Portico
      - an origin: one upstream pool "app" holding it, no routes (implicit catch-all)
      - a dict: the configuration; "listen", "workers" (2), "timeouts.drain" (2s) and a JSON
        "access_log" into tmp_path are filled in when absent
      - a str: the YAML text as is (must listen on the port given as portico.port via {port})
    portico(cli=[...]) runs quick mode with "--listen 127.0.0.1:<port>" prepended.
    """
    started = []
    binary = helpers.env_bin()

    def start(config=None, cli=None, wait=True, label=None, **overrides):
        assert os.access(binary, os.X_OK), f"portico binary not found at {binary}"
        label = label or f"portico{len(started)}"
        port = free_port()
        drain = 2.0
        host = "127.0.0.1"
        if cli is not None:
            args = [binary, "--listen", f"127.0.0.1:{port}"] + list(cli)
            p = Portico(args, str(tmp_path), port, drain, label)
        else:
            if isinstance(config, str):
                text = config.replace("{port}", str(port))
            else:
                if isinstance(config, helpers.OriginBase):
                    config = {"upstreams": {"app": {"servers": [config.addr]}}}
                cfg = dict(config or {})
                _merge(cfg, overrides)
                if "listen" not in cfg:
                    cfg["listen"] = f"127.0.0.1:{port}"
                else:
                    first = cfg["listen"][0] if isinstance(cfg["listen"], list) else cfg["listen"]
                    m = re.match(r"^\[?(.*?)\]?:(\d+)$", first)
                    host, port = (m.group(1) or "127.0.0.1"), int(m.group(2))
                    if host == "*" or host == "":
                        host = "127.0.0.1"
                    if host == "::":
                        host = "::1"
                cfg.setdefault("workers", 2)
                cfg.setdefault("timeouts", {})
                cfg["timeouts"].setdefault("drain", "2s")
                drain = parse_duration(cfg["timeouts"]["drain"])
                cfg.setdefault("access_log", {"path": os.path.join(str(tmp_path),
                                                                   f"{label}.access.log"),
                                              "format": "json"})
                text = to_yaml(cfg)
            cfg_path = os.path.join(str(tmp_path), f"{label}.yaml")
            with open(cfg_path, "w") as f:
                f.write(text)
            p = Portico([binary, "-c", cfg_path], str(tmp_path), port, drain, label, host)
            p.config_path = cfg_path
            p.config_text = text
        started.append(p)
        if wait:
            p.wait_ready()
        return p

    yield start
    errors = []
    for p in started:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            # Shown under "Captured stdout teardown" of the failed test.
            print(f"---- {p.args[-1]}: portico stderr (tail) ----\n{p.stderr()[-4000:]}")
        try:
            p.check_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def parse_duration(v):
    if isinstance(v, (int, float)):
        return float(v)
    m = re.match(r"^(\d+)(ms|s|m|h)?$", str(v))
    n = int(m.group(1))
    return {None: 1, "s": 1, "ms": 0.001, "m": 60, "h": 3600}[m.group(2)] * n


@pytest.fixture
def run_portico():
    """Runs the binary to completion: run_portico(args, timeout) -> CompletedProcess."""
    def run(args, timeout=20, **kw):
        return subprocess.run([helpers.env_bin()] + list(args), capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL, **kw)
    return run
