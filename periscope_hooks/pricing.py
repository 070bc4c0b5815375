"""List-price cost of a message, from Pydantic's genai-prices table, and where a cost came from.

Every message gets, besides the cost its agent reported, a list-price cost computed here from its
provider, model and five token counts (and how many of its cache writes were for an hour: Anthropic
bills those at 2x input, against 1.25x for five minutes; how many web searches it ran; whether it
ran in fast mode, which the table prices as a variant), and a source saying which figure to trust:

- ``reported``: the agent computed a cost (> 0, or 0 for a message that used no tokens);
- ``estimated``: the agent reported no cost at all (Claude Code's transcripts): the list price is it;
- ``subscription``: the agent reported 0 for tokens used (GitHub Copilot, OpenCode's free tiers,
  a plan or seat): the list price says what the same tokens cost from the model's maker;
- ``unknown``: nobody knows (no reported figure and the model is not in the table): never a guess.

Token conventions (OpenCode's, which the spool keeps): ``input`` excludes cache reads and writes and
``output`` excludes reasoning.  genai-prices counts input *including* cached tokens (a tier's
threshold is on that total) and reasoning is billed at the output price.

The library is imported only here, only by the background flusher (it costs ~0.3-1 s to import;
never on the commit hook's path, see tests/test_hook_imports.py).  Its per-call price calculation
costs about 1 ms, which would cut ingest throughput several-fold, so a message is priced from integer
unit prices resolved once per (provider, model) and price period (tests/test_pricing.py checks the
result equals the library's own calculation for every model in the snapshot).  Money is integer
micro-dollars, so sums are exact.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

from periscope_hooks import paths, statedb

SOURCES = ("reported", "estimated", "subscription", "unknown")
MICRO = 1_000_000
PICO_PER_MICRO = 1_000_000
UPDATE_URL = "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/data.json"
FETCHED_NAME = "data.json"
# Beside the fetched table: the periods of every model any repository has priced, for one table
# identity.  A first ingest in a new clone then prices what other repositories met before without
# importing genai-prices (0.2-0.3 s of CPU: a third of a 10,000-message first ingest).
SHARED_PERIODS_NAME = "periods-cache.json"
FETCHED_META_NAME = "data.meta.json"

# OpenCode provider ids (models.dev) genai-prices knows under another name.  The library's own
# provider matching already maps amazon-bedrock -> aws, xai -> x-ai, google-vertex -> google and
# google-vertex-anthropic -> anthropic; these are the ones it misses.
PROVIDER_ALIASES = {
    "fireworks-ai": "fireworks",
    "togetherai": "together",
    "zhipuai-coding-plan": "zhipuai",
    "zai-coding-plan": "zai",
}

# Providers that run the model on the user's machine (OpenCode's ids): a model named like an API's
# (deepseek-r1:7b, a local distill) is not that model, and is billed by no one: never a list price.
LOCAL_PROVIDERS = frozenset(("ollama", "lmstudio", "llama.cpp", "llamacpp", "local"))

# The price keys a message's five token counts can incur (plus a per-request price and one per web
# search; the 1-hour cache writes are part of cache_write).  Any other key of a model's price
# (audio, images, other tools...) prices usage the spool never records.
_TOKEN_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
    "cache_write_1h_mtok",
)
_REQUEST_KEY = "requests_kcount"
_WEB_SEARCH_KEY = "web_searches_kcount"
# The request context a message's price can depend on: genai-prices' price variants for Anthropic's
# fast mode (`when={"speed": "fast"}`: 2x the standard rates and more).  The only one the spool
# records; a message's `speed` is "fast" or None (standard).
FAST = "fast"


Pico = Union[int, Fraction]  # pico-dollars (1e-12 $)


@dataclass(frozen=True)
class Priced:
    """A message's list price (None when the model is not in the table) and its cost source."""

    list_cost_micro: int | None
    source: str
    snapshot: str | None  # the table's identity, with every list price (None when none was found)


