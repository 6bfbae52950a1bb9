"""Where a session's recording goes when it is finished: the case's hash chain and the upload.

A recording is named ``<case_no>_<session_id>`` (``Recorder`` adds ``-NNN.ts``), so that a file
a crash left behind (``*.ts.part``) still says which case and session it belongs to:
``recover_unfinished`` finds such files at start-up, makes them playable (``recorder.recover``)
and hands each to the sink like a file of a call that ended normally.

The sink is ``EdgeStore.add_recording(case_no, session_id, rec)``, which writes the chain event
``case.recording_added`` and stages the file for the resumable upload in one transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from contracts.cases import CASE_NO_RE
from edge.media.errors import RecordingError
from edge.media.recorder import RecordedFile, recover, unfinished

log = logging.getLogger(__name__)

_SESSION = r"[A-Za-z0-9_-]{1,64}"
_CASE = CASE_NO_RE.pattern.strip("^$")
FILE_RE = re.compile(
    rf"^(?P<case_no>{_CASE})_(?P<session_id>{_SESSION})-(?P<segment>\d{{3}})\.ts(?:\.part)?$"
)


class RecordingSink(Protocol):
    """Takes a finished recording file of a session (``EdgeStore`` is one)."""

    async def add_recording(
        self,
        case_no: str,
        session_id: str,
        rec: RecordedFile,
        *,
        started_at: dt.datetime | None = None,
    ) -> object: ...


@dataclass(frozen=True)
class RecordingName:
    case_no: str
    session_id: str

    @property
    def stem(self) -> str:
        """The ``Recorder`` name: files are ``<stem>-NNN.ts``."""
        return f"{self.case_no}_{self.session_id}"


def recording_name(case_no: str, session_id: str) -> RecordingName:
    name = RecordingName(case_no, session_id)
    if parse_file_name(f"{name.stem}-001.ts") != name:
        raise RecordingError(
            f"cannot name a recording for case {case_no!r} and session {session_id!r}"
        )
    return name


def parse_file_name(file_name: str) -> RecordingName | None:
    """The case and session of a recording file's name, or ``None`` for another file."""
    match = FILE_RE.match(file_name)
    if match is None:
        return None
    return RecordingName(match["case_no"], match["session_id"])


async def recover_unfinished(directory: Path, sink: RecordingSink) -> list[RecordedFile]:
    """Recover every ``*.ts.part`` a crash left in ``directory`` and hand it to ``sink``; a
    file that does not play or does not name its case is logged and left where it is."""
    done: list[RecordedFile] = []
    for path in unfinished(directory):
        name = parse_file_name(path.name)
        if name is None:
            log.warning("recording %s names no case and session; left as it is", path.name)
            continue
        try:
            rec = await asyncio.to_thread(recover, path)
        except RecordingError as exc:
            log.warning("recording %s cannot be recovered: %s", path.name, exc)
            continue
        await sink.add_recording(name.case_no, name.session_id, rec)
        done.append(rec)
    return done
