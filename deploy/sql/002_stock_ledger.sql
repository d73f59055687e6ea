-- inventory: every stock movement, append-only, so that conservation can be
-- checked (see the stock_conservation view, 007).
--   kind 'adjust'  : an operator set `available` (PUT /v1/stock/{sku});
--                    delta_available = new - old available, delta_reserved = 0.
--   kind 'reserve' : a payment's item was reserved for an order;
--                    delta_available = -qty, delta_reserved = +qty.
-- For every sku:  available = sum(delta_available), reserved =
-- sum(delta_reserved), hence available + reserved = sum of 'adjust' deltas.
CREATE TABLE stock_ledger (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku             text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('adjust', 'reserve')),
    delta_available bigint      NOT NULL,
    delta_reserved  bigint      NOT NULL,
    stock_version   bigint      NOT NULL,  -- stock.version after the movement
    ref             text        NOT NULL,  -- order_id ('reserve') or who adjusted ('adjust')
    at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'adjust' AND delta_reserved = 0)
        OR (kind = 'reserve' AND delta_reserved > 0
            AND delta_available = -delta_reserved))
);

COMMENT ON TABLE stock_ledger IS
    'inventory: append-only stock movements (adjust by operator, reserve by order)';
