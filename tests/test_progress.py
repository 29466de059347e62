import io
import re
import threading
import time

from image_gen_local.progress import BatchProgress, Heartbeat

LINE = re.compile(r"^still working \(\d+ s\): (starting|rendering)$")


def wait_for(condition, timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_heartbeat_says_still_working_with_the_status_until_closed():
    lines: list[str] = []
    with Heartbeat(lines.append, interval=0.05) as beat:
        beat.set("rendering")
        assert wait_for(lambda: len(lines) >= 2)
        thread = beat._thread
    assert thread is not None and not thread.is_alive()
    assert all(LINE.match(line) for line in lines), lines
    assert lines[-1].endswith(": rendering")
    count = len(lines)
    time.sleep(0.15)
    assert len(lines) == count  # nothing after exit


def test_heartbeat_with_interval_zero_starts_no_thread():
    lines: list[str] = []
    before = threading.active_count()
    with Heartbeat(lines.append, interval=0) as beat:
        assert beat._thread is None
        assert threading.active_count() == before
        time.sleep(0.05)
    assert lines == []


def test_heartbeat_closes_on_an_exception_too():
    lines: list[str] = []
    beat = Heartbeat(lines.append, interval=0.05)
    try:
        with beat:
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert beat._thread is not None and not beat._thread.is_alive()


def test_batch_line_before_anything_is_done():
    progress = BatchProgress(10, lambda _line: None, io.StringIO(), tty=False, interval=0)
    assert progress.line() == "batch: 0/10 pictures, 0.0/min"
    progress.close()


def test_picture_counts_done_and_failed():
    progress = BatchProgress(10, lambda _line: None, io.StringIO(), tty=False, interval=0)
    progress.picture(True)
    progress.picture(True, 2)
    progress.picture(False, 3)
    assert (progress.done, progress.failed) == (6, 3)
    assert progress.line().startswith("batch: 6/10 pictures, 3 failed, ")
    progress.close()


def test_batch_line_shows_rate_and_eta():
    progress = BatchProgress(10, lambda _line: None, io.StringIO(), tty=False, interval=0)
    progress.picture(True, 2)
    progress.picture(False)
    progress.started = time.monotonic() - 60  # three pictures in a minute
    assert progress.line() == "batch: 3/10 pictures, 1 failed, 3.0/min, ETA 2m20s"
    progress.picture(True, 7)
    assert progress.line() == "batch: 10/10 pictures, 1 failed, 10.0/min"  # nothing left: no ETA
    progress.close()


def test_eta_in_seconds_and_hours():
    short = BatchProgress(4, lambda _line: None, io.StringIO(), tty=False, interval=0)
    short.picture(True, 3)
    short.started = time.monotonic() - 60
    assert short.line().endswith(", 3.0/min, ETA 20s")
    long = BatchProgress(1000, lambda _line: None, io.StringIO(), tty=False, interval=0)
    long.picture(True)
    long.started = time.monotonic() - 60
    assert long.line().endswith(", 1.0/min, ETA 16h39m")


def test_non_tty_progress_says_a_line_at_its_interval_and_stops_on_close():
    lines: list[str] = []
    stream = io.StringIO()
    progress = BatchProgress(5, lines.append, stream, tty=False, interval=0.05)
    assert progress.writer is None  # plain lines need no special writer
    progress.picture(True)
    assert wait_for(lambda: len(lines) >= 2)
    progress.close()
    assert all(line.startswith("batch: ") for line in lines), lines
    assert any(line.startswith("batch: 1/5 pictures") for line in lines)
    count = len(lines)
    time.sleep(0.15)
    assert len(lines) == count  # no more lines after close
    assert stream.getvalue() == ""  # said through `say`, not written to the stream


def test_tty_progress_uses_a_bar_on_the_given_stream():
    said: list[str] = []
    stream = io.StringIO()
    progress = BatchProgress(5, said.append, stream, tty=True, interval=0.05)
    assert progress.writer is not None
    progress.picture(True, 2)
    progress.picture(False)
    assert progress._bar.n == 3
    progress.writer("saved picture one")
    progress.close()
    out = stream.getvalue()
    assert "saved picture one\n" in out
    assert "failed=1" in out
    assert "/5" in out
    time.sleep(0.1)
    assert said == []  # the bar replaces the plain lines