@dataclass(frozen=True)
class _Rate:
    """Pico-dollars per token, exact (integers, but for a few noisy prices)."""

    base: Pico
    tiers: tuple[tuple[int, Pico], ...] = ()  # (start, rate): above `start` input tokens, all tokens pay `rate`

    def at(self, total_input: int) -> Pico:
        rate = self.base
        for start, tier_rate in self.tiers:
            if total_input > start:
                rate = tier_rate
        return rate


@dataclass(frozen=True)
class _Rates:
    input: _Rate | None
    output: _Rate | None
    cache_read: _Rate | None
    cache_write: _Rate | None
    reasoning: _Rate | None
    request: Pico  # per request
    cache_write_1h: _Rate | None = None  # 1-hour cache writes, where the model prices them apart
    web_search: Pico = 0  # per web search (Anthropic's and OpenAI's server-side search tool)

    def cost_pico(
        self,
        inp: int,
        out: int,
        reasoning: int,
        cache_read: int,
        cache_write: int,
        cache_write_1h: int = 0,
        web_searches: int = 0,
    ) -> Pico:
        """`cache_write_1h` is the part of `cache_write` written for an hour."""
        total_input = inp + cache_read + cache_write
        # Cached tokens without a price of their own are input tokens, and 1-hour writes without
        # one are cache writes (the library's decomposition).
        hour_writes = min(cache_write_1h, cache_write) if self.cache_write_1h is not None else 0
        other_writes = cache_write - hour_writes
        in_tokens = inp + (0 if self.cache_read else cache_read) + (0 if self.cache_write else other_writes)
        out_tokens = out + (0 if self.reasoning else reasoning)
        pico = self.request + self.web_search * web_searches
        for rate, n in (
            (self.input, in_tokens),
            (self.output, out_tokens),
            (self.cache_read, cache_read),
            (self.cache_write, other_writes),
            (self.cache_write_1h, hour_writes),
            (self.reasoning, reasoning),
        ):
            if rate is not None and n:
                pico += rate.at(total_input) * n
        return pico


def _pico(value: Decimal, per: int) -> Pico:
    """$ per `per` units -> pico-dollars per unit: an int for every sane price, an exact Fraction for
    the few the table stores with float noise (0.18000000000000002)."""
    scaled = Fraction(value) * 10**12 / per
    return int(scaled) if scaled.denominator == 1 else scaled


def _rate(price: Any) -> _Rate | None:
    if price is None:
        return None
    if isinstance(price, Decimal):
        return _Rate(_pico(price, MICRO))
    return _Rate(
        _pico(price.base, MICRO),
        tuple((int(t.start), _pico(t.price, MICRO)) for t in sorted(price.tiers, key=lambda t: t.start)),
    )


def _rates(model_price: Any) -> _Rates:
    values = {k: getattr(model_price, k, None) for k in (*_TOKEN_KEYS, _REQUEST_KEY, _WEB_SEARCH_KEY)}
    return _Rates(
        input=_rate(values["input_mtok"]),
        output=_rate(values["output_mtok"]),
        cache_read=_rate(values["cache_read_mtok"]),
        cache_write=_rate(values["cache_write_mtok"]),
        reasoning=_rate(values["output_reasoning_mtok"]),
        request=_per_use(values[_REQUEST_KEY]),
        cache_write_1h=_rate(values["cache_write_1h_mtok"]),
        web_search=_per_use(values[_WEB_SEARCH_KEY]),
    )


def _per_use(price_per_thousand: Any) -> Pico:
    """A price per thousand uses (requests, web searches) -> pico-dollars per use; 0 when none."""
    return _pico(price_per_thousand, 1000) if isinstance(price_per_thousand, Decimal) else 0


def _pico_json(p: Pico) -> int | str:
    return p if isinstance(p, int) else f"{p.numerator}/{p.denominator}"


