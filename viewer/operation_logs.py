"""An operation's own log lines, and the traceback an invocation logged for it.

The SDK sends no ``StackTrace`` for ordinary exceptions: the real traceback is in the log
of the invocation the attempt ran in, where the SDK writes it with
``logger.exception("❌ failed step for id: <op id>, name: ...")``. Logs are captured per
invocation (``recorder.engine.logs``), so an attempt's traceback is found among the lines
of its own invocation only.

Two capture shapes reach the store. In-process invocations keep a logging record whole
(the traceback inside its message); worker processes hand over the runtime's output line
by line, so the traceback follows the record's first line as separate lines, and the
runtime glues the next record's header (``[ERROR]\\t<time>\\t<request id>\\t``) to the last
line of a traceback. Both are read here.

Which lines belong to an operation is decided in ``belongs``: the lines the SDK's context
logger tagged with the operation id, and the SDK's own lines that name the operation.
When every captured line carries its operation id, ``belongs`` is the one place to change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from recorder.queries import LogEntry

# The runtime's text log format: "[LEVEL]\t<ISO time>\t<request id>\t<message>".
_RECORD_HEADER = re.compile(r"\[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\]\t[^\t]*\t[^\t]*\t")
_TRACEBACK = "Traceback (most recent call last):"
_CHAIN = ("During handling of the above exception, another exception occurred:",
          "The above exception was the direct cause of the following exception:")
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?:: .*)?")
_ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
_STREAMS = frozenset({"STDOUT", "STDERR"})
# "❌ failed step for id: <op id>, name: ...", "❌ wait_for_condition failed for id: <op id>, ...".
_NAMED_OP = re.compile(r"\bid: ([^\s,]+)")
# The SDK logs the end of a failed execution with this message and the traceback.
EXECUTION_FAILED = "Execution failed"


@dataclass(frozen=True)
class Line:
    """One logical log line: a record's message (a runtime header removed), and the id of
    the stored line it starts at (the logs page's anchor)."""

    line_id: int
    ts_ms: int
    request_id: str | None
    level: str
    logger: str | None
    op_id: str | None
    text: str
    replay: bool = False  # written while the SDK replayed (recorder.engine.logs)
    attempt: int | None = None


@dataclass(frozen=True)
class LoggedTrace:
    """A traceback found in an invocation's log: its text and the stored line it starts at."""

    request_id: str
    line_id: int
    text: str


def split_records(entries: Iterable[LogEntry]) -> list[Line]:
    """Stored lines as logical lines: a runtime record header in the middle of a stored line
    starts a new line there, and a header at the start is dropped from the text."""
    out: list[Line] = []
    for e in entries:
        text = e.message
        starts = [m.start() for m in _RECORD_HEADER.finditer(text)]
        if not starts or starts[0] != 0:
            starts.insert(0, 0)
        for i, start in enumerate(starts):
            piece = text[start:starts[i + 1] if i + 1 < len(starts) else len(text)]
            header = _RECORD_HEADER.match(piece)
            level = e.level
            if header:
                level = piece[1:piece.index("]")]
                piece = piece[header.end():]
            out.append(Line(e.id, e.ts_ms, e.request_id, level, e.logger, e.op_id, piece, e.replay, e.attempt))
    return out


def named_operation(line: Line) -> str | None:
    """The operation an SDK error line names (its failure messages say "for id: <op id>")."""
    if line.level not in _ERROR_LEVELS:
        return None
    m = _NAMED_OP.search(line.text.split("\n", 1)[0])
    return m.group(1) if m else None


def belongs(line: Line, op_id: str) -> bool:
    """Whether a line is the operation's own: tagged with it, or the SDK naming it."""
    return line.op_id == op_id or named_operation(line) == op_id


def attempt_lines(lines: Sequence[Line], op_id: str, attempt: int) -> list[Line]:
    """The lines of one attempt of an operation: those written inside it, and the SDK's
    lines naming the operation in the invocation the attempt ran in."""
    own = [ln for ln in lines if ln.op_id == op_id and ln.attempt == attempt]
    requests = {ln.request_id for ln in own}
    return [ln for ln in lines if (ln.op_id == op_id and ln.attempt == attempt)
            or (ln.request_id in requests and ln.op_id is None and named_operation(ln) == op_id)]


def trace_after(lines: Sequence[Line], index: int) -> str | None:
    """The traceback the record at ``index`` carries: inside its message (after its first
    line), or in the lines that follow it (a worker's output)."""
    head, _, rest = lines[index].text.partition("\n")
    if rest.strip():
        return rest.rstrip()
    taken = _traceback_lines([ln.text for ln in lines[index + 1:index + 1 + 2000]
                              if ln.request_id == lines[index].request_id])
    return "\n".join(taken) if taken else None


def _traceback_lines(candidates: Sequence[str]) -> list[str]:
    """The lines that continue a traceback, by the grammar Python prints one in: frames
    (indented), the exception line, and chained tracebacks joined by their marker lines."""
    out: list[str] = []
    expect_exception = True  # at the start, a traceback or (a chained cause) its exception line
    after_exception = False
    for text in candidates:
        if text == _TRACEBACK:
            out.append(text)
            expect_exception, after_exception = True, False
        elif text.startswith((" ", "\t")) and out and not after_exception:
            out.append(text)
        elif text == "" and out:
            out.append(text)
        elif text in _CHAIN and after_exception:
            out.append(text)
            after_exception = False
        elif expect_exception and not after_exception and _EXCEPTION_LINE.fullmatch(text):
            out.append(text)
            after_exception = True
        else:
            break
    while out and out[-1] == "":
        out.pop()
    return out if _TRACEBACK in out else []


def operation_traces(lines: Sequence[Line]) -> dict[tuple[str, str], list[LoggedTrace]]:
    """Per (request id, operation id), the tracebacks the SDK logged for that operation in
    that invocation, in the order they were logged (one pass over the lines)."""
    found: dict[tuple[str, str], list[LoggedTrace]] = {}
    for i, line in enumerate(lines):
        op_id = named_operation(line) if line.request_id else None
        if op_id:
            text = trace_after(lines, i)
            if text:
                found.setdefault((line.request_id or "", op_id), []).append(
                    LoggedTrace(line.request_id or "", line.line_id, text))
    return found


def execution_trace(lines: Sequence[Line], request_id: str | None) -> LoggedTrace | None:
    """The traceback the SDK logged when the handler failed, in invocation ``request_id``."""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line.request_id == request_id and line.level in _ERROR_LEVELS \
                and line.text.split("\n", 1)[0].strip() == EXECUTION_FAILED:
            text = trace_after(lines, i)
            if text:
                return LoggedTrace(request_id or "", line.line_id, text)
    return None


def own_lines(lines: Sequence[Line], op_id: str) -> list[Line]:
    """The operation's own lines (see ``belongs``), tracebacks folded into their records."""
    return [ln for ln in fold(lines) if belongs(ln, op_id)]


def fold(lines: Sequence[Line]) -> list[Line]:
    """Lines with each traceback a worker wrote line by line folded into the record before
    it, so a logs page shows one entry per record (in-process records are whole already)."""
    out: list[Line] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        taken: list[str] = []
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        if nxt is not None and "\n" not in line.text and (nxt.text == _TRACEBACK or (
                line.level in _ERROR_LEVELS and nxt.level in _STREAMS and _EXCEPTION_LINE.fullmatch(nxt.text))):
            taken = _traceback_lines([ln.text for ln in lines[i + 1:i + 2001] if ln.request_id == line.request_id])
        if taken:
            out.append(replace(line, text=line.text + "\n" + "\n".join(taken)))
            i += 1 + len(taken)
        else:
            out.append(line)
            i += 1
    return out
