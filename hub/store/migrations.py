"""Named, transactional schema migrations of the hub's database."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("xfv-hub")


@migrations(name="0001_edges")
def _edges(db: Database) -> None:
    db.table("edges").create(
        {
            "node": str,
            "township": str,
            "version": str,
            "online": int,
            "bd_seq": int,
            "kiosk_port": int,
            "first_seen_at": str,
            "last_birth_at": str,
            "last_seen_at": str,
            "offline_at": str,
            "telemetry": str,
            "telemetry_at": str,
        },
        pk="node",
        not_null={"township", "online", "bd_seq"},
    )
    db.table("edges").create_index(["township"])


@migrations(name="0002_users_audit")
def _users(db: Database) -> None:
    db.table("users").create(
        {
            "username": str,
            "password_hash": str,
            "role": str,
            "jurisdiction": str,
            "display_name": str,
            "created_at": str,
            "disabled": int,
        },
        pk="username",
        not_null={"password_hash", "role", "jurisdiction", "created_at", "disabled"},
    )
    db.table("audit").create(
        {
            "id": int,
            "ts": str,
            "actor": str,
            "action": str,
            "target": str,
            "client": str,
            "detail": str,
        },
        pk="id",
        not_null={"ts", "action"},
    )
    db.table("audit").create_index(["actor"])


@migrations(name="0003_quarantine")
def _quarantine(db: Database) -> None:
    db.table("quarantine").create(
        {"id": int, "received_at": str, "topic": str, "node": str, "reason": str, "payload": bytes},
        pk="id",
        not_null={"received_at", "topic", "reason"},
    )


@migrations(name="0004_events_cases")
def _events_cases(db: Database) -> None:
    db.execute(
        """CREATE TABLE events (
             node TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, ts TEXT NOT NULL,
             hash TEXT NOT NULL, prev_hash TEXT NOT NULL, payload_enc BLOB NOT NULL,
             received_at TEXT NOT NULL, UNIQUE (node, seq))"""
    )
    db.table("streams").create(
        {
            "node": str,
            "head_seq": int,
            "head_hash": str,
            "chain_ok": int,
            "break_seq": int,
            "break_reason": str,
            "last_event_at": str,
            "gap_since": str,
            "resyncs": int,
        },
        pk="node",
        not_null={"head_seq", "head_hash", "chain_ok", "resyncs"},
    )
    db.execute(
        """CREATE TABLE held (
             node TEXT NOT NULL, seq INTEGER NOT NULL, payload_enc BLOB NOT NULL,
             received_at TEXT NOT NULL, PRIMARY KEY (node, seq))"""
    )
    db.table("cases").create(
        {
            "case_no": str,
            "node": str,
            "township": str,
            "registered_at": str,
            "name": str,
            "id_enc": bytes,
            "id_hmac": str,
            "id_masked": str,
            "phone": str,
            "address": str,
            "category": str,
            "concerned_unit": str,
            "content": str,
            "query_code_hash": str,
            "state": str,
            "photos_total": int,
            "photos_verified": int,
            "complete": int,
            "seq": int,
            "created_at": str,
        },
        pk="case_no",
        not_null={"node", "township", "registered_at", "id_enc", "id_hmac", "state"},
    )
    db.table("cases").create_index(["township", "registered_at"])
    db.table("cases").create_index(["id_hmac"])
    db.table("case_photos").create(
        {"case_no": str, "sha256": str, "size": int, "mime": str, "verified": int},
        pk=("case_no", "sha256"),
    )
    db.table("case_timeline").create(
        {"id": int, "case_no": str, "ts": str, "kind": str, "actor": str, "detail": str},
        pk="id",
    )
    db.table("case_timeline").create_index(["case_no"])


@migrations(name="0005_lookup_indexes")
def _lookup_indexes(db: Database) -> None:
    """Photo reads look up the cases of a blob; the box page lists one box's cases."""
    db.table("case_photos").create_index(["sha256"])
    db.table("cases").create_index(["node", "registered_at"])


