"""The state database's schema, as a registry of named migrations.

Each migration runs once, inside the transaction that records it in
`_migrations`, so two installed versions of the tool (say one from pipx and one
in a pre-commit environment) opening the same state.db never apply one twice.
Append new migrations at the end; never edit or reorder released ones.

`COMPAT_LEVEL` is raised only by a migration that older code cannot write
safely; older versions then refuse to write (see state.open_state_db).
"""

from __future__ import annotations

import sqlite3
from typing import Callable

Migration = tuple[str, Callable[[sqlite3.Connection], None]]
MIGRATIONS: list[Migration] = []
# 2 (m023): versions before m018/m019/m021 read such a database and wrote wrong figures into it and
# into the local store (a downgrade sweep: rollups without `list_priced`, Claude Code messages
# priced without their one-hour writes and web searches, stored once and for good).
COMPAT_LEVEL = 2


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run DDL statements one by one: executescript() would commit the migration's transaction."""
    for statement in sql.split(";\n"):
        if statement.strip():
            db.execute(statement)


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            session_id TEXT,
            worktree TEXT,
            time_ms INTEGER,
            provider TEXT,
            model TEXT,
            agent TEXT,
            input INTEGER NOT NULL DEFAULT 0,
            output INTEGER NOT NULL DEFAULT 0,
            reasoning INTEGER NOT NULL DEFAULT 0,
            cache_read INTEGER NOT NULL DEFAULT 0,
            cache_write INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            branch TEXT,
            sha TEXT,
            spool_offset INTEGER,
            link_id INTEGER REFERENCES links(id)
        );
        CREATE INDEX messages_pending ON messages (worktree) WHERE link_id IS NULL;
        CREATE INDEX messages_link ON messages (link_id);
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            title TEXT,
            parent_id TEXT,
            agent TEXT,
            time_ms INTEGER
        );
        -- One row per commit that took usage (or was emitted).  `sha` is the
        -- commit the usage was first linked to; `current_sha` follows rewrites.
        CREATE TABLE links (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            worktree TEXT,
            sha TEXT NOT NULL,
            current_sha TEXT NOT NULL,
            kind TEXT NOT NULL,
            origin TEXT NOT NULL,
            branch TEXT,
            parents TEXT NOT NULL DEFAULT '[]',
            time_ms INTEGER,
            agent_session_id TEXT,
            agent_message_id TEXT,
            hold_until_ms INTEGER,
            emitted INTEGER NOT NULL DEFAULT 0,
            note TEXT,
            UNIQUE (sha, kind, worktree)
        );
        CREATE INDEX links_current ON links (current_sha);
        CREATE INDEX links_held ON links (emitted) WHERE emitted = 0;
        CREATE TABLE rewrites (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            command TEXT NOT NULL,
            old_sha TEXT NOT NULL,
            new_sha TEXT NOT NULL,
            time_ms INTEGER
        );
        -- Per-worktree facts the spool's order decides (e.g. a squash merge is pending).
        CREATE TABLE worktree_state (worktree TEXT PRIMARY KEY, squash_pending INTEGER NOT NULL DEFAULT 0);
        -- Spool records of a newer format than this version understands: kept, not dropped.
        CREATE TABLE deferred_records (spool_offset INTEGER PRIMARY KEY, version TEXT, line TEXT NOT NULL);
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until_ms INTEGER NOT NULL DEFAULT 0,
            not_before_ms INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE TABLE dead_letters (
            event_id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            reason TEXT,
            dead_ms INTEGER NOT NULL
        );
        -- Loss accounting per event type: created = delivered + pending + dead + dropped.
        CREATE TABLE event_counts (
            type TEXT PRIMARY KEY,
            created INTEGER NOT NULL DEFAULT 0,
            delivered INTEGER NOT NULL DEFAULT 0,
            dead INTEGER NOT NULL DEFAULT 0,
            dropped INTEGER NOT NULL DEFAULT 0
        );
        -- Every event id that was ever enqueued, so a re-read spool never creates it twice.
        CREATE TABLE emitted_events (event_id TEXT PRIMARY KEY);
        """,
    )


@migration
def m002_messages_by_time(db: sqlite3.Connection) -> None:
    # The idle-window rule asks for a worktree's latest message on every commit; without this
    # index that is a full scan (35 ms at 100,000 messages).
    db.execute("CREATE INDEX IF NOT EXISTS messages_worktree_time ON messages (worktree, time_ms)")


@migration
def m003_squash_reflog(db: sqlite3.Connection) -> None:
    # The HEAD reflog entry newest at `merge --squash` time: the squash commit must directly follow
    # it, or the squash was abandoned (reset, checkout) and the next commit is an ordinary one.
    db.execute("ALTER TABLE worktree_state ADD COLUMN squash_reflog TEXT")


@migration
def m010_pricing_list_cost(db: sqlite3.Connection) -> None:
    # Issue 13: each message's list price (integer micro-dollars, NULL when the model is not in the
    # table), where its cost came from (reported / estimated / subscription / unknown), the price
    # table's identity, and whether the agent reported a cost at all (Claude Code does not).
    # Messages stored before this migration have no list price: `periscope prices` counts them.
    db.execute("ALTER TABLE messages ADD COLUMN list_cost_micro INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN cost_source TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN price_snapshot TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN cost_reported INTEGER NOT NULL DEFAULT 1")


@migration
def m014_agents_coding_agent(db: sqlite3.Connection) -> None:
    # Which coding agent wrote a message or session (opencode, claude-code), and which message
    # held which tool call: a Claude Code commit names only the tool call that ran it, since
    # its message may reach the transcript after the commit (issue 14).  Idempotent: a branch
    # build applied it under an earlier name, and such a database must still open.
    for table in ("messages", "sessions"):
        if "coding_agent" not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN coding_agent TEXT")
    db.execute("CREATE TABLE IF NOT EXISTS agent_tool_uses (tool_use_id TEXT PRIMARY KEY, message_id TEXT NOT NULL)")


@migration
def m012_reconcile_status(db: sqlite3.Connection) -> None:
    # Whether each linked commit is still reachable and whether it reached the upstream default
    # branch, as of the refs fingerprinted in meta `reconcile_fingerprint`: `report` reads this
    # instead of running `git rev-list --all` (0.5-0.7 s at 28k commits) on every call.
    db.execute(
        "CREATE TABLE reconcile_status (sha TEXT PRIMARY KEY, reachable INTEGER NOT NULL, shipped INTEGER NOT NULL)"
    )


@migration
def m015_pricing_cache(db: sqlite3.Connection) -> None:
    # Each model's resolved prices per price table (pricing.Pricer): a flusher run that meets only
    # known models never imports genai-prices (0.3-1 s of CPU per run otherwise).  Derived data.
    # IF NOT EXISTS: builds from before its rename applied it as `m011_pricing_cache` (the same
    # table); their databases must still open (m014 likewise).
    db.execute(
        "CREATE TABLE IF NOT EXISTS price_cache (snapshot TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,"
        " maker_only INTEGER NOT NULL, periods TEXT NOT NULL, PRIMARY KEY (snapshot, provider, model, maker_only))"
    )


@migration
def m011_scale_outbox_event_time(db: sqlite3.Connection) -> None:
    # Issue 11: the local store files each event with its time; kept beside the body, the flusher
    # hands stored bodies to the store as they are (no JSON decode and re-encode per event).
    db.execute("ALTER TABLE outbox ADD COLUMN event_time TEXT")


@migration
def m011_scale_worktree_ids(db: sqlite3.Connection) -> None:
    # Issue 9 item 13: which worktree (the main one, or a linked one by its admin folder name) a
    # recorded path was, learned while the path existed, so that a moved worktree (`git worktree
    # move`, a moved repository) is recognised and its pending usage follows it.
    db.execute("CREATE TABLE worktree_ids (path TEXT PRIMARY KEY, identity TEXT NOT NULL)")


@migration
def m016_reports_rollup(db: sqlite3.Connection) -> None:
    # Issue 11: reports read these small sums instead of grouping every message (1-2 s at 1M
    # messages); statedb.roll_up_reports fills them from the messages (derived data: a rebuilt
    # state.db refills them, and an old state.db's first report or flush rolls up what it holds).
    sums = (
        "messages INTEGER NOT NULL, input INTEGER, output INTEGER, reasoning INTEGER, cache_read INTEGER,"
        " cache_write INTEGER, cost_units INTEGER, list_cost_micro INTEGER, src_reported INTEGER,"
        " src_estimated INTEGER, src_subscription INTEGER, src_unknown INTEGER"
    )
    db.execute(
        "CREATE TABLE report_cells (bucket INTEGER, provider TEXT, model TEXT, branch TEXT, session_id TEXT,"
        f" coding_agent TEXT, {sums}, first_ms INTEGER)"
    )
    db.execute("CREATE INDEX report_cells_bucket ON report_cells (bucket)")
    db.execute(f"CREATE TABLE report_links (link_id INTEGER PRIMARY KEY, {sums})")


@migration
def m016_ingest_partial_link_index(db: sqlite3.Connection) -> None:
    # Issue 11: messages_link only ever answers `link_id = ?` (a commit's messages) and
    # `link_id IS NOT NULL` (usage per link); unlinked messages are messages_pending's.  As a
    # partial index it no longer takes an entry for every stored message and moves it when the
    # message is linked: storing and linking 100k messages took 0.75-0.86x the CPU.
    db.execute("DROP INDEX IF EXISTS messages_link")
    db.execute("CREATE INDEX messages_link ON messages (link_id) WHERE link_id IS NOT NULL")


@migration
def m017_reconcile_partial_indexes(db: sqlite3.Connection) -> None:
    # Issue 11: the flush after a commit reads the linked commits not shipped yet, the cherry-picks
    # and the agent commits since recovery's mark: each a handful of rows, each found by a scan of
    # all 50,000 status rows or links at 1M messages (3-10 ms apiece) without these.
    db.execute("CREATE INDEX IF NOT EXISTS reconcile_status_unshipped ON reconcile_status (sha) WHERE shipped = 0")
    db.execute("CREATE INDEX IF NOT EXISTS links_cherry_pick ON links (kind, sha) WHERE kind = 'cherry-pick'")
    db.execute("CREATE INDEX IF NOT EXISTS links_agent ON links (id) WHERE origin = 'agent'")


@migration
def m018_reports_list_priced(db: sqlite3.Connection) -> None:
    # The reports' rollups count the messages that have a list price: a row whose messages have
    # none (a model not in the price table) showed a list cost of 0 where docs/cost.md promises
    # none.  The rollups are derived data: emptied here, the first report or flush rolls them up
    # again from the messages (about 7 s at 1M messages, once).
    db.execute("ALTER TABLE report_cells ADD COLUMN list_priced INTEGER")
    db.execute("ALTER TABLE report_links ADD COLUMN list_priced INTEGER")
    db.execute("DELETE FROM report_cells")
    db.execute("DELETE FROM report_links")
    db.execute(
        "DELETE FROM meta WHERE key IN"
        " ('reports_message_mark', 'reports_link_mark', 'reports_rows_added', 'reports_rows_kept')"
    )


@migration
def m019_messages_cache_write_1h(db: sqlite3.Connection) -> None:
    # The part of a message's cache writes kept for an hour (Claude Code's transcripts split them;
    # Anthropic bills them at 2x input, five-minute writes at 1.25x).  A constant default: SQLite
    # adds the column without rewriting the table, whatever its size.  Not NOT NULL: messages go in
    # with INSERT OR IGNORE, which would drop a row with a NULL there without a word.
    db.execute("ALTER TABLE messages ADD COLUMN cache_write_1h INTEGER DEFAULT 0")


@migration
def m020_cherry_picks(db: sqlite3.Connection) -> None:
    # Every cherry-pick the hooks recorded, linked or not: a copy never replaces its original, and
    # one made outside an AI session (no link) let reconciliation move the original's usage onto
    # it.  Filled by ingest from the spool (a rebuilt state.db knows the same ones).
    db.execute("CREATE TABLE cherry_picks (sha TEXT PRIMARY KEY) WITHOUT ROWID")


@migration
def m021_messages_web_searches_speed(db: sqlite3.Connection) -> None:
    # What else a message's price depends on: the web searches it ran (Anthropic and OpenAI bill
    # each, $10 a thousand) and whether it ran in fast mode (Anthropic's `speed: "fast"`, priced by
    # the table's variant at 2x or more).  Constant defaults and nullable, as m019.
    db.execute("ALTER TABLE messages ADD COLUMN web_searches INTEGER DEFAULT 0")
    db.execute("ALTER TABLE messages ADD COLUMN speed TEXT")


@migration
def m022_rebase_facts(db: sqlite3.Connection) -> None:
    # What the spool told about a rebase under way in a worktree, kept until its own post-rewrite
    # (rules.rebase_moves): `amend` (old -> new, an amend while rebasing: the sequencer's fixups
    # and squashes, an amend at a stop), `parent` (old is the first parent of new, a commit made at
    # a stop) and `stop` (an `edit` stop at old left new at HEAD).  Filled by ingest from the
    # spool, so a rebuilt state.db knows the same.
    _script(
        db,
        """
        CREATE TABLE rebase_facts (
            id INTEGER PRIMARY KEY,
            worktree TEXT NOT NULL,
            kind TEXT NOT NULL,
            old_sha TEXT NOT NULL,
            new_sha TEXT NOT NULL
        );
        CREATE INDEX rebase_facts_worktree ON rebase_facts (worktree)
        """,
    )


@migration
def m023_older_versions_refused(db: sqlite3.Connection) -> None:
    # Nothing to change: applying a migration raises the database to COMPAT_LEVEL 2, which the
    # versions that cannot keep m018-m021's columns right refuse (state._check_compat).
    pass


@migration
def m024_reconcile_seen_from_the_spool(db: sqlite3.Connection) -> None:
    # What reconciliation compared and left (reconcile.Seen) now comes from `reconcile-seen`
    # records in the spool.  The one kept here before came from none: a rebuild would not know it,
    # so it goes, and the next run compares as a rebuilt state.db would (once, in full).
    db.execute("DELETE FROM meta WHERE key = 'reconcile_seen'")