def _pico_from_json(v: int | str) -> Pico:
    return v if isinstance(v, int) else Fraction(v)


def _rate_json(r: _Rate | None) -> Any:
    return None if r is None else [_pico_json(r.base), [[start, _pico_json(p)] for start, p in r.tiers]]


def _rate_from_json(v: Any) -> _Rate | None:
    return None if v is None else _Rate(_pico_from_json(v[0]), tuple((int(a), _pico_from_json(b)) for a, b in v[1]))


# Stored in state.db's price_cache and the shared periods file.  Prices stored before 1-hour writes
# (or web searches) had a field lack "cache_write_1h" ("web_search"): reading them raises KeyError,
# and the table decides again.
_RATE_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning", "cache_write_1h")
_UNIT_FIELDS = ("request", "web_search")  # a price per use, not per token


def rates_to_json(rates: _Rates) -> dict[str, Any]:
    out = {f: _rate_json(getattr(rates, f)) for f in _RATE_FIELDS}
    out.update((f, _pico_json(getattr(rates, f))) for f in _UNIT_FIELDS)
    return out


def rates_from_json(d: dict[str, Any]) -> _Rates:
    rates = {f: _rate_from_json(d[f]) for f in _RATE_FIELDS}
    return _Rates(**rates, request=_pico_from_json(d["request"]), web_search=_pico_from_json(d["web_search"]))


def micro_from_pico(pico: Pico) -> int:
    """Round to whole micro-dollars, half to even (the rounding a sum of many messages drifts least with)."""
    if not isinstance(pico, int):
        return round(pico / PICO_PER_MICRO)
    q, r = divmod(pico, PICO_PER_MICRO)
    if r * 2 > PICO_PER_MICRO or (r * 2 == PICO_PER_MICRO and q % 2):
        q += 1
    return q


def dollars_to_micro(cost: float) -> int:
    return int(Decimal(repr(float(cost))).scaleb(6).to_integral_value(ROUND_HALF_EVEN))


def micro_to_dollars(micro: int | None) -> float | None:
    return None if micro is None else micro / MICRO


def billed_by_plan(reported: float | None, tokens: tuple[int, int, int, int, int]) -> bool:
    """A reported 0 for tokens used: billed by seat or plan, priced at the model maker's list price
    whatever reseller served it."""
    return reported is not None and reported <= 0 and any(tokens)


_priced_cache: dict[tuple[int | None, str, str | None], Priced] = {}


def priced(
    micro: int | None, reported: float | None, tokens: tuple[int, int, int, int, int], identity: str | None
) -> Priced:
    source = cost_source(reported, any(tokens), micro is not None)
    key = (micro, source, identity)
    # Shared, immutable results: building one cost ~4 us, most of pricing a message at ingest.
    found = _priced_cache.get(key)
    if found is None:
        if len(_priced_cache) > 65536:
            _priced_cache.clear()
        found = _priced_cache[key] = Priced(micro, source, identity if micro is not None else None)
    return found


def cost_source(reported: float | None, tokens_used: bool, list_known: bool) -> str:
    """Which figure a message's cost is (see the module docstring)."""
    if reported is None:
        return "estimated" if list_known else "unknown"
    if reported > 0 or not tokens_used:
        return "reported"
    return "subscription" if list_known else "unknown"


