-- inventory: the one outcome of each order, decided by its first payment.
-- The primary key makes a second outcome impossible; later payments for the
-- same order are compensated with reason duplicate_payment (recorded in
-- payment_inbox only) and do not change this row.
-- items: [{"sku","qty"}] as paid, plus "stock_version" (the sku's version
-- after the reservation) when fulfilled.
CREATE TABLE orders (
    order_id         text        PRIMARY KEY,
    status           text        NOT NULL CHECK (status IN ('fulfilled', 'compensated')),
    reason           text        CHECK (reason IN ('insufficient_stock', 'unknown_sku')),
    payment_id       text        NOT NULL,
    payment_event_id uuid        NOT NULL,
    outcome_event_id uuid        NOT NULL,
    amount_cents     bigint      NOT NULL,
    currency         text        NOT NULL,
    items            jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'fulfilled') = (reason IS NULL))
);

COMMENT ON TABLE orders IS
    'inventory: exactly one outcome per order (fulfilled or compensated)';
