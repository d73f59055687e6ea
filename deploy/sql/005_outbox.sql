-- inventory: the transactional outbox. One row per outcome event, written by
-- inv_reserve_batch() in the same transaction as the decision. It holds the
-- event's fields; the relay renders the record value from them (the same
-- row always renders to the same bytes), publishes rows in id order (key =
-- order_id, so per-order order is kept) with the idempotent producer and
-- deletes them after a successful delivery report. A crash between the
-- delivery and the delete publishes the row again, with the same ce_id and
-- the same value.
CREATE TABLE outbox (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         text        NOT NULL,   -- also the record key
    topic            text        NOT NULL,   -- full topic name (with OF_TOPIC_PREFIX)
    ce_id            uuid        NOT NULL,   -- = the event's event_id
    ce_type          text        NOT NULL CHECK (ce_type IN ('order.fulfilled.v1',
                                                             'order.compensation.v1')),
    ce_time          text        NOT NULL,   -- RFC 3339; also fulfilled_at / compensated_at
    traceparent      text,
    payment_id       text        NOT NULL,
    payment_event_id uuid        NOT NULL,
    reason           text,                   -- compensation only
    details          jsonb,                  -- compensation only
    items            jsonb       NOT NULL,   -- as paid: [{"sku","qty"}]
    versions         jsonb,                  -- fulfilled: [{"sku","qty","stock_version"}]
    amount_cents     bigint      NOT NULL,   -- refund of a compensation
    currency         text        NOT NULL,
    customer         jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE outbox IS
    'inventory: outcome events waiting to be published (deleted once in Kafka)';
