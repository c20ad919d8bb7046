"""A deterministic world of cardholders and merchants, and the card transactions it produces.

All randomness comes from ``random.Random`` instances seeded from the caller's seed, and "now" is the
caller's ``start``: the same inputs give byte-identical events. Fraud is injected as named scenarios,
so every event has ground truth.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate

from common.errors import ConfigError
from common.events import (
    CHANNELS,
    MAX_AMOUNT_MINOR,
    MAX_EVENT_AGE,
    MAX_EVENT_LEAD,
    SCHEMA_VERSION,
    CardTransaction,
)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US
DAY_US = 24 * HOUR_US
DEFAULT_DAYS = 7
DEFAULT_FRAUD_RATE = 0.01

# Where cardholders live: country -> UTC offset in hours (rough, DST ignored) for the daily cycle.
HOME_COUNTRIES = {
    "US": -5, "CA": -5, "MX": -6, "BR": -3, "GB": 0, "IE": 0, "DE": 1, "FR": 1, "ES": 1, "IT": 1,
    "NL": 1, "SE": 1, "PL": 1, "ZA": 2, "IN": 5, "SG": 8, "JP": 9, "AU": 10,
}
# Where stolen card data gets spent: foreign to every home country.
RISKY_COUNTRIES = ("NG", "RU", "RO", "CN", "HK")
COUNTRY_CURRENCY = {
    "AT": "EUR", "AU": "AUD", "BE": "EUR", "BR": "BRL", "CA": "CAD", "CH": "CHF", "CN": "CNY", "DE": "EUR",
    "DK": "DKK", "ES": "EUR", "FI": "EUR", "FR": "EUR", "GB": "GBP", "HK": "HKD", "IE": "EUR", "IN": "INR",
    "IT": "EUR", "JP": "JPY", "MX": "MXN", "NL": "EUR", "NO": "NOK", "NZ": "NZD", "PL": "PLN", "PT": "EUR",
    "SE": "SEK", "SG": "SGD", "US": "USD", "ZA": "ZAR",
}
# Minor units per US cent, roughly, so an amount looks plausible in whatever currency it is charged.
CURRENCY_SCALE = {
    "AUD": 1.5, "BRL": 5.0, "CAD": 1.35, "CHF": 0.9, "CNY": 7.2, "DKK": 6.9, "EUR": 0.92, "GBP": 0.79,
    "HKD": 7.8, "INR": 83.0, "JPY": 1.5, "MXN": 17.0, "NOK": 10.5, "NZD": 1.6, "PLN": 4.0, "SEK": 10.5,
    "SGD": 1.35, "USD": 1.0, "ZAR": 18.0,
}
# Relative activity per local hour 0..23: quiet nights, a lunch bump, a busy early evening.
HOURLY_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 7, 9, 10, 11, 13, 14, 12, 11, 11, 12, 13, 14, 13, 11, 8, 5, 3)
_HOURS = tuple(range(24))
_HOURLY_CUM = tuple(accumulate(HOURLY_WEIGHTS))
CARD_PRESENT_CHANNELS = frozenset({"card_present", "contactless", "atm"})
REMOTE_CHANNELS = frozenset({"ecommerce", "moto"})


@dataclass(frozen=True, slots=True)
class Category:
    mcc: str
    names: tuple[str, ...]
    where: str   # "store" (card present, in its country), "online" (ecommerce/moto) or "atm"
    risk: str    # "low" | "medium" | "high"


# Some names carry apostrophes, quotes, ampersands and non-ASCII letters on purpose: legal text that
# naive quoting downstream would break.
STORE_CATEGORIES = (
    Category("5411", ("Fresh Market", "Corner Grocer", "Green Basket"), "store", "low"),
    Category("5812", ("Trattoria Bella", "The Golden Spoon", "O'Malley's Pub"), "store", "low"),
    Category("5541", ("QuickFuel", "Highway Petrol"), "store", "low"),
    Category("5912", ("Müller Drogerie", "City Pharmacy"), "store", "low"),
    Category("5311", ("Grand Department Store", 'Smith & Sons "General"'), "store", "low"),
    Category("4121", ("Metro Taxi", "Café Zürich Cabs"), "store", "low"),
    Category("5944", ("Lumière Jewellers",), "store", "medium"),
    Category("5732", ("Volt Electronics",), "store", "medium"),
)
ATM_CATEGORY = Category("6011", ("Cash Point ATM",), "atm", "low")
ONLINE_CATEGORIES = (
    Category("5942", ("PageTurner Books",), "online", "low"),
    Category("4899", ("StreamFlix", "TuneBox"), "online", "low"),
    Category("5999", ("MegaMarket Online",), "online", "medium"),
    Category("4511", ("SkyHop Airlines",), "online", "medium"),
    Category("7011", ("StayWell Hotels",), "online", "low"),
    Category("5732", ("Gadget Warehouse",), "online", "medium"),
)
RISKY_CATEGORIES = (
    Category("7995", ("LuckyStrike Bets", "Royal Casino Online"), "online", "high"),
    Category("6051", ("CoinSwap Exchange",), "online", "high"),
    Category("5967", ("Miracle Deals Direct",), "online", "high"),
    Category("4829", ("QuickWire Transfers",), "online", "high"),
)
LARGE_TICKET_MCCS = frozenset({"5944", "5732", "4511"})


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str
    name: str
    mcc: str
    country: str
    risk: str
    where: str


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    home_country: str
    cards: tuple[str, ...]
    spend_cents: tuple[int, int]           # typical amount range, in US cents
    stores: tuple[Merchant, ...]           # favourite shops in the home country
    online: tuple[Merchant, ...]           # favourite web shops
    channel_cum_weights: tuple[int, ...]   # cumulative weights over CHANNELS
    activity: int                          # relative number of transactions
    device_id: str
    ip_address: str


@dataclass(frozen=True)
class World:
    seed: int
    start: datetime
    days: int
    accounts: tuple[Account, ...]
    merchants: tuple[Merchant, ...]
    stores: dict[str, tuple[Merchant, ...]]   # home country -> its shops
    atms: dict[str, Merchant]
    online: tuple[Merchant, ...]
    risky: tuple[Merchant, ...]
    activity_cum: tuple[int, ...]
    start_us: int   # start and length of the window in epoch microseconds: the hot loop's arithmetic
    span_us: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class Truth:
    is_fraud: bool
    scenario: str | None


@dataclass(frozen=True)
class Generated:
    events: tuple[CardTransaction, ...]
    truth: dict[str, Truth]   # event_id -> ground truth


@dataclass(frozen=True, slots=True)
class Draft:
    """An event before it has an id: drafts are sorted by time, then numbered."""

    at_us: int
    account: Account
    card_id: str
    merchant: Merchant
    amount_cents: int
    channel: str
    scenario: str | None
    device_id: str | None
    ip_address: str | None


# --- the world -------------------------------------------------------------------------------------


def build_world(seed: int, *, start: datetime, accounts: int = 200, days: int = DEFAULT_DAYS) -> World:
    """Merchants in every home country plus web and risky merchants abroad, and ``accounts`` cardholders."""
    _assert_world_args(seed, start, accounts, days)
    rng = random.Random(f"ledgerlane-world-{seed}")
    merchants = _build_merchants()
    stores = {c: tuple(m for m in merchants if m.country == c and m.where == "store") for c in HOME_COUNTRIES}
    atms = {m.country: m for m in merchants if m.where == "atm"}
    online = tuple(m for m in merchants if m.where == "online" and m.risk != "high")
    risky = tuple(m for m in merchants if m.risk == "high")
    people = tuple(_build_account(rng, seed, n, stores, online) for n in range(accounts))
    return World(
        seed=seed, start=start, days=days, accounts=people, merchants=merchants, stores=stores, atms=atms,
        online=online, risky=risky, activity_cum=tuple(accumulate(a.activity for a in people)),
        start_us=(start - EPOCH) // timedelta(microseconds=1), span_us=days * DAY_US,
    )


def _assert_world_args(seed: int, start: datetime, accounts: int, days: int) -> None:
    if seed < 0:
        raise ConfigError(f"simulator seed must be >= 0, found {seed}")
    if start.tzinfo is None:
        raise ConfigError(f"simulator start must carry a UTC offset, found {start.isoformat()}")
    if accounts < 1 or days < 1:
        raise ConfigError(f"simulator needs >= 1 account and >= 1 day, found {accounts} accounts, {days} days")


def _build_merchants() -> tuple[Merchant, ...]:
    """The catalogue is the same for every seed: merchants are the stage, the seed picks the people."""
    places: list[tuple[Category, str, str]] = []
    for country in HOME_COUNTRIES:
        places += [(cat, name, country) for cat in STORE_CATEGORIES for name in cat.names]
        places.append((ATM_CATEGORY, ATM_CATEGORY.names[0], country))
    homes = tuple(HOME_COUNTRIES)
    places += [(cat, name, homes[i % len(homes)]) for i, (cat, name) in enumerate(_named(ONLINE_CATEGORIES))]
    places += [(cat, name, country) for cat, name in _named(RISKY_CATEGORIES) for country in RISKY_COUNTRIES[:2]]
    return tuple(_merchant(n, cat, name, country) for n, (cat, name, country) in enumerate(places))


def _named(categories: tuple[Category, ...]) -> list[tuple[Category, str]]:
    return [(cat, name) for cat in categories for name in cat.names]


def _merchant(n: int, cat: Category, name: str, country: str) -> Merchant:
    label = f"{name} {country}" if cat.where != "online" else name
    return Merchant(f"mer-{country.lower()}-{n:04d}", label, cat.mcc, country, cat.risk, cat.where)


def _build_account(rng: random.Random, seed: int, n: int, stores: dict, online: tuple[Merchant, ...]) -> Account:
    country = rng.choice(tuple(HOME_COUNTRIES))
    low = rng.randint(300, 3000)
    weights = (rng.randint(10, 40), rng.randint(10, 50), rng.randint(5, 40), rng.randint(1, 8), rng.randint(0, 2))
    return Account(
        account_id=f"acc-{seed}-{n:06d}",
        home_country=country,
        cards=tuple(f"crd-{seed}-{n:06d}-{k}" for k in range(1, rng.choice((1, 1, 1, 2, 2, 3)) + 1)),
        spend_cents=(low, low * rng.randint(4, 25)),
        stores=tuple(rng.sample(stores[country], k=5)),
        online=tuple(rng.sample(online, k=3)),
        channel_cum_weights=tuple(accumulate(weights)),
        activity=rng.choice((1, 1, 2, 3, 5, 8)),
        device_id=f"dev-{rng.getrandbits(48):012x}",
        ip_address=_ipv4(rng),
    )


def _ipv4(rng: random.Random) -> str:
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


# --- events ----------------------------------------------------------------------------------------


def generate(world: World, count: int, *, fraud_rate: float = DEFAULT_FRAUD_RATE) -> Generated:
    """``count`` valid events in time order, ids ``evt-<seed>-<n>``, about ``fraud_rate`` of them fraud.

    Holds every event in memory: for tests and small worlds. ``simulator.stream`` gives the same
    events for any count in bounded memory.
    """
    ordered = sorted(drafts_in_rng_order(world, count, fraud_rate=fraud_rate), key=lambda pair: pair[0])
    events = tuple(to_event(event_id_of(world.seed, n), draft) for n, (_, draft) in enumerate(ordered))
    return Generated(events=events, truth={e.event_id: truth_of(d) for e, (_, d) in zip(events, ordered)})


def event_id_of(seed: int, n: int) -> str:
    """The id of the ``n``-th valid event in time order."""
    return f"evt-{seed}-{n:08d}"


def truth_of(draft: Draft) -> Truth:
    return TRUTHS[draft.scenario]


SortKey = tuple[int, int]   # (event time in epoch microseconds, position among the drafts as first made)


def drafts_in_rng_order(world: World, count: int, *, fraud_rate: float = DEFAULT_FRAUD_RATE,
                        ) -> Iterator[tuple[SortKey, Draft]]:
    """Every draft of ``count`` events, one at a time, with the key that puts them in time order.

    Fraud drafts are drawn first, then one account pick per habitual event, then the habitual
    drafts. The picks and the drafts come from two cursors on the same random stream (each pick
    consumes exactly two 32-bit words), so nothing is held back. Ties in time keep habitual drafts
    before fraud drafts, each in the order made: the key's second part.
    """
    if count < 0 or not 0 <= fraud_rate <= 1:
        raise ConfigError(f"need count >= 0 and 0 <= fraud_rate <= 1, found {count} and {fraud_rate}")
    rng = random.Random(f"ledgerlane-events-{world.seed}")
    budget = round(count * fraud_rate)
    habitual = count - budget
    for k, draft in enumerate(_fraud_drafts(rng, world, budget)):
        yield (draft.at_us, habitual + k), draft
    drafting = _advanced(rng, words=2 * habitual)
    for j, account in enumerate(_account_picks(rng, world, habitual)):
        draft = _habitual_draft(drafting, world, account)
        yield (draft.at_us, j), draft


def _advanced(rng: random.Random, *, words: int) -> random.Random:
    """A copy of ``rng`` that has skipped ``words`` 32-bit outputs (``getrandbits(32 * n)`` takes n)."""
    ahead = random.Random()
    ahead.setstate(rng.getstate())
    while words:
        step = min(words, 1 << 16)
        ahead.getrandbits(32 * step)
        words -= step
    return ahead


def _account_picks(rng: random.Random, world: World, count: int, chunk: int = 4096) -> Iterator[Account]:
    """What ``rng.choices(accounts, cum_weights=..., k=count)`` returns, a chunk at a time."""
    while count:
        step = min(count, chunk)
        yield from rng.choices(world.accounts, cum_weights=world.activity_cum, k=step)
        count -= step


def to_event(event_id: str, draft: Draft) -> CardTransaction:
    currency = currency_of(draft.merchant.country)
    return CardTransaction(
        schema_version=SCHEMA_VERSION,
        event_id=event_id,
        account_id=draft.account.account_id,
        card_id=draft.card_id,
        merchant_id=draft.merchant.merchant_id,
        merchant_name=draft.merchant.name,
        mcc=draft.merchant.mcc,
        amount_minor=to_minor(draft.amount_cents, currency),
        currency=currency,
        event_time=EPOCH + timedelta(microseconds=draft.at_us),
        channel=draft.channel,
        country=draft.merchant.country,
        card_present=draft.channel in CARD_PRESENT_CHANNELS,
        device_id=draft.device_id,
        ip_address=draft.ip_address,
    )


def currency_of(country: str) -> str:
    # Countries whose own currency is outside the contract settle in US dollars.
    return COUNTRY_CURRENCY.get(country, "USD")


def to_minor(cents: int, currency: str) -> int:
    return max(1, min(MAX_AMOUNT_MINOR, round(cents * CURRENCY_SCALE[currency])))


def _habitual_draft(rng: random.Random, world: World, account: Account) -> Draft:
    channel = _weighted(rng, CHANNELS, account.channel_cum_weights)
    card = account.cards[0] if len(account.cards) == 1 else rng.choice(account.cards)
    remote = channel == "ecommerce"
    return Draft(
        at_us=_daytime_instant(rng, world, account.home_country),
        account=account, card_id=card, merchant=_habitual_merchant(rng, world, account, channel),
        amount_cents=_habitual_amount(rng, account, channel), channel=channel, scenario=None,
        device_id=account.device_id if remote else None, ip_address=account.ip_address if remote else None,
    )


def _weighted(rng: random.Random, population: tuple, cum_weights: tuple[int, ...]):
    # rng.choices(k=1) does exactly this, at twice the cost in the hot loop.
    return population[bisect(cum_weights, rng.random() * cum_weights[-1])]


def _habitual_merchant(rng: random.Random, world: World, account: Account, channel: str) -> Merchant:
    if channel == "atm":
        return world.atms[account.home_country]
    if channel in REMOTE_CHANNELS:
        return rng.choice(account.online) if rng.random() < 0.8 else rng.choice(world.online)
    home = account.home_country
    return rng.choice(account.stores) if rng.random() < 0.85 else rng.choice(world.stores[home])


def _habitual_amount(rng: random.Random, account: Account, channel: str) -> int:
    if channel == "atm":
        return rng.choice((2000, 5000, 10000, 20000))
    low, high = account.spend_cents
    return int(low * (high / low) ** rng.random())   # log-uniform: many small, few large


def _daytime_instant(rng: random.Random, world: World, country: str) -> int:
    """A moment in the window whose local hour follows HOURLY_WEIGHTS."""
    day = rng.randrange(world.days)
    hour = _weighted(rng, _HOURS, _HOURLY_CUM)
    midnight = world.start_us - world.start_us % DAY_US
    local = midnight + day * DAY_US + hour * HOUR_US + rng.randrange(3_600_000) * 1000
    utc = local - HOME_COUNTRIES[country] * HOUR_US
    # Wrapping by whole days keeps the hour of day while folding the moment into the window.
    return world.start_us + (utc - world.start_us) % world.span_us


# --- fraud scenarios -------------------------------------------------------------------------------


def _fraud_drafts(rng: random.Random, world: World, budget: int) -> Iterator[Draft]:
    made = 0
    # Each scenario once first, the smallest first, so even a small budget holds every kind of fraud.
    guaranteed = iter(("large_amount", "risky_merchant", "card_testing", "compromised_card_burst"))
    while made < budget:
        scenario = next(guaranteed, None) or rng.choices(tuple(SCENARIOS), weights=tuple(SCENARIOS.values()))[0]
        drafts = SCENARIO_BUILDERS[scenario](rng, world)[: budget - made]
        made += len(drafts)
        yield from drafts


def _victim(rng: random.Random, world: World) -> tuple[Account, str, int]:
    account = rng.choice(world.accounts)
    # Scenarios start at least an hour before the window ends so a burst stays inside it.
    return account, rng.choice(account.cards), world.start_us + rng.randrange(world.span_us - HOUR_US)


def _fraud_draft(account: Account, card: str, at_us: int, merchant: Merchant, cents: int, scenario: str,
                 fraudster: tuple[str, str]) -> Draft:
    return Draft(at_us, account, card, merchant, cents, "ecommerce", scenario, fraudster[0], fraudster[1])


def _fraudster(rng: random.Random) -> tuple[str, str]:
    return f"dev-{rng.getrandbits(48):012x}", _ipv4(rng)


def _compromised_card_burst(rng: random.Random, world: World) -> list[Draft]:
    """Stolen card data spent fast: many web purchases abroad within minutes, from a new device."""
    account, card, at = _victim(rng, world)
    who = _fraudster(rng)
    abroad = [m for m in world.online + world.risky if m.country != account.home_country]
    drafts = []
    for _ in range(rng.randint(4, 12)):
        at += rng.randint(20, 240) * SECOND_US
        cents = int(account.spend_cents[1] * rng.uniform(0.5, 3.0))
        drafts.append(_fraud_draft(account, card, at, rng.choice(abroad), cents, "compromised_card_burst", who))
    return drafts


def _card_testing(rng: random.Random, world: World) -> list[Draft]:
    """Tiny charges in quick succession at one web shop to learn whether a stolen card works."""
    account, card, at = _victim(rng, world)
    who, merchant = _fraudster(rng), rng.choice(world.online)
    drafts = []
    for _ in range(rng.randint(5, 15)):
        at += rng.randint(5, 40) * SECOND_US
        drafts.append(_fraud_draft(account, card, at, merchant, rng.randint(50, 199), "card_testing", who))
    return drafts


def _large_amount(rng: random.Random, world: World) -> list[Draft]:
    """One purchase far above what this cardholder ever spends."""
    account, card, at = _victim(rng, world)
    merchant = rng.choice([m for m in world.online if m.mcc in LARGE_TICKET_MCCS])
    cents = int(account.spend_cents[1] * rng.uniform(15, 60))
    return [_fraud_draft(account, card, at, merchant, cents, "large_amount", _fraudster(rng))]


def _risky_merchant(rng: random.Random, world: World) -> list[Draft]:
    """A few charges at high-risk merchants abroad (betting, crypto, wire transfer)."""
    account, card, at = _victim(rng, world)
    who = _fraudster(rng)
    drafts = []
    for _ in range(rng.randint(1, 3)):
        at += rng.randint(60, 900) * SECOND_US
        cents = int(account.spend_cents[1] * rng.uniform(1.0, 4.0))
        drafts.append(_fraud_draft(account, card, at, rng.choice(world.risky), cents, "risky_merchant", who))
    return drafts


# scenario -> relative share of fraud events
SCENARIOS = {"compromised_card_burst": 35, "card_testing": 30, "large_amount": 15, "risky_merchant": 20}
SCENARIO_BUILDERS: dict[str, Callable[[random.Random, World], list[Draft]]] = {
    "compromised_card_burst": _compromised_card_burst,
    "card_testing": _card_testing,
    "large_amount": _large_amount,
    "risky_merchant": _risky_merchant,
}
TRUTHS = {s: Truth(s is not None, s) for s in (None, *SCENARIOS)}


def assert_window_admissible(start: datetime, days: int, now: datetime) -> None:
    """The ingest lane judges event time against broker time (≈ ``now``), so the simulated window must
    lie inside [now - MAX_EVENT_AGE, now + MAX_EVENT_LEAD] or valid events would be quarantined."""
    end = start + timedelta(days=days)
    if start < now - MAX_EVENT_AGE or end > now + MAX_EVENT_LEAD:
        raise ConfigError(
            f"simulated window {start.isoformat()} .. {end.isoformat()} must lie within "
            f"[{(now - MAX_EVENT_AGE).isoformat()}, {(now + MAX_EVENT_LEAD).isoformat()}] (broker time limits)"
        )
