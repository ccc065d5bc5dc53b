"""The hash chain's building blocks: canonical encoding, the chain hash, signed checkpoints.

These pin encoding version 1 byte for byte: an auditor recomputing hashes without Redline relies
on exactly these rules (see :mod:`redline.store.chain`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redline.events import AgentEvent
from redline.store.chain import (
    GENESIS,
    ChainRow,
    Checkpoint,
    Signer,
    canonical_payload,
    chain_hash,
    verify_rows,
)


def test_canonical_payload_sorts_keys_at_every_depth() -> None:
    """Keys are sorted at the top level and inside nested objects, with no whitespace."""
    event = AgentEvent(
        timestamp=1.5, agent="a", data={"b": 1, "a": {"z": 1, "y": 2}, "B": [{"d": 1, "c": 2}]}
    )
    assert canonical_payload(event) == (
        b'{"agent":"a","data":{"B":[{"c":2,"d":1}],"a":{"y":2,"z":1},"b":1},"timestamp":1.5}'
    )


def test_canonical_payload_sorts_by_code_point_not_utf16() -> None:
    """Keys order by Unicode code point: U+FFFF sorts before U+1F600 (UTF-16 would swap them)."""
    event = AgentEvent(timestamp=1.0, agent="a", data={"\U0001f600": 2, "\uffff": 1, "é": 0})
    payload = canonical_payload(event)
    decoded = json.loads(payload)
    assert list(decoded["data"]) == ["é", "\uffff", "\U0001f600"]


def test_canonical_payload_omits_default_fields() -> None:
    """Only non-default fields are encoded (``event_type="action"``, empty data, None are left out)."""
    assert (
        canonical_payload(AgentEvent(timestamp=2.0, agent="x")) == b'{"agent":"x","timestamp":2.0}'
    )


def test_canonical_payload_keeps_non_ascii_as_utf8() -> None:
    """Non-ASCII text is raw UTF-8, not ``\\u`` escapes; control characters are escaped."""
    event = AgentEvent(timestamp=1.0, agent="é", data={"s": "ü✓\u2028", "c": '\x00"'})
    payload = canonical_payload(event)
    assert "é".encode() in payload
    assert "ü✓\u2028".encode() in payload
    assert b'"\\u0000\\""' in payload
    assert json.loads(payload)["data"]["c"] == '\x00"'


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0.1, b"0.1"),
        (1.0, b"1.0"),
        (100.0, b"100.0"),
        (0.30000000000000004, b"0.30000000000000004"),
        (1e-7, b"1e-7"),
        (1e16, b"1e16"),
        (123456789.125, b"123456789.125"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e308"),
    ],
)
def test_canonical_floats_are_shortest_round_trip(value: float, encoded: bytes) -> None:
    """A float encodes to the fewest digits that round-trip (repr's digits), pinned byte for byte."""
    payload = canonical_payload(AgentEvent(timestamp=1.0, agent="a", cost_usd=value))
    assert b'"cost_usd":' + encoded + b"," in payload
    assert float(encoded) == value
    mantissa = repr(value).split("e")[0].replace("-", "").replace(".", "").strip("0")
    assert encoded.split(b"e")[0].replace(b".", b"").strip(b"0").decode() == mantissa


def test_canonical_payload_is_stable_across_construction_order() -> None:
    """The same event built twice, with data keys inserted in different orders, encodes identically."""
    one = AgentEvent(timestamp=3.25, agent="a", event_type="tool_call", data={"x": 1, "y": [1, 2]})
    two = AgentEvent(data={"y": [1, 2], "x": 1}, event_type="tool_call", agent="a", timestamp=3.25)
    assert canonical_payload(one) == canonical_payload(two)
    decoded = msgspec.json.decode(canonical_payload(one), type=AgentEvent)
    assert canonical_payload(decoded) == canonical_payload(one)


def test_chain_hash_matches_its_definition() -> None:
    """``hash = sha256("redline:v1:" + seq + ":" + prev_hash + ":" + payload_sha256)``, hex."""
    payload = canonical_payload(AgentEvent(timestamp=1.0, agent="a"))
    digest = hashlib.sha256(payload).hexdigest()
    by_hand = hashlib.sha256(f"redline:v1:1:{'0' * 64}:{digest}".encode("ascii")).hexdigest()
    assert chain_hash(1, GENESIS, digest) == by_hand
    assert GENESIS == "0" * 64
    second = hashlib.sha256(f"redline:v1:2:{by_hand}:{digest}".encode("ascii")).hexdigest()
    assert chain_hash(2, by_hand, digest) == second
    assert len(by_hand) == 64
    assert by_hand == by_hand.lower()


def test_verify_rows_accepts_a_chain_built_by_hand() -> None:
    """A chain built with hashlib alone (no Redline code) verifies."""
    rows = []
    prev = "0" * 64
    for seq in range(1, 6):
        payload = json.dumps(
            {"agent": "a", "timestamp": float(seq)}, separators=(",", ":")
        ).encode()
        digest = hashlib.sha256(payload).hexdigest()
        h = hashlib.sha256(f"redline:v1:{seq}:{prev}:{digest}".encode()).hexdigest()
        rows.append(ChainRow(seq, prev, h, digest, payload))
        prev = h
    report = verify_rows(rows)
    assert report.ok
    assert report.checked == 5
    assert report.head_hash == prev


@pytest.fixture
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def test_checkpoint_signature_verifies(signer: Signer) -> None:
    """A freshly signed checkpoint verifies against its own key and against the pinned key."""
    cp = signer.sign("host:1:2", 10, "ab" * 32, 1_700_000_000.25)
    assert cp.valid_signature()
    assert cp.valid_signature(signer.public_key)
    assert cp.message() == f"redline-checkpoint:v1:host:1:2:10:{'ab' * 32}:1700000000.25".encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", "host:1:3"),
        ("seq", 11),
        ("head_hash", "cd" * 32),
        ("created_at", 1_700_000_000.5),
    ],
)
def test_checkpoint_signature_fails_when_a_field_changes(
    signer: Signer, field: str, value: object
) -> None:
    """Changing any signed field of a checkpoint invalidates its signature."""
    cp = signer.sign("host:1:2", 10, "ab" * 32, 1_700_000_000.25)
    changed = msgspec.structs.replace(cp, **{field: value})
    assert not changed.valid_signature()


