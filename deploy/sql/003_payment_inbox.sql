-- inventory: the idempotency record (inbox) of every payment that got an
-- outcome, keyed by payment_id. content_sha256 is SHA-256 over a canonical
-- form of the payment's fields (payment_id, order_id, amount_cents,
-- currency, items sorted by sku, customer, occurred_at; not event_id nor
-- received_at): the same payment delivered again has the same hash and has
-- no further effect; the same payment_id with another hash is an
-- idempotency_conflict (dead-lettered, nothing stored).
CREATE TABLE payment_inbox (
    payment_id       text        PRIMARY KEY,
    event_id         uuid        NOT NULL,            -- the payment event's id
    order_id         text        NOT NULL,
    content_sha256   bytea       NOT NULL CHECK (octet_length(content_sha256) = 32),
    result           text        NOT NULL CHECK (result IN ('fulfilled', 'compensated')),
    reason           text        CHECK (reason IN ('insufficient_stock', 'unknown_sku',
                                                   'duplicate_payment')),
    outcome_event_id uuid        NOT NULL,            -- ce_id of the outcome event
    source_partition integer,                         -- where the record was read
    source_offset    bigint,
    processed_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((result = 'fulfilled') = (reason IS NULL))
);

COMMENT ON TABLE payment_inbox IS
    'inventory: idempotency record per payment_id with a content hash';
