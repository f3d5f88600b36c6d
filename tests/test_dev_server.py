"""scripts/dev_server.py, the local AgentOS that the README and the tests start: a port
in use is one line on stderr, and its stdout stays clean."""

import socket
import subprocess
import sys
import time

from conftest import CLEAN_ENV, DEV_SERVER, free_port, run_script


def test_the_dev_server_on_a_port_in_use_exits_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, DEV_SERVER, "--port", str(port), "--db-file", tmp_path / "x.db"],
            capture_output=True,
            text=True,
            env=CLEAN_ENV,
            timeout=60,
        )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_the_dev_server_keeps_stdout_clean(tmp_path):
    port = free_port()
    out = tmp_path / "stdout"
    with open(out, "w") as stdout:
        server = subprocess.Popen(
            [sys.executable, DEV_SERVER, "--port", str(port), "--db-file", tmp_path / "x.db"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=CLEAN_ENV,
        )
        try:
            deadline = time.monotonic() + 60
            while run_script("--base-url", f"http://127.0.0.1:{port}", "--stats").code != 0:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=20)
    assert out.read_text() == ""
    assert stderr.startswith(f"AgentOS memory API on http://127.0.0.1:{port}")