def test_checkpoint_signature_fails_for_another_key(signer: Signer) -> None:
    """A checkpoint re-signed by another key fails when the real key is pinned."""
    other = Signer(Ed25519PrivateKey.generate())
    forged = other.sign("s", 10, "ab" * 32, 1.0)
    assert forged.valid_signature()  # self-consistent...
    assert not forged.valid_signature(signer.public_key)  # ...but not by the key we trust
    swapped = msgspec.structs.replace(forged, public_key=signer.public_key)
    assert not swapped.valid_signature()


def test_checkpoint_with_garbage_signature_is_invalid(signer: Signer) -> None:
    """A signature that is not hex, or the wrong length, is reported invalid (no exception)."""
    cp = signer.sign("s", 1, "ab" * 32, 1.0)
    assert not msgspec.structs.replace(cp, signature="zz").valid_signature()
    assert not msgspec.structs.replace(cp, signature="00").valid_signature()
    assert not Checkpoint(
        stream="s", seq=1, head_hash="x", created_at=1.0, signature="", public_key="00"
    ).valid_signature()


def test_signer_key_file_is_private_and_reloads(tmp_path: Path) -> None:
    """``Signer.from_file`` creates a 0600 PEM key once and loads the same key afterwards."""
    path = tmp_path / "keys" / "signing.pem"
    first = Signer.from_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert Signer.from_file(path).public_key == first.public_key
