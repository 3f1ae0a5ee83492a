"""The progress reporter: a bar on a terminal, plain lines in a log, nothing with --quiet."""
import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from muses import progress
from muses.progress import LineBar, duration, follow, note, progress_bar


@pytest.fixture(autouse=True)
def default_settings():
    progress.configure()
    yield
    progress.configure()


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_log_gets_a_plain_line_every_few_seconds_with_the_time_left():
    log, clock = io.StringIO(), Clock()
    bar = LineBar(total=206, desc="generate-images", unit="photos", stream=log, every_s=5, clock=clock)
    for _ in range(60):
        clock.now += 0.125
        bar.update()
    assert log.getvalue().splitlines() == ["generate-images: 40/206 photos, 19 %, about 21 s left"]
    clock.now += 6.5
    bar.update(60)
    bar.close()
    bar.close()  # once only
    assert log.getvalue().splitlines()[1:] == ["generate-images: 120/206 photos, 58 %, about 10 s left",
                                               "generate-images: 120/206 photos, 58 %, done in 14 s"]
    assert "\r" not in log.getvalue()


def test_a_run_without_a_total_counts_and_a_stopped_one_says_so():
    log, clock = io.StringIO(), Clock()
    with pytest.raises(KeyboardInterrupt):
        with LineBar(desc="import", unit="lines", stream=log, every_s=5, clock=clock) as bar:
            clock.now += 5
            bar.update(1000)
            bar.set_postfix(loss="0.412")
            clock.now += 200
            raise KeyboardInterrupt
    assert log.getvalue().splitlines() == ["import: 1000 lines, 5 s so far", "import: 1000 lines, loss 0.412, stopped after 3 min"]


def test_a_run_with_nothing_to_do_prints_nothing():
    log = io.StringIO()
    with LineBar(total=0, desc="generate-images", stream=log):
        pass
    assert log.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (89, "89 s"), (240, "4 min"), (9000, "2.5 h")])
def test_durations_read_at_a_glance(seconds, text):
    assert duration(seconds) == text


def test_not_a_terminal_gets_lines_quiet_gets_nothing_and_iteration_passes_through(capsys):
    assert list(progress_bar(range(3), desc="labeling", unit="objects")) == [0, 1, 2]
    assert capsys.readouterr().err == "labeling: 3/3 objects, 100 %, done in 0 s\n"
    progress.configure(quiet=True)
    assert list(progress_bar(range(3), desc="labeling")) == [0, 1, 2]
    with progress_bar(desc="import") as bar:
        follow(bar)(10, 20)
        assert (bar.n, bar.total) == (10, 20)
    assert list(progress_bar([1], disable=False)) == [1]
    assert capsys.readouterr().err == ""


def test_follow_moves_a_bar_to_the_reported_position():
    log = io.StringIO()
    with progress_bar(desc="import", unit="lines", stream=log) as bar:
        advance = follow(bar)
        advance(500, 61_000)
        advance(61_000, 61_000)
    assert (bar.n, bar.total) == (61_000, 61_000)
    assert log.getvalue().startswith("import: 61000/61000 lines, 100 %, done in")


def test_a_command_quiet_leaves_the_next_library_call_its_progress(project, capsys):
    from muses.cli import main

    assert main(["--quiet", "stats"]) == 0
    assert list(progress_bar(range(2), desc="labeling", unit="objects")) == [0, 1]
    assert capsys.readouterr().err == "labeling: 2/2 objects, 100 %, done in 0 s\n"


def test_note_prints_a_line():
    log = io.StringIO()
    note("loading the model models/naive.safetensors", stream=log)
    assert log.getvalue() == "loading the model models/naive.safetensors\n"


def test_a_terminal_gets_a_bar_with_counts_and_time_left():
    """A real pseudo-terminal as stderr: tqdm's redrawn bar, not plain lines."""
    script = ("from muses.progress import progress_bar\n"
              "with progress_bar(total=206, desc='generate-images', unit='photos') as bar:\n"
              "    bar.update(120)\n")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", script], stderr=follower, env=env, check=True, timeout=60)
    os.close(follower)
    drawn = os.read(leader, 65536).decode()
    os.close(leader)
    assert "\r" in drawn and "generate-images:  58%" in drawn and "120/206" in drawn and "<" in drawn  # elapsed<left
