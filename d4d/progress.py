"""Progress of long steps, and quiet consoles: every d4d command reports through here.

``bar(total, stage)`` is a tqdm progress bar with the stage, the count, the elapsed time and
the time left. The time left is the remaining count times the mean time per item so far
(tqdm's ``smoothing=0``), so it does not swing with one slow item. On a terminal it is a bar
redrawn in place; when the output is not a terminal (a log file, a pipe) it becomes plain
lines, one at most every ``PLAIN_EVERY_S`` seconds and one at the end, with no carriage
returns. ``StageProgress`` turns ``{"stage", "done", "total"}`` reports (the renderer's) into
one bar per stage; ``track(items, stage)`` iterates under a bar. ``say(line)`` prints a console
line above the running bars.

``setup_logging(verbose)`` is the console of every command: d4d's own INFO lines on stderr
(written above a running bar), while the libraries (transformers, diffusers, accelerate,
huggingface_hub, Python warnings) only say something at ERROR; ``--verbose`` shows them all.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

#: Seconds between two plain progress lines when the output is not a terminal.
PLAIN_EVERY_S = 10.0
#: Seconds between two redraws of a bar on a terminal.
TERMINAL_EVERY_S = 0.5
_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed} elapsed, about {remaining} left{postfix}]"
#: Library loggers held at ERROR unless --verbose.
LIBRARY_LOGGERS = ("transformers", "diffusers", "accelerate", "huggingface_hub", "torch", "PIL", "ray", "urllib3", "py.warnings")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Lines:
    """A file for tqdm that turns its in-place redraws (``\\r`` + text) into plain lines."""

    def __init__(self, stream: TextIO):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.last = line

    def flush(self) -> None:
        self.stream.flush()


def tqdm_options(stage: str, unit: str = "steps", stream: TextIO | None = None) -> dict:
    """Keyword arguments of ``tqdm`` for a d4d progress display of ``stage`` (also what a
    diffusers pipeline's ``set_progress_bar_config`` takes)."""
    stream = sys.stderr if stream is None else stream
    terminal = _is_terminal(stream)
    return dict(desc=stage, unit=unit, bar_format=("{desc}: {percentage:3.0f}%|{bar}| " + _FORMAT[8:]) if terminal else _FORMAT,
                file=stream if terminal else _Lines(stream), mininterval=TERMINAL_EVERY_S if terminal else PLAIN_EVERY_S,
                smoothing=0.0, dynamic_ncols=terminal, ascii=not terminal, leave=True)


def bar(total: int | None, stage: str, unit: str = "steps", initial: int = 0, stream: TextIO | None = None, disable: bool = False,
        rate: Callable[[], float | None] | None = None):
    """A tqdm bar of ``total`` items (``initial`` already done) for ``stage``; use ``update(n)``,
    ``set_postfix_str(text)`` and ``close()`` (or ``with``); ``disable`` shows nothing.

    ``rate`` (items per second, or None while unknown) replaces the mean rate since the start in
    the time left: a long run whose pace changes (a cluster gaining or losing nodes) passes
    its recent rate."""
    from tqdm import tqdm

    if rate is None:
        return tqdm(total=total, initial=initial, disable=disable, **tqdm_options(stage, unit, stream))

    class _RatedBar(tqdm):
        @property
        def format_dict(self):
            values = super().format_dict
            values["rate"] = rate() or values["rate"]
            return values

    return _RatedBar(total=total, initial=initial, disable=disable, **tqdm_options(stage, unit, stream))


def track(items: Sequence, stage: str, unit: str = "items", stream: TextIO | None = None) -> Iterator:
    """Each of ``items`` in turn, under a bar of ``stage`` that counts one when the work on an
    item is done (when the next is asked for); the bar closes with the loop."""
    with bar(len(items), stage, unit, stream=stream) as progress:
        for item in items:
            yield item
            progress.update(1)


def say(line: str, stream: TextIO | None = None) -> None:
    """Print ``line`` on ``stream`` (stdout) above any running bar, which is redrawn below it."""
    from tqdm import tqdm

    stream = sys.stdout if stream is None else stream
    tqdm.write(line, file=stream)
    stream.flush()


class StageProgress:
    """One bar per stage from reports ``{"stage": str, "done": int, "total": int}``, named
    ``prefix + stage``: a new stage closes the previous bar; the last report of a stage (done ==
    total) closes its bar."""

    def __init__(self, unit: str = "frames", stream: TextIO | None = None, prefix: str = ""):
        self.unit, self.stream, self.prefix = unit, stream, prefix
        self.stage: str | None = None
        self.current = None

    def __call__(self, report: dict) -> None:
        stage, done, total = str(report["stage"]), int(report["done"]), int(report["total"])
        if stage != self.stage or self.current is None:
            self.close()
            self.stage, self.current = stage, bar(total, self.prefix + stage, self.unit, stream=self.stream)
        self.current.update(done - self.current.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


class _AboveBars(logging.StreamHandler):
    """Writes log records with ``tqdm.write``, so a running bar is redrawn below them."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise
            self.handleError(record)


def quiet_libraries(verbose: bool = False) -> None:
    """Before the libraries are imported: keep their own verbosity (transformers' import-time
    warnings, huggingface_hub's bars) at errors unless ``verbose``."""
    if verbose:
        return
    for variable, value in (("TRANSFORMERS_VERBOSITY", "error"), ("DIFFUSERS_VERBOSITY", "error"),
                            ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TF_CPP_MIN_LOG_LEVEL", "3")):
        os.environ.setdefault(variable, value)


_library_level = logging.WARNING


def library_level() -> int:
    """The level the libraries log at: ERROR after ``setup_logging``, INFO with ``verbose``
    (WARNING when no command set up the console). For libraries that reset their logger when
    they start (Ray's ``ray.init(logging_level=...)``)."""
    return _library_level


def setup_logging(verbose: bool = False, stream: TextIO | None = None) -> None:
    """The console of a d4d command: d4d's INFO lines (``HH:MM:SS name message``) on ``stream``
    (stderr); libraries and Python warnings at ERROR unless ``verbose``."""
    global _library_level
    _library_level = logging.INFO if verbose else logging.ERROR
    quiet_libraries(verbose)
    handler = _AboveBars(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s" if verbose else "%(asctime)s %(message)s",
                                           datefmt=None if verbose else "%H:%M:%S"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AboveBars)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("d4d").setLevel(logging.INFO)
    logging.captureWarnings(True)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    quiet_loaded_libraries(verbose)


def quiet_loaded_libraries(verbose: bool = False) -> None:
    """For libraries already imported (call again after a lazy import of diffusers or
    transformers): their verbosity, and diffusers' "Loading pipeline components" bars, which no
    environment variable turns off."""
    for library in ("transformers", "diffusers"):
        module = sys.modules.get(f"{library}.utils.logging")
        if module is not None:
            module.set_verbosity(logging.INFO if verbose else logging.ERROR)
            if not verbose and hasattr(module, "disable_progress_bar"):
                module.disable_progress_bar()
