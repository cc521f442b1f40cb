"""Extreme numbers at every parser and header: a clear refusal, never an escaped
``OverflowError`` or ``decimal.InvalidOperation``."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.adapters.hubspot.values import decimal as _decimal
from connector.adapters.hubspot.values import moment as _moment
from connector.config import load_config
from connector.errors import ConnectorError, CrmError
from connector.inputs import read_deals, read_quotas, read_splits
from connector.store.state import Store
from tests.test_cli_calc import CONFIG
from webhooks.signing import Rejected, verify_event_body, verify_hubspot

SECRET = "s3cret"

# Numbers as text the way a file or a header might carry them: huge, tiny, exponents,
# signs, specials and junk.
numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.builds(lambda d, e: f"{d}e{e}", st.integers(-99, 99), st.integers(-(10**6), 10**6)),
    st.sampled_from(["9" * 400, "-" + "9" * 27, "1e999999", "NaN", "Infinity", "0x10", "1_0"]),
    st.text(alphabet="0123456789.-+eE", max_size=60),
)


def _check(call: Callable[[], object]) -> None:
    """Run it: a value, or one of our errors. Anything else escapes and fails the test."""
    with contextlib.suppress(ConnectorError, Rejected):
        call()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=numbers)
def test_calc_files_refuse_or_read_any_number(amount: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        deals = Path(folder) / "deals.csv"
        deals.write_text(f'id,owner_id,amount,close_date,status\nD1,r1,"{amount}",2026-01-10,won\n')
        _check(lambda: read_deals(deals, currency="USD"))
        splits = Path(folder) / "splits.csv"
        splits.write_text(f'deal_id,rep_id,percent\nD1,r1,"{amount}"\n')
        _check(lambda: read_splits(splits))
        quotas = Path(folder) / "quotas.csv"
        quotas.write_text(f'rep_id,start_date,amount\nr1,2026-01-01,"{amount}"\n')
        _check(lambda: read_quotas(quotas))
        config = Path(folder) / "spm.yaml"
        config.write_text(CONFIG.replace("quota: 10000", f"quota: '{amount}'"))
        _check(lambda: load_config(config))


def test_a_27_digit_amount_is_a_clear_error_in_calc(tmp_path: Path) -> None:
    deals = tmp_path / "deals.csv"
    deals.write_text(
        "id,owner_id,amount,close_date,status\nD1,r1," + "9" * 27 + ",2026-01-10,won\n"
    )
    with pytest.raises(ConnectorError) as raised:
        read_deals(deals, currency="USD")
    assert "deals.csv:2: amount:" in str(raised.value)
    assert "beyond any plausible amount" in str(raised.value)


@settings(max_examples=200)
@given(stamp=numbers)
def test_signature_headers_refuse_any_timestamp(stamp: str) -> None:
    body = b"[]"
    source = b"POST" + b"http://h/webhooks/hubspot" + body + stamp.encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), source, hashlib.sha256).digest())
    _check(
        lambda: verify_hubspot(
            secret=SECRET,
            signature=signature.decode(),
            timestamp=stamp,
            method="POST",
            uri="http://h/webhooks/hubspot",
            body=body,
            now_s=1_767_225_600.0,
        )
    )
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    _check(
        lambda: verify_event_body(
            secret=SECRET, header=f"t={stamp},v1={digest}", body=body, now_s=1_767_225_600.0
        )
    )


def test_a_timestamp_of_400_nines_is_refused_not_a_crash() -> None:
    with pytest.raises(Rejected) as raised:
        verify_hubspot(
            secret=SECRET,
            signature="x",
            timestamp="9" * 400,
            method="POST",
            uri="http://h/",
            body=b"[]",
            now_s=1_767_225_600.0,
        )
    assert raised.value.status == 401 and raised.value.reason == "bad_timestamp"


@settings(max_examples=200)
@given(text=numbers)
def test_hubspot_values_refuse_any_number_or_time(text: str) -> None:
    for parse in (_decimal, _moment):
        with contextlib.suppress(CrmError):
            parse(text)


big_ints = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, 10**30, 10**70]),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event_id=big_ints, object_id=big_ints, occurred=big_ints, portal=big_ints)
def test_the_hubspot_endpoint_answers_any_number_without_a_crash(
    tmp_path_factory: pytest.TempPathFactory,
    event_id: int,
    object_id: int,
    occurred: int,
    portal: int,
) -> None:
    from tests.test_webhooks import _app, hubspot_event, post_hubspot

    folder = tmp_path_factory.mktemp("receiver")
    with Store.open(f"sqlite:///{folder / 'spm.db'}") as store:
        client = _app(folder, store, "hubspot").test_client()
        events = [
            hubspot_event(1, 9001),
            hubspot_event(event_id, object_id, occurredAt=occurred, portalId=portal),
        ]
        reply = post_hubspot(client, events)
        assert reply.status_code == 200, reply.json
        valid = (
            all(1 <= n < 2**63 for n in (event_id, object_id, portal))
            and 946_684_800_000 <= occurred < 4_102_444_800_000
        )
        # The valid event beside it is always stored; the other exactly when it is valid.
        assert reply.json["new"] == (2 if valid else 1)