class PriceTable:
    """One genai-prices snapshot, with per-(provider, model) lookups cached.

    `snapshot` is the library's DataSnapshot; `identity` names it in every estimate."""

    def __init__(self, snapshot: Any, identity: str) -> None:
        self.snapshot = snapshot
        self.identity = identity
        self._models: dict[tuple[str, str, bool], Any] = {}  # -> ModelInfo | None
        self._rates: dict[int, tuple[Any, _Rates | None]] = {}  # id(ModelPrice) -> (it, rates)
        self._fixed: dict[tuple[str, str, bool, str | None], _Rates | None] = {}  # one price for all time
        # a fast-mode request's prices: the variant's over the standard ones, per period (None: by time of day)
        self._variant_periods: dict[tuple[str, str, bool, str | None], _Periods | None] = {}

    def _find(self, provider: str, model: str, maker_only: bool) -> Any:
        key = (provider, model, maker_only)
        if key in self._models:
            return self._models[key]
        found = None
        if provider.lower() in LOCAL_PROVIDERS:
            self._models[key] = None  # runs on this machine: no list price (the table's prefix match
            return None  # gave ollama's deepseek-r1:7b the DeepSeek API's price)
        refs = [model] + ([model.rsplit("/", 1)[1]] if "/" in model else [])
        # The provider's own price, then the model's maker, found from the model name.  For a plan
        # (maker_only) the provider counts only where it charges: GitHub Copilot's entries are $0
        # (a plan is no list price: the maker's is), while Z.ai's coding plan and a ChatGPT login
        # are the makers themselves (their price was `unknown`, or another company's).
        for pid in (PROVIDER_ALIASES.get(provider.lower(), provider), None):
            for ref in refs:
                try:
                    found = self.snapshot.find_provider_model(ref, None, pid, None)[1]
                except LookupError:
                    continue
                break
            if found is not None and (pid is None or not maker_only or self._charges(found)):
                break
            found = None
        self._models[key] = found
        return found

    def _charges(self, model_info: Any) -> bool:
        """Whether any price of the model (any period) asks for money per token or request."""
        prices = model_info.prices
        for price in [c.prices for c in prices] if isinstance(prices, list) else [prices]:
            rates = self._rates_of(price)
            if rates is not None and (
                rates.request
                or rates.web_search
                or any(
                    r is not None and (r.base or any(t for _, t in r.tiers))
                    for r in (getattr(rates, f) for f in _RATE_FIELDS)
                )
            ):
                return True
        return False

    def _rates_of(self, model_price: Any) -> _Rates | None:
        hit = self._rates.get(id(model_price))
        if hit is not None and hit[0] is model_price:
            return hit[1]
        rates = _rates_or_none(model_price)
        self._rates[id(model_price)] = (model_price, rates)
        return rates

    def rates(
        self, provider: str, model: str, time_ms: int | None, maker_only: bool = False, speed: str | None = None
    ) -> _Rates | None:
        key = (provider, model, maker_only, speed)
        if key in self._fixed:
            return self._fixed[key]
        info = self._find(provider, model, maker_only)
        if info is None:
            self._fixed[key] = None
            return None
        when = _dt.datetime.fromtimestamp((time_ms or 0) / 1000, tz=_dt.timezone.utc)
        if _variants_for(info, speed):  # fast mode: the standard prices, with the variant's over them
            if key not in self._variant_periods:
                self._variant_periods[key] = periods_of(info, self, speed)
            periods = self._variant_periods[key]
            return (
                periods.at(time_ms) if periods is not None else _rates_or_none(info.get_prices(when, _context(speed)))
            )
        prices = info.prices
        if not isinstance(prices, list):  # one price for all time: cache by the key alone
            rates = self._fixed[key] = self._rates_of(prices)
            return rates
        # Prices that changed over time: the one in force when the message was sent.
        return self._rates_of(info.get_prices(when))

    def list_cost_micro(
        self,
        provider: str | None,
        model: str | None,
        tokens: tuple[int, int, int, int, int],
        time_ms: int | None,
        maker_only: bool = False,
        cache_write_1h: int = 0,
        web_searches: int = 0,
        speed: str | None = None,
    ) -> int | None:
        if not model:
            return None
        rates = self.rates(provider or "", model, time_ms, maker_only, speed)
        return None if rates is None else micro_from_pico(rates.cost_pico(*tokens, cache_write_1h, web_searches))

    def price(
        self,
        provider: str | None,
        model: str | None,
        tokens: tuple[int, int, int, int, int],
        time_ms: int | None,
        reported: float | None,
        cache_write_1h: int = 0,
        web_searches: int = 0,
        speed: str | None = None,
    ) -> Priced:
        """A message's list price and cost source.  `tokens` is (input, output, reasoning, cache_read,
        cache_write) the OpenCode way, `cache_write_1h` the part of cache_write written for an hour,
        `speed` FAST for a fast-mode request (else None); `reported` is None when the agent reported
        no cost."""
        maker_only = billed_by_plan(reported, tokens)
        micro = self.list_cost_micro(
            provider, model, tokens, time_ms, maker_only, cache_write_1h, web_searches, _speed(speed)
        )
        return priced(micro, reported, tokens, self.identity)


