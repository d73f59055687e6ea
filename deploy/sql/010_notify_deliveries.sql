-- notify's delivery log: one row per (event_id, channel) delivery.
-- A row with status 'delivered' is what keeps a redelivered outcome event
-- or a replayed DLQ record from sending the same notification again.
--   pending    deferred by an open circuit breaker, no request made yet
--   retrying   the last request failed transiently; waiting in a retry tier
--   delivered  the provider answered 2xx (final)
--   dead       sent to notify.dlq (permanent_failure or retries_exhausted)
CREATE TABLE IF NOT EXISTS notify_deliveries (
    delivery_id      uuid PRIMARY KEY,
    event_id         text        NOT NULL,
    order_id         text        NOT NULL,
    channel          text        NOT NULL
                     CHECK (channel IN ('email', 'sms', 'webhook')),
    status           text        NOT NULL
                     CHECK (status IN ('pending', 'retrying', 'delivered', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       text,
    last_http_status integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);

CREATE INDEX IF NOT EXISTS notify_deliveries_order_id_idx
    ON notify_deliveries (order_id);