@migrations(name="0006_workflow")
def _workflow(db: Database) -> None:
    """The case workflow: units, the hub's transition chain, deadlines, reminders, ratings,
    follow-ups, query attempts and links between cases. A case's ``track`` stays NULL until
    the deadline scanner adopts it under the default policy track."""
    for column, kind in (
        ("track", "TEXT"),
        ("unit_id", "TEXT"),
        ("assignee", "TEXT"),
        ("state_at", "TEXT"),
        ("supervised_at", "TEXT"),
        ("supervised_reason", "TEXT"),
        ("merged_into", "TEXT"),
        ("light", "TEXT"),
        ("next_due", "TEXT"),
    ):
        db.execute(f"ALTER TABLE cases ADD COLUMN {column} {kind}")
    db.execute("UPDATE cases SET state_at = registered_at")
    db.execute("ALTER TABLE users ADD COLUMN unit_id TEXT")
    db.table("cases").create_index(["state", "township"])
    db.table("cases").create_index(["track"])
    db.table("cases").create_index(["unit_id", "state"])
    db.table("cases").create_index(["supervised_at"])
    db.table("units").create(
        {
            "id": str,
            "name_zh": str,
            "name_en": str,
            "jurisdiction": str,
            "supervisor": str,
            "created_at": str,
        },
        pk="id",
        not_null={"name_zh", "jurisdiction", "created_at"},
    )
    db.execute(
        """CREATE TABLE transitions (
             id INTEGER PRIMARY KEY, case_no TEXT NOT NULL, action TEXT NOT NULL,
             from_state TEXT NOT NULL, to_state TEXT NOT NULL, actor TEXT NOT NULL,
             role TEXT NOT NULL, note TEXT NOT NULL, detail TEXT NOT NULL, ts TEXT NOT NULL,
             prev_hash TEXT NOT NULL, hash TEXT NOT NULL UNIQUE)"""
    )
    db.execute("CREATE INDEX transitions_case ON transitions (case_no, id)")
    db.execute(
        """CREATE TABLE deadlines (
             id INTEGER PRIMARY KEY, case_no TEXT NOT NULL, kind TEXT NOT NULL,
             started_on TEXT NOT NULL, due TEXT NOT NULL, day_kind TEXT NOT NULL,
             yellow_days INTEGER NOT NULL, reminders TEXT NOT NULL, estimated INTEGER NOT NULL,
             state TEXT NOT NULL, light TEXT, ended_at TEXT,
             extended_days INTEGER NOT NULL DEFAULT 0, extensions INTEGER NOT NULL DEFAULT 0,
             UNIQUE (case_no, kind))"""
    )
    db.execute("CREATE INDEX deadlines_open ON deadlines (state, due)")
    db.execute(
        """CREATE TABLE notifications (
             id INTEGER PRIMARY KEY, case_no TEXT NOT NULL, deadline_id INTEGER,
             kind TEXT NOT NULL, recipient TEXT NOT NULL, channel TEXT NOT NULL,
             text TEXT NOT NULL, created_at TEXT NOT NULL, sent_at TEXT, read_at TEXT,
             attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt_at TEXT,
             UNIQUE (case_no, deadline_id, kind, recipient, channel))"""
    )
    db.execute("CREATE INDEX notifications_unsent ON notifications (channel, sent_at)")
    db.execute("CREATE INDEX notifications_recipient ON notifications (recipient, read_at)")
    db.execute(
        """CREATE TABLE ratings (
             case_no TEXT PRIMARY KEY, office TEXT NOT NULL, unit TEXT NOT NULL,
             comment TEXT NOT NULL DEFAULT '', rated_at TEXT NOT NULL, client TEXT)"""
    )
    db.execute(
        """CREATE TABLE followups (
             id INTEGER PRIMARY KEY, case_no TEXT NOT NULL, kind TEXT NOT NULL,
             reason TEXT NOT NULL, created_at TEXT NOT NULL, assignee TEXT, done_at TEXT,
             UNIQUE (case_no, kind))"""
    )
    db.execute(
        """CREATE TABLE query_attempts (
             id INTEGER PRIMARY KEY, case_no TEXT NOT NULL, client TEXT NOT NULL,
             ts TEXT NOT NULL, ok INTEGER NOT NULL)"""
    )
    db.execute("CREATE INDEX query_attempts_case ON query_attempts (case_no, ts)")
    db.execute("CREATE INDEX query_attempts_client ON query_attempts (client, ts)")
    db.execute(
        """CREATE TABLE case_links (
             case_no TEXT NOT NULL, other TEXT NOT NULL, kind TEXT NOT NULL,
             score REAL NOT NULL, reasons TEXT NOT NULL, created_at TEXT NOT NULL,
             PRIMARY KEY (case_no, other, kind))"""
    )