def _speed(speed: str | None) -> str | None:
    """FAST, or None for every other value (standard): the only variant a message's price takes."""
    return FAST if speed == FAST else None


def _context(speed: str | None) -> dict[str, str] | None:
    return {"speed": speed} if speed else None


def _variants_for(info: Any, speed: str | None) -> list[Any]:
    """The model's price variants a request at `speed` takes (genai-prices' PriceVariant.when)."""
    context = _context(speed)
    if not context:
        return []
    return [
        v for v in getattr(info, "price_variants", None) or () if all(context.get(k) == x for k, x in v.when.items())
    ]


def _rates_or_none(model_price: Any) -> _Rates | None:
    try:
        return _rates(model_price)
    except (ValueError, AttributeError, TypeError):
        return None  # a price shape this code does not know: unknown, never a guess


@dataclass(frozen=True)
class _Periods:
    """A model's prices over time: (start in ms or None, rates); the last one started wins, else the first.
    (genai-prices' rule for its StartDateConstraint prices, evaluated without the library.)"""

    periods: tuple[tuple[int | None, _Rates | None], ...]

    def at(self, time_ms: int | None) -> _Rates | None:
        t = int(time_ms or 0)
        for start, rates in reversed(self.periods):
            if start is None or t >= start:
                return rates
        return self.periods[0][1]


_NOT_IN_TABLE = _Periods(((None, None),))


def periods_of(info: Any, table: PriceTable, speed: str | None = None) -> _Periods | None:
    """A model's prices as storable periods; None when they depend on more than the date (off-peak hours)."""
    if info is None:
        return _NOT_IN_TABLE
    variants = _variants_for(info, speed)
    if variants:
        return _variant_periods(info, variants, speed)
    if not isinstance(info.prices, list):
        return _Periods(((None, table._rates_of(info.prices)),))
    periods: list[tuple[int | None, _Rates | None]] = []
    for conditional in info.prices:
        constraint = conditional.constraint
        if constraint is None:
            periods.append((None, table._rates_of(conditional.prices)))
            continue
        start = _start_ms(constraint)
        if start is None:
            return None
        periods.append((start, table._rates_of(conditional.prices)))
    return _Periods(tuple(periods))


def _start_ms(constraint: Any) -> int | None:
    """A price's start (midnight UTC of its start date) in ms; None for any other constraint."""
    start = getattr(constraint, "start_date", None)
    if not isinstance(start, _dt.date) or hasattr(constraint, "start_time"):
        return None
    return int(_dt.datetime(start.year, start.month, start.day, tzinfo=_dt.timezone.utc).timestamp() * 1000)


def _variant_periods(info: Any, variants: list[Any], speed: str | None) -> _Periods | None:
    """The prices of a request at `speed`, as periods: the library's own get_prices(when, context)
    at each date any of the model's prices or these variants starts (and before all of them), so
    each period holds exactly what the library resolves within it."""
    constraints = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
    constraints += [v.constraint for v in variants]
    starts: set[int] = set()
    for constraint in constraints:
        if constraint is not None:
            start = _start_ms(constraint)
            if start is None:
                return None
            starts.add(start)
    context = _context(speed)

    def at(ms: int) -> _Rates | None:
        return _rates_or_none(info.get_prices(_dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc), context))

    return _Periods(((None, at(0)), *((start, at(start)) for start in sorted(starts))))


