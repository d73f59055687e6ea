-- inventory: conservation of stock, per sku (ofctl verify reads it).
--   ledger_available = sum(stock_ledger.delta_available)
--   ledger_reserved  = sum(stock_ledger.delta_reserved)
--   adjusted         = sum(delta_available) over kind 'adjust' movements
--   order_reserved   = sum(qty) of the sku over fulfilled orders' items
-- ok when available = ledger_available, reserved = ledger_reserved
-- = order_reserved, and therefore available + reserved = adjusted.
CREATE VIEW stock_conservation AS
SELECT s.sku,
       s.available,
       s.reserved,
       coalesce(l.ledger_available, 0) AS ledger_available,
       coalesce(l.ledger_reserved, 0)  AS ledger_reserved,
       coalesce(l.adjusted, 0)         AS adjusted,
       coalesce(o.order_reserved, 0)   AS order_reserved,
       (s.available = coalesce(l.ledger_available, 0)
        AND s.reserved = coalesce(l.ledger_reserved, 0)
        AND s.reserved = coalesce(o.order_reserved, 0)
        AND s.available + s.reserved = coalesce(l.adjusted, 0)) AS ok
  FROM stock s
  LEFT JOIN (SELECT sku,
                    sum(delta_available) AS ledger_available,
                    sum(delta_reserved)  AS ledger_reserved,
                    sum(delta_available) FILTER (WHERE kind = 'adjust') AS adjusted
               FROM stock_ledger GROUP BY sku) l USING (sku)
  LEFT JOIN (SELECT e->>'sku' AS sku, sum((e->>'qty')::bigint) AS order_reserved
               FROM orders, jsonb_array_elements(items) e
              WHERE status = 'fulfilled'
              GROUP BY 1) o USING (sku);