@migrations(name="0007_stats_indexes")
def _stats_indexes(db: Database) -> None:
    """Statistics over a period: deadlines closed in it, replies in it, ratings in it."""
    db.execute("CREATE INDEX deadlines_ended ON deadlines (state, ended_at, due)")
    db.execute("CREATE INDEX transitions_to_state ON transitions (to_state, ts)")
    db.execute("CREATE INDEX ratings_rated_at ON ratings (rated_at)")


@migrations(name="0008_scan_marks")
def _scan_marks(db: Database) -> None:
    """What the deadline scan has already said about each deadline, so a steady scan reads
    only what is new; and the index of the filtered case list."""
    db.execute("ALTER TABLE deadlines ADD COLUMN reminded_days INTEGER")
    db.execute("ALTER TABLE deadlines ADD COLUMN overdue_noted INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "UPDATE deadlines SET overdue_noted = 1 WHERE id IN "
        "(SELECT deadline_id FROM notifications WHERE kind = 'overdue')"
    )
    db.execute(
        "UPDATE deadlines SET reminded_days = (SELECT min(CAST(substr(n.kind, 8) AS INTEGER)) "
        "FROM notifications n WHERE n.deadline_id = deadlines.id AND n.kind LIKE 'before_%') "
        "WHERE id IN (SELECT deadline_id FROM notifications WHERE kind LIKE 'before_%')"
    )
    db.execute(
        "CREATE INDEX deadlines_overdue_pending ON deadlines (due) "
        "WHERE state = 'open' AND overdue_noted = 0"
    )
    db.execute("CREATE INDEX cases_lit ON cases (case_no) WHERE light IS NOT NULL")
    db.execute(
        "CREATE INDEX deadlines_lights ON deadlines (state, day_kind, yellow_days, due, light)"
    )
    db.execute("CREATE INDEX deadlines_reminders ON deadlines (state, day_kind, reminders)")
    db.execute("CREATE INDEX cases_listed ON cases (state, category, registered_at, township)")


@migrations(name="0009_stats_covering")
def _stats_covering(db: Database) -> None:
    """Statistics join deadlines, ratings and replies to their case for its township and
    unit only: covering indexes answer those joins without reading the wide case rows, and
    the deadline scans of a period without reading the deadline rows."""
    db.execute("CREATE INDEX cases_scope ON cases (case_no, township, unit_id)")
    db.execute("DROP INDEX IF EXISTS deadlines_ended")
    db.execute("CREATE INDEX deadlines_ended ON deadlines (state, ended_at, due, kind, case_no)")
    db.execute("CREATE INDEX deadlines_due ON deadlines (state, due, kind, case_no)")


SCOPED_TABLES = ("deadlines", "ratings", "transitions")
"""Tables that carry a copy of their case's ``township`` and ``unit_id`` (migration 0010)."""


@migrations(name="0010_stats_scope")
def _stats_scope(db: Database) -> None:
    """Statistics cut deadlines, ratings and replies to the caller's jurisdiction and unit,
    and group them by unit or division: each such row now carries a copy of its case's
    ``township`` and ``unit_id``, so every part of the statistics is one range scan of a
    covering index that never reads ``cases`` (``docs/workflow.md``, "Statistics").

    Triggers keep the copies true whoever writes: a row inserted without a township takes
    its case's, and a case whose unit (or township) changes, when routed or routed again,
    moves all its rows in the same statement, so a unit's figures go with its cases.
    Existing rows are filled here. The registration index becomes covering too."""
    for table in SCOPED_TABLES:
        db.execute(f"ALTER TABLE {table} ADD COLUMN township TEXT")
        db.execute(f"ALTER TABLE {table} ADD COLUMN unit_id TEXT")
        db.execute(
            f"UPDATE {table} AS t SET township = c.township, unit_id = c.unit_id "
            "FROM cases AS c WHERE c.case_no = t.case_no"
        )
        row = "case_no = NEW.case_no" if table == "ratings" else "id = NEW.id"
        db.execute(
            f"""CREATE TRIGGER {table}_scope AFTER INSERT ON {table}
                WHEN NEW.township IS NULL
                BEGIN UPDATE {table} SET (township, unit_id) =
                  (SELECT township, unit_id FROM cases WHERE case_no = NEW.case_no)
                WHERE {row}; END"""
        )
    moves = "".join(
        f"UPDATE {table} SET township = NEW.township, unit_id = NEW.unit_id "
        "WHERE case_no = NEW.case_no; "
        for table in SCOPED_TABLES
    )
    db.execute(
        f"""CREATE TRIGGER cases_scope_moves AFTER UPDATE OF township, unit_id ON cases
            WHEN NEW.township IS NOT OLD.township OR NEW.unit_id IS NOT OLD.unit_id
            BEGIN {moves}END"""
    )
    db.execute("DROP INDEX cases_scope")
    db.execute("DROP INDEX idx_cases_township_registered_at")
    db.execute(
        "CREATE INDEX cases_registered ON cases (township, registered_at, category, unit_id)"
    )
    db.execute("DROP INDEX deadlines_ended")
    db.execute(
        "CREATE INDEX deadlines_ended ON deadlines "
        "(state, ended_at, due, kind, township, unit_id, case_no)"
    )
    db.execute("DROP INDEX deadlines_due")
    db.execute(
        "CREATE INDEX deadlines_due ON deadlines "
        "(state, due, kind, township, unit_id, ended_at, case_no)"
    )
    db.execute("DROP INDEX transitions_to_state")
    db.execute(
        "CREATE INDEX transitions_to_state ON transitions "
        "(to_state, ts, township, unit_id, case_no)"
    )
    db.execute("DROP INDEX ratings_rated_at")
    db.execute(
        "CREATE INDEX ratings_rated_at ON ratings (rated_at, township, unit_id, office, unit)"
    )