def periods_to_json(p: _Periods) -> str:
    return json.dumps([[start, None if r is None else rates_to_json(r)] for start, r in p.periods])


def periods_from_json(text: str) -> _Periods:
    return _Periods(tuple((start, None if r is None else rates_from_json(r)) for start, r in json.loads(text)))


class Pricer:
    """Prices messages during ingest without importing genai-prices in the common case.

    A model's resolved prices are kept in state.db (`price_cache`, keyed by the table's identity), so
    a flusher run that meets only models seen before never imports the library (~0.3-1 s of CPU after
    every commit otherwise).  The table's identity comes from package metadata and the fetched file's
    metadata, both cheap to read; a new model or a new table loads the library once per run."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.identity = current_identity()
        self._table: PriceTable | NoTable | None = None
        self._periods: dict[tuple[str, str, bool, str | None], _Periods | None] = {}
        # SHARED_PERIODS_NAME's periods and the identity they were read for, read when first needed
        self._shared: tuple[str, dict[str, Any]] | None = None

    @property
    def table(self) -> PriceTable | NoTable:
        if self._table is None:
            self._table = load_table()
            if self._table.identity != self.identity:  # the fetched file was unreadable: bundled prices
                self.identity = self._table.identity
        return self._table

    def _lookup(self, provider: str, model: str, maker_only: bool, speed: str | None) -> _Periods | None:
        key = (provider, model, maker_only, speed)
        if key in self._periods:
            return self._periods[key]
        found: _Periods | None = None
        code = lookup_code(maker_only, speed)
        if self.identity is not None:
            cached = statedb.cached_price_periods(self.conn, self.identity, provider, model, code)
            if cached is not None:
                found = _stored_periods(cached)
        if found is None and self.identity is not None:
            shared = self._shared_periods(self.identity).get(_shared_key(provider, model, code))
            if isinstance(shared, str):
                found = _stored_periods(shared)
                if found is not None:
                    statedb.cache_price_periods(self.conn, self.identity, provider, model, code, shared)
        if found is None:
            table = self.table
            if isinstance(table, PriceTable):
                found = periods_of(table._find(provider, model, maker_only), table, speed)
                if found is not None:
                    text = periods_to_json(found)
                    statedb.cache_price_periods(self.conn, table.identity, provider, model, code, text)
                    _share_periods(table.identity, _shared_key(provider, model, code), text)
        self._periods[key] = found
        return found

    def _shared_periods(self, identity: str) -> dict[str, Any]:
        """The shared periods of `identity`: read again when the identity changed during the run (a
        fetched table found unreadable, the bundled one used), never another table's."""
        if self._shared is None or self._shared[0] != identity:
            self._shared = (identity, _read_shared_periods(identity))
        return self._shared[1]

    def price(
        self,
        provider: str | None,
        model: str | None,
        tokens: tuple[int, int, int, int, int],
        time_ms: int | None,
        reported: float | None,
        cache_write_1h: int = 0,
        web_searches: int = 0,
        speed: str | None = None,
    ) -> Priced:
        """PriceTable.price, from the resolved prices kept in state.db when it can."""
        maker_only, speed = billed_by_plan(reported, tokens), _speed(speed)
        micro: int | None = None
        if model:
            periods = self._lookup(provider or "", model, maker_only, speed)
            if periods is None:  # prices by time of day: the library decides, per message
                table = self.table
                if isinstance(table, PriceTable):
                    micro = table.list_cost_micro(
                        provider, model, tokens, time_ms, maker_only, cache_write_1h, web_searches, speed
                    )
            else:
                rates = periods.at(time_ms)
                micro = (
                    None if rates is None else micro_from_pico(rates.cost_pico(*tokens, cache_write_1h, web_searches))
                )
        return priced(micro, reported, tokens, self.identity)


