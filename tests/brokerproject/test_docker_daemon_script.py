"""scripts/docker-daemon, which `.ci/run` evals before the compose smoke test: it hands on only the
DOCKER_HOST line of docker-standins' output, clears a dead containerd socket file that made dockerd
give up (the CI failure of 2026-12-03), leaves a live one alone, and tries once more after a
failed start. The shared tool is replaced by a script that records how it was called."""

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "docker-daemon"

# A stand-in for docker-standins: `up` fails while the containerd socket file exists and is dead
# (as dockerd does), else prints apt-get noise and the export line; every call is logged.
FAKE_TOOL = """#!/usr/bin/env bash
echo "$1" >> "$CALLS"
case $1 in
  down) exit 0 ;;
  up)
    if [ -S "$CONTAINERD_SOCK" ] && [ ! -e "$CONTAINERD_SOCK.live" ]; then
      echo "failed to dial $CONTAINERD_SOCK" >&2; exit 1
    fi
    [ ! -e "$FAIL_ONCE" ] || { rm -f "$FAIL_ONCE"; echo "dockerd does not answer" >&2; exit 1; }
    echo "Reading package lists..."
    echo "Setting up docker.io (20.10.24) ..."
    echo "export DOCKER_HOST=unix:///run/docker-standins/docker.sock"
    ;;
esac
"""


@pytest.fixture
def harness(tmp_path):
    tool = tmp_path / "docker-standins"
    tool.write_text(FAKE_TOOL)
    tool.chmod(0o755)
    env = dict(
        os.environ,
        DOCKER_STANDINS=str(tool),
        CONTAINERD_SOCK=str(tmp_path / "containerd.sock"),
        CALLS=str(tmp_path / "calls"),
        FAIL_ONCE=str(tmp_path / "fail-once"),
    )

    def run():
        done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        calls = (tmp_path / "calls").read_text().split() if (tmp_path / "calls").exists() else []
        return done, calls

    return tmp_path, run


def dead_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # bound, never listening, closed: the file stays, nobody answers


def test_only_the_export_line_reaches_stdout(harness):
    _, run = harness
    done, calls = run()
    assert done.returncode == 0, done.stderr
    assert done.stdout == "export DOCKER_HOST=unix:///run/docker-standins/docker.sock\n"
    assert calls == ["up"]


def test_a_dead_containerd_socket_is_removed_before_the_daemon_starts(harness):
    tmp_path, run = harness
    dead_socket(tmp_path / "containerd.sock")
    done, calls = run()
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "containerd.sock").exists()
    assert calls == ["up"]
    assert "nobody listens on" in done.stderr


def test_a_live_containerd_socket_is_left_alone(harness):
    tmp_path, run = harness
    path = tmp_path / "containerd.sock"
    (tmp_path / "containerd.sock.live").touch()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        done, _ = run()
        assert path.exists()
    assert done.returncode == 0, done.stderr


def test_a_failed_start_is_stopped_and_tried_once_more(harness):
    tmp_path, run = harness
    (tmp_path / "fail-once").touch()
    done, calls = run()
    assert done.returncode == 0, done.stderr
    assert calls == ["up", "down", "up"]
    assert done.stdout.startswith("export DOCKER_HOST=")


def test_two_failed_starts_fail(harness):
    tmp_path, run = harness
    tool = tmp_path / "docker-standins"
    tool.write_text('#!/usr/bin/env bash\necho "$1" >> "$CALLS"\n[ "$1" = down ] || exit 1\n')
    done, calls = run()
    assert done.returncode == 1
    assert done.stdout == ""
    assert calls == ["up", "down", "up"]


def test_what_a_failed_start_printed_is_shown(harness):
    tmp_path, run = harness
    tool = tmp_path / "docker-standins"
    tool.write_text(
        '#!/usr/bin/env bash\necho "$1" >> "$CALLS"\necho "E: Unable to locate package docker.io"\nexit 1\n'
    )
    done, _ = run()
    assert done.returncode == 1
    assert "Unable to locate package docker.io" in done.stderr and done.stdout == ""


def test_an_export_line_that_is_not_a_plain_socket_address_is_refused(harness):
    tmp_path, run = harness
    tool = tmp_path / "docker-standins"
    tool.write_text('#!/usr/bin/env bash\necho "$1" >> "$CALLS"\necho "export DOCKER_HOST=unix:///x; rm -rf /"\n')
    done, calls = run()
    assert done.returncode == 1 and done.stdout == ""
    assert calls == ["up", "down", "up"]