@migrations(name="0011_live")
def _live(db: Database) -> None:
    """Live reception (``hub.store.live``): one row per session, one per monitor view, and
    the key of every session event already recorded (events may be delivered twice)."""
    db.execute(
        """CREATE TABLE live_sessions (
             session_id TEXT PRIMARY KEY,
             request_id TEXT,
             case_no TEXT NOT NULL,
             node TEXT NOT NULL,
             township TEXT NOT NULL,
             official TEXT NOT NULL,
             requested_at TEXT,
             accepted_at TEXT,
             started_at TEXT NOT NULL,
             ended_at TEXT,
             duration_s REAL,
             end_reason TEXT,
             ended_by TEXT)"""
    )
    db.execute("CREATE INDEX live_sessions_case ON live_sessions (case_no, started_at)")
    db.execute("CREATE INDEX live_sessions_scope ON live_sessions (township, started_at)")
    db.execute(
        """CREATE TABLE live_views (
             session_id TEXT NOT NULL,
             monitor TEXT NOT NULL,
             monitor_jur TEXT NOT NULL,
             from_at TEXT NOT NULL,
             to_at TEXT NOT NULL,
             duration_s REAL NOT NULL,
             UNIQUE (session_id, monitor, from_at))"""
    )
    db.execute(
        """CREATE TABLE live_events (
             key TEXT PRIMARY KEY,
             kind TEXT NOT NULL,
             at TEXT NOT NULL,
             detail TEXT NOT NULL)"""
    )


@migrations(name="0012_recordings")
def _recordings(db: Database) -> None:
    """Session recordings of cases (``case.recording_added``), and the rule that a case is
    complete only when every photo and every recording of it has verified: the photo
    verifier sets ``complete`` from the photos alone, so a trigger keeps it 0 while a
    recording of the case is still unverified, whoever writes it."""
    db.execute(
        """CREATE TABLE case_recordings (
             case_no TEXT NOT NULL REFERENCES cases (case_no),
             sha256 TEXT NOT NULL,
             session_id TEXT NOT NULL,
             node TEXT NOT NULL,
             seq INTEGER NOT NULL,
             size INTEGER NOT NULL,
             mime TEXT NOT NULL,
             duration_s REAL NOT NULL,
             started_at TEXT NOT NULL,
             streams TEXT NOT NULL,
             verified INTEGER NOT NULL DEFAULT 0,
             verified_at TEXT,
             PRIMARY KEY (case_no, sha256))"""
    )
    db.execute(
        "CREATE INDEX case_recordings_pending ON case_recordings (sha256) WHERE verified = 0"
    )
    db.execute("ALTER TABLE cases ADD COLUMN recordings_total INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE cases ADD COLUMN recordings_verified INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """CREATE TRIGGER cases_complete_needs_recordings AFTER UPDATE OF complete ON cases
           WHEN NEW.complete = 1 AND NEW.recordings_verified < NEW.recordings_total
           BEGIN UPDATE cases SET complete = 0 WHERE case_no = NEW.case_no; END"""
    )
