"""Messages stored before list prices (migration m010) get them, once.

Such a message had no cost source and no list price: reports counted it `unknown`, and a commit
event made after the upgrade summed it so, while a state.db rebuilt from the spool prices it at
ingest: the same event id with another body, depending on when the user upgraded.  Pricing them
with the table in use (what ingest does for a new message), before anything else is ingested,
makes every event from then on the one a rebuild makes.
"""

from __future__ import annotations

from periscope_hooks import statedb
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.state import transaction
from periscope_hooks.statedb import Meta


def price_old_messages(ctx: IngestContext) -> int:
    """Price the messages stored without a cost source (once per state.db); how many."""
    conn = ctx.conn
    if statedb.get_meta(conn, Meta.OLD_MESSAGES_PRICED):
        return 0
    prices = []
    for (
        rowid,
        provider,
        model,
        inp,
        out,
        reasoning,
        c_read,
        c_write,
        time_ms,
        cost,
        reported,
        hour_writes,
    ) in statedb.unpriced_messages(conn):
        try:
            tokens = (int(inp or 0), int(out or 0), int(reasoning or 0), int(c_read or 0), int(c_write or 0))
            reported_cost = cost if reported else None
            priced = ctx.prices.price(provider, model, tokens, time_ms, reported_cost, int(hour_writes or 0))
        except Exception as e:  # runs before every ingest until done: one odd old row must not stop it
            ctx.log(f"could not price an old message (row {rowid}): {type(e).__name__}; left without a list price")
            continue
        prices.append((priced.list_cost_micro, priced.source, priced.snapshot, rowid))
    with transaction(conn):
        if prices:
            statedb.set_message_prices(conn, prices)
            statedb.empty_report_rollups(conn)  # they summed these messages unpriced
            ctx.log(f"priced {len(prices)} message(s) stored before list prices")
        statedb.set_meta(conn, Meta.OLD_MESSAGES_PRICED, "1")
    return len(prices)