def _stored_periods(text: str) -> _Periods | None:
    """Periods kept in state.db or the shared file; None when they cannot be read (damaged, or
    kept by an older version, before 1-hour writes): the table decides, and they are written again."""
    try:
        return periods_from_json(text)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def lookup_code(maker_only: bool, speed: str | None = None) -> int:
    """How a model's prices were looked up, in the caches' keys: 0 the provider's own, then the
    maker's; 2 for a plan, the provider's where it charges, then the maker's; plus 4 for a
    fast-mode request's prices.  (1, a plan's maker from the model name alone, was the rule before:
    its cached answers are not reused.)"""
    return (2 if maker_only else 0) + (4 if speed == FAST else 0)


def _shared_key(provider: str, model: str, code: int) -> str:
    return f"{code}\t{provider}\t{model}"


def _read_shared_periods(identity: str) -> dict[str, Any]:
    """The shared periods for `identity` ({} when the file is missing, damaged or of another table)."""
    try:
        data = json.loads((prices_dir() / SHARED_PERIODS_NAME).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("identity") != identity or not isinstance(data.get("periods"), dict):
        return {}
    return data["periods"]  # type: ignore[no-any-return]


def _share_periods(identity: str, key: str, periods: str) -> None:
    """Add one model's periods to the shared file (replaced whole, atomically; one of two writers at
    the same moment may lose its entry: it is a cache, written again by the next run that misses)."""
    periods_by_key = _read_shared_periods(identity)
    periods_by_key[key] = periods
    folder = prices_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{SHARED_PERIODS_NAME}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"identity": identity, "periods": periods_by_key}, sort_keys=True), encoding="utf-8")
        os.replace(tmp, folder / SHARED_PERIODS_NAME)
    except OSError:
        pass  # a read-only cache folder: each repository's state.db still keeps its own


class NoTable:
    """Stands in when genai-prices is not installed (Python < 3.11): every list price is unknown."""

    identity = None

    def price(
        self,
        provider: str | None,
        model: str | None,
        tokens: tuple[int, int, int, int, int],
        time_ms: int | None,
        reported: float | None,
        cache_write_1h: int = 0,
        web_searches: int = 0,
        speed: str | None = None,
    ) -> Priced:
        return priced(None, reported, tokens, None)


# --- which snapshot ----------------------------------------------------------------------------


def prices_dir() -> Path:
    """Where `periscope prices --update` keeps the fetched table (per user, shared by repositories)."""
    return paths._xdg("XDG_CACHE_HOME", ".cache") / "periscope" / "prices"


