"""`periscope prices`: which price table is in use, how old it is, which recorded models it lacks;
`periscope prices --update`: fetch fresh prices (one line when offline)."""

from __future__ import annotations

import datetime as _dt
import sqlite3

from periscope_hooks import output, pricing, statedb
from periscope_hooks.errors import UserError
from periscope_hooks.repo import resolve_state_dir
from periscope_hooks.state_reader import read_state


def missing_models(conn: sqlite3.Connection, table: pricing.PriceTable | pricing.NoTable) -> list[tuple[str, str, int]]:
    """(provider, model, messages) of the recorded models the table cannot price."""
    models = statedb.recorded_models(conn)
    if not isinstance(table, pricing.PriceTable):
        return models
    return [(p, m, n) for p, m, n in models if table.rates(p or "", m, None) is None]


def _age(fetched: str) -> str:
    try:
        when = _dt.datetime.strptime(fetched, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return fetched
    days = (_dt.datetime.now(_dt.timezone.utc) - when).days
    return f"fetched {fetched} ({days} day(s) ago)"


def prices(repo: str | None, update: bool) -> int:
    if update:
        try:
            identity = pricing.fetch_update()
        except ImportError:
            raise UserError("genai-prices is not installed (it needs Python 3.11+)", "pip install genai-prices")
        except (OSError, ValueError) as e:
            raise UserError(str(e), "the price table in use stays; run `periscope prices --update` again when online")
        output.out(f"prices updated: {identity}")
        output.out("messages ingested from now on use it; those already stored keep the price they were given")
        return 0
    table = pricing.load_table()
    if not isinstance(table, pricing.PriceTable):
        output.out("price table: none (genai-prices is not installed; it needs Python 3.11+): list prices unknown")
    else:
        output.out(f"price table: {table.identity}")
        meta = pricing.fetched_meta()
        if meta is not None and "fetched" in table.identity:
            output.out(f"age: {_age(str(meta.get('fetched')))}")
        else:
            newest = pricing.newest_price_date(table.snapshot)
            output.out(
                "age: bundled with the installed genai-prices"
                + (f" (its newest dated price change: {newest})" if newest else "")
                + "; `periscope prices --update` fetches fresh prices"
            )
    state_dir = resolve_state_dir(repo)
    (missing, stale), note = read_state(
        state_dir,
        lambda conn: (missing_models(conn, table), statedb.priced_with_another_table(conn, table.identity or "")),
        output.ingesting,
    )
    if note:
        output.info(f"note: {note}")
    if missing:
        output.out("recorded models not in the table (their list price is unknown):")
        for provider, model, n in missing:
            output.out(output.one_line(f"  {provider}/{model}") + f"  ({n} message(s))")  # names as recorded
    else:
        output.out("every recorded model is in the table")
    if stale:
        output.out(f"{stale} message(s) were priced with an earlier table (kept as recorded)")
    return 0
