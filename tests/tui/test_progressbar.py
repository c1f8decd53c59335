"""Progress lines of the batch face: fitted to the terminal, readable in logs."""

from __future__ import annotations

import io
import logging
from dataclasses import replace

from core.jobs import JobState
from tui.batch.progressbar import LiveBar, Progress, bar, bar_line, plain_line
from tui.fmt import duration as format_duration

MiB = 1024 * 1024


def test_the_bar_line_fits_the_width_and_gives_up_the_least_useful_parts_first() -> None:
    p = Progress("copying files", 12 * MiB, 48 * MiB, 900, 1000, 20 * MiB, 2.0, JobState.RUNNING)
    wide = bar_line(p, "job 12", 140)
    assert "900/1000 files" in wide and wide.endswith("copying files") and "[######" in wide
    eighty = bar_line(p, "job 12", 80)
    assert len(eighty) <= 79 and eighty.endswith("copying files") and "20.0 MiB/s" in eighty
    assert "read 20.0 MiB/s" in wide  # named where there is room: data read, not the wire
    for width in (20, 40, 60, 80, 100, 200):
        line = bar_line(p, "job 12", width)
        assert len(line) <= max(10, width - 1) and line.startswith("job 12 [")
    paused = bar_line(
        Progress("copying files", 0, None, 0, None, 0.0, None, JobState.PAUSED), "job 3", 80
    )
    assert paused.startswith("job 3 paused [") and "  ?  " in paused


def test_plain_lines_and_durations() -> None:
    p = Progress("upload", 3 * MiB, 4 * MiB, 0, 1, 1.5 * MiB, 3725.0, JobState.RUNNING)
    assert plain_line(p, "job 1") == (
        "job 1 running 75.0% 3.0 MiB/4.0 MiB 0/1 files read 1.5 MiB/s eta 1h02m phase upload"
    )
    restoring = replace(p, kind="restore")  # the rate counts what is written, not the wire
    assert "written 1.5 MiB/s" in plain_line(restoring, "job 2")
    assert "written 1.5 MiB/s" in bar_line(restoring, "job 2", 120)
    assert [format_duration(s) for s in (None, 0.4, 59, 61, 7200, 90000)] == [
        "-",
        "0s",
        "59s",
        "1m01s",
        "2h00m",
        "1d01h",
    ]
    assert bar(0.5, 4) == "[##--]" and bar(None, 3) == "[---]"


def test_a_log_record_while_the_bar_shows_starts_on_a_line_of_its_own() -> None:
    """Ctrl-C: the cancelled job's error used to land on the end of the progress line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        p = Progress("streaming", MiB, 4 * MiB, 1, 4, MiB, 3.0, JobState.RUNNING)
        live = LiveBar(stream, lambda: p, "job 7", interval=60)
        live.start()
        live.draw()
        logging.getLogger("pgvault.test").error("backup cancelled during streaming")
        live.stop(clear=False)
        logging.getLogger("pgvault.test").error("after the bar")
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    bar_text, _, rest = text.rpartition("\r\x1b[Kbackup cancelled during streaming\n")
    assert bar_text.endswith("streaming") and "job 7 [" in bar_text, repr(text)
    assert rest.startswith("\r\x1b[Kjob 7 [") or rest.startswith("after the bar"), repr(text)
    assert text.endswith("after the bar\n") and handler.stream is stream