def library_version() -> str | None:
    """genai-prices' installed version, read from its dist-info directory's name: importing
    importlib.metadata alone costs more than a whole warm flusher run's pricing."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("genai_prices")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    site = os.path.dirname(os.path.dirname(spec.origin))
    try:
        names = os.listdir(site)
    except OSError:
        names = []
    for name in names:
        if name.startswith("genai_prices-") and name.endswith(".dist-info"):
            return name[len("genai_prices-") : -len(".dist-info")]
    try:  # an unusual layout (an egg, a zip): ask the metadata API
        from importlib.metadata import version

        return version("genai-prices")
    except Exception:
        return None


def fetched_meta() -> dict[str, Any] | None:
    """What `prices --update` saved: {"fetched": RFC 3339, "sha256": ..., "url": ...}, or None."""
    try:
        meta = json.loads((prices_dir() / FETCHED_META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not (prices_dir() / FETCHED_NAME).is_file():
        return None
    return meta


def _identity(version: str, meta: dict[str, Any] | None) -> str:
    if meta is None:
        return f"genai-prices {version} bundled"
    return f"genai-prices {version} fetched {meta.get('fetched', '?')} sha256:{str(meta.get('sha256', ''))[:12]}"


def current_identity() -> str | None:
    """The identity load_table() will give, from metadata only (no genai-prices import)."""
    version = library_version()
    return None if version is None else _identity(version, fetched_meta())


def load_table() -> PriceTable | NoTable:
    """The table in use: the one `prices --update` fetched if any (and readable), else the bundled one."""
    version = library_version()
    if version is None:
        return NoTable()
    try:
        from genai_prices import data_snapshot
    except Exception:  # an incompatible install: unknown prices, never a failed ingest
        return NoTable()
    meta = fetched_meta()
    if meta is not None:
        try:
            raw = (prices_dir() / FETCHED_NAME).read_bytes()
            return PriceTable(_snapshot_from_raw(raw, data_snapshot), _identity(version, meta))
        except Exception:
            pass  # a damaged or incompatible fetched file: the bundled snapshot still works
    return PriceTable(data_snapshot.get_snapshot(), _identity(version, None))


def _snapshot_from_raw(raw: bytes, data_snapshot: Any) -> Any:
    from genai_prices.types import _providers_from_raw  # the loader genai-prices' own updater uses

    payload = json.loads(raw)
    if not isinstance(payload, list):
        raise ValueError("expected a list of providers")
    return data_snapshot.DataSnapshot(_providers_from_raw(payload), from_auto_update=False)


def newest_price_date(snapshot: Any) -> str | None:
    """The newest dated price change in effect today (a lower bound of the data's age; the table
    also holds announced future changes, which say nothing about its age)."""
    today = _dt.datetime.now(_dt.timezone.utc).date()
    newest: _dt.date | None = None
    for provider in snapshot.providers:
        for model in provider.models:
            if isinstance(model.prices, list):
                for conditional in model.prices:
                    start = getattr(conditional.constraint, "start_date", None)
                    if isinstance(start, _dt.datetime):
                        start = start.date()
                    if isinstance(start, _dt.date) and start <= today and (newest is None or start > newest):
                        newest = start
    return newest.isoformat() if newest else None


def fetch_update(url: str | None = None, timeout: float = 10.0) -> str:
    """Fetch fresh prices, check they load, and keep them for every later ingest; returns the identity.

    Raises OSError (network) or ValueError (not a price table) with a one-line message."""
    import httpx

    from periscope_hooks.config import check_url

    if url is None and os.environ.get("PERISCOPE_PRICES_URL"):
        url = os.environ["PERISCOPE_PRICES_URL"]
        check_url(  # no credentials, HTTPS
            url, "the price table's URL", "$PERISCOPE_PRICES_URL", credentials_go="the price table is public"
        )
    url = url or UPDATE_URL

    def every_hop_checked(request: httpx.Request) -> None:
        # Redirects are followed (a mirror may move), each to HTTPS or loopback only: a loopback
        # URL answering 302 to http://elsewhere was followed in the clear.
        check_url(str(request.url), "a redirect of the price table's URL", "the server's answer")

    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0),
            follow_redirects=True,
            event_hooks={"request": [every_hop_checked]},
        ) as client:
            response = client.get(url)
        response.raise_for_status()
    except httpx.HTTPStatusError as e:  # its text repeats the URL and adds a second line
        raise OSError(f"could not fetch prices from {httpx.URL(url).host}: HTTP {e.response.status_code}") from None
    except httpx.HTTPError as e:
        why = str(e).splitlines()[0] if str(e) else ""
        raise OSError(f"could not fetch prices from {httpx.URL(url).host}: {type(e).__name__}: {why}") from None
    raw = response.content
    from genai_prices import data_snapshot

    try:
        _snapshot_from_raw(raw, data_snapshot)
    except Exception as e:
        raise ValueError(f"{url} did not return a price table genai-prices can load ({type(e).__name__})") from None
    directory = prices_dir()
    directory.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    import hashlib

    meta = {"fetched": now, "sha256": hashlib.sha256(raw).hexdigest(), "url": url}
    for name, data in ((FETCHED_NAME, raw), (FETCHED_META_NAME, json.dumps(meta).encode())):
        tmp = directory / f"{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)
    return _identity(library_version() or "?", meta)
