"""Payment request helpers: the X-Signature scheme of CONTRACT.md section 2."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import requests

_UNSET: Any = object()


def sign(body: bytes, secret: str, t: int | None = None) -> str:
    """X-Signature header value `t=<t>,v1=<hex>` where hex is
    HMAC-SHA256(secret, "<t>." + body); t defaults to now."""
    if t is None:
        t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def encode(payload: Any) -> bytes:
    """Compact JSON bytes, as a provider would send them."""
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_headers(body: bytes, secret: str, t: int | None = None,
                   content_type: str = "application/json") -> dict[str, str]:
    """Content-Type and X-Signature headers for body."""
    return {"Content-Type": content_type, "X-Signature": sign(body, secret, t)}


def payment(order_id: str | None = None, items: list[dict] | None = None,
            payment_id: str | None = None, amount_cents: int = 4599, currency: str = "EUR",
            customer: dict | None = None, email: str | None = _UNSET,
            phone: str | None = None, webhook_url: str | None = None,
            occurred_at: str | None = _UNSET, **extra: Any) -> dict:
    """A valid payment dict (random ids unless given).

    items default to [{"sku": "SKU-RED-MUG", "qty": 1}]; items may also be
    given as ["SKU:QTY", ...]. customer defaults to {"id": "cus_test",
    "email": "ana@example.com"} plus phone/webhook_url when given; pass
    email=None for no email, occurred_at=None to leave it out. Extra keyword
    arguments are added as top-level fields (for unknown-field tests)."""
    if items is None:
        items = [{"sku": "SKU-RED-MUG", "qty": 1}]
    items = [_item(i) for i in items]
    if customer is None:
        customer = {"id": "cus_test"}
        mail = "ana@example.com" if email is _UNSET else email
        if mail is not None:
            customer["email"] = mail
        if phone is not None:
            customer["phone"] = phone
        if webhook_url is not None:
            customer["webhook_url"] = webhook_url
    p: dict[str, Any] = {
        "payment_id": payment_id or f"pay_{uuid.uuid4().hex[:16]}",
        "order_id": order_id or f"ord_{uuid.uuid4().hex[:16]}",
        "amount_cents": amount_cents,
        "currency": currency,
        "items": items,
        "customer": customer,
    }
    if occurred_at is _UNSET:
        occurred_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if occurred_at is not None:
        p["occurred_at"] = occurred_at
    p.update(extra)
    return p


def _item(i: Any) -> dict:
    if isinstance(i, dict):
        return i
    sku, _, qty = str(i).rpartition(":")
    return {"sku": sku, "qty": int(qty)}


def post_payment(base_url: str, payload: Any, secret: str = "test-secret", t: int | None = None,
                 session: requests.Session | None = None, headers: dict | None = None,
                 timeout: float = 30, **kwargs: Any) -> requests.Response:
    """POST a signed payment (dict -> compact JSON, bytes sent as is) to
    base_url + /v1/payments."""
    body = payload if isinstance(payload, bytes) else encode(payload)
    h = signed_headers(body, secret, t)
    if headers:
        h.update(headers)
    http = session or requests
    return http.post(base_url.rstrip("/") + "/v1/payments", data=body, headers=h,
                     timeout=timeout, **kwargs)
