-- inventory: outcome events carry the payment's W3C tracestate.
--
-- A payment's trace context is its traceparent and its tracestate
-- (contract section 10: "tracestate travels with traceparent on every
-- hop"). The outbox kept the outcome's traceparent only; from this
-- migration on it keeps the tracestate too, and the relay sends it as the
-- outcome record's `tracestate` header next to `traceparent`.
--
-- 1. outbox.tracestate: the payment's tracestate as inventory normalized
--    it (of_tracestate_parse: at most 512 characters). NULL when the
--    payment had none (most do not), for rows written before this
--    migration, or by an instance not yet upgraded; the relay then sends
--    no tracestate header. Nullable without a default: adding it rewrites
--    nothing.
--
-- 2. inv_reserve_batch_seq() and inv_reserve_batch() (008) again, with one
--    change: a batch element may carry "tracestate" (text; absent or null
--    -> NULL), stored in the outbox rows written for that payment
--    (fulfilled, compensated and duplicate_payment alike). Signatures and
--    RETURNS TABLE are those of 006, so CREATE OR REPLACE swaps the bodies
--    in place; an instance not yet upgraded sends no "tracestate" and gets
--    NULL. Everything else is unchanged; 006 and 008 describe the
--    functions.
--
-- of_pg_migrate runs this file in one transaction: the column and both
-- functions appear together or not at all.

ALTER TABLE outbox ADD COLUMN tracestate text;

COMMENT ON COLUMN outbox.tracestate IS
    'the payment''s W3C tracestate (normalized, <= 512 characters); sent as the tracestate header with traceparent, none when NULL';

-- The sequential form (see 006).
CREATE OR REPLACE FUNCTION inv_reserve_batch_seq(p_batch jsonb, p_at text,
                                                 p_topic_fulfilled text,
                                                 p_topic_compensation text)
RETURNS TABLE (out_idx integer, out_result text, out_reason text,
               out_items jsonb, out_details jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE
    r          record;
    v_hash     bytea;
    v_existing bytea;
    v_found    boolean;
    v_details  jsonb;
    v_unknown  boolean;
    v_items    jsonb;
    v_n        integer;
BEGIN
    FOR r IN
        SELECT *
          FROM jsonb_to_recordset(p_batch) AS t(i integer, payment_id text,
               event_id uuid, outcome_event_id uuid, order_id text,
               sha256 text, amount_cents bigint, currency text, items jsonb,
               customer jsonb, traceparent text, part integer, off bigint,
               received_at text, tracestate text)
    LOOP
        out_idx := r.i;
        out_reason := NULL;
        out_items := NULL;
        out_details := NULL;
        v_hash := decode(r.sha256, 'hex');

        -- 1. idempotency
        SELECT p.content_sha256 INTO v_existing
          FROM payment_inbox p WHERE p.payment_id = r.payment_id;
        IF FOUND THEN
            out_result := CASE WHEN v_existing = v_hash THEN 'redelivered'
                               ELSE 'idempotency_conflict' END;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- 2. the order already has its outcome: refund this payment
        SELECT true INTO v_found FROM orders o WHERE o.order_id = r.order_id;
        IF FOUND THEN
            out_result := 'compensated';
            out_reason := 'duplicate_payment';
            out_details := '[]'::jsonb;
            INSERT INTO payment_inbox (payment_id, event_id, order_id,
                   content_sha256, result, reason, outcome_event_id,
                   source_partition, source_offset)
            VALUES (r.payment_id, r.event_id, r.order_id, v_hash,
                    'compensated', 'duplicate_payment', r.outcome_event_id,
                    r.part, r.off)
            ON CONFLICT (payment_id) DO NOTHING;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'payment % was recorded concurrently', r.payment_id
                      USING ERRCODE = 'serialization_failure';
            END IF;
            INSERT INTO outbox (order_id, topic, ce_id, ce_type, ce_time,
                   traceparent, payment_id, payment_event_id, reason, details,
                   items, versions, amount_cents, currency, customer,
                   payment_received_at, tracestate)
            VALUES (r.order_id, p_topic_compensation, r.outcome_event_id,
                    'order.compensation.v1', p_at, r.traceparent, r.payment_id,
                    r.event_id, out_reason, out_details, r.items, NULL,
                    r.amount_cents, r.currency, r.customer, r.received_at,
                    r.tracestate);
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- 3. all or nothing: find every short or unknown sku
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'sku', x.sku, 'requested', x.qty,
                   'available', coalesce(s.available, 0),
                   'problem', CASE WHEN s.sku IS NULL THEN 'unknown_sku'
                                   ELSE 'insufficient_stock' END)
                   ORDER BY x.sku), '[]'::jsonb),
               coalesce(bool_or(s.sku IS NULL), false)
          INTO v_details, v_unknown
          FROM jsonb_to_recordset(r.items) AS x(sku text, qty bigint)
          LEFT JOIN stock s ON s.sku = x.sku
         WHERE s.sku IS NULL OR s.available < x.qty;

        IF jsonb_array_length(v_details) > 0 THEN
            out_result := 'compensated';
            out_reason := CASE WHEN v_unknown THEN 'unknown_sku'
                               ELSE 'insufficient_stock' END;
            out_details := v_details;
            v_items := r.items;
        ELSE
            WITH upd AS (
                UPDATE stock s
                   SET available = s.available - x.qty,
                       reserved = s.reserved + x.qty,
                       version = s.version + 1,
                       updated_at = now()
                  FROM jsonb_to_recordset(r.items) AS x(sku text, qty bigint)
                 WHERE s.sku = x.sku AND s.available >= x.qty
             RETURNING s.sku, x.qty, s.version
            ), led AS (
                INSERT INTO stock_ledger (sku, kind, delta_available,
                                          delta_reserved, stock_version, ref)
                SELECT u.sku, 'reserve', -u.qty, u.qty, u.version, r.order_id
                  FROM upd u
            )
            SELECT jsonb_agg(jsonb_build_object('sku', u.sku, 'qty', u.qty,
                                                'stock_version', u.version)
                             ORDER BY u.sku),
                   count(*)
              INTO v_items, v_n
              FROM upd u;
            IF v_n <> jsonb_array_length(r.items) THEN
                RAISE EXCEPTION 'stock of order % changed concurrently', r.order_id
                      USING ERRCODE = 'serialization_failure';
            END IF;
            out_result := 'fulfilled';
            out_items := v_items;
        END IF;

        INSERT INTO orders (order_id, status, reason, payment_id,
               payment_event_id, outcome_event_id, amount_cents, currency,
               items)
        VALUES (r.order_id, out_result, out_reason, r.payment_id, r.event_id,
                r.outcome_event_id, r.amount_cents, r.currency, v_items)
        ON CONFLICT (order_id) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'order % got an outcome concurrently', r.order_id
                  USING ERRCODE = 'serialization_failure';
        END IF;
        INSERT INTO payment_inbox (payment_id, event_id, order_id,
               content_sha256, result, reason, outcome_event_id,
               source_partition, source_offset)
        VALUES (r.payment_id, r.event_id, r.order_id, v_hash, out_result,
                out_reason, r.outcome_event_id, r.part, r.off)
        ON CONFLICT (payment_id) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'payment % was recorded concurrently', r.payment_id
                  USING ERRCODE = 'serialization_failure';
        END IF;
        INSERT INTO outbox (order_id, topic, ce_id, ce_type, ce_time,
               traceparent, payment_id, payment_event_id, reason, details,
               items, versions, amount_cents, currency, customer,
               payment_received_at, tracestate)
        VALUES (r.order_id,
                CASE WHEN out_result = 'fulfilled' THEN p_topic_fulfilled
                     ELSE p_topic_compensation END,
                r.outcome_event_id,
                CASE WHEN out_result = 'fulfilled' THEN 'order.fulfilled.v1'
                     ELSE 'order.compensation.v1' END,
                p_at, r.traceparent, r.payment_id, r.event_id, out_reason,
                out_details, r.items, out_items, r.amount_cents, r.currency,
                r.customer, r.received_at, r.tracestate);
        RETURN NEXT;
    END LOOP;
END
$fn$;

-- The set-based form (see 006).
CREATE OR REPLACE FUNCTION inv_reserve_batch(p_batch jsonb, p_at text,
                                             p_topic_fulfilled text,
                                             p_topic_compensation text)
RETURNS TABLE (out_idx integer, out_result text, out_reason text,
               out_items jsonb, out_details jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_fast boolean;
    v_skus text[];
BEGIN
    SELECT array_agg(DISTINCT e->>'sku') INTO v_skus
      FROM jsonb_array_elements(p_batch) b, jsonb_array_elements(b->'items') e;
    PERFORM 1 FROM stock s WHERE s.sku = ANY (v_skus) ORDER BY s.sku FOR UPDATE;

    WITH b AS (
        SELECT t.payment_id, t.order_id, t.items
          FROM jsonb_to_recordset(p_batch) AS t(payment_id text, order_id text,
                                                 items jsonb)
    ), demand AS (
        SELECT x.sku, sum(x.qty) AS q
          FROM b, jsonb_to_recordset(b.items) AS x(sku text, qty bigint)
         GROUP BY x.sku
    )
    SELECT (SELECT count(DISTINCT b.payment_id) = count(*)
                   AND count(DISTINCT b.order_id) = count(*) FROM b)
           AND NOT EXISTS (SELECT 1
                             FROM demand d
                            CROSS JOIN LATERAL (SELECT st.available FROM stock st
                                                 WHERE st.sku = d.sku OFFSET 0) s
                            WHERE s.available < d.q)
      INTO v_fast;

    PERFORM pg_notify('orderflow_inventory_outbox', '');
    IF NOT v_fast THEN
        RETURN QUERY SELECT * FROM inv_reserve_batch_seq(p_batch, p_at,
                                 p_topic_fulfilled, p_topic_compensation);
        RETURN;
    END IF;

    RETURN QUERY
        WITH b AS (
            SELECT t.*
              FROM jsonb_to_recordset(p_batch) AS t(i integer, payment_id text,
                   event_id uuid, outcome_event_id uuid, order_id text,
                   sha256 text, amount_cents bigint, currency text,
                   items jsonb, customer jsonb, traceparent text,
                   part integer, off bigint, received_at text, tracestate text)
        ), seen AS (        -- in the inbox already: redelivered or conflict
            SELECT b.i, p.content_sha256 = decode(b.sha256, 'hex') AS same
              FROM b
             CROSS JOIN LATERAL (SELECT pi.content_sha256 FROM payment_inbox pi
                                  WHERE pi.payment_id = b.payment_id OFFSET 0) p
        ), todo AS (        -- the payments to decide; is_dup: order has its outcome
            SELECT b.*,
                   EXISTS (SELECT 1 FROM orders o WHERE o.order_id = b.order_id) AS is_dup
              FROM b
             WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.i = b.i)
        ), it AS (          -- their items (not for duplicates), with the stock row
            SELECT t.i, t.payment_id, t.event_id, t.outcome_event_id, t.order_id,
                   t.sha256, t.amount_cents, t.currency, t.items, t.customer,
                   t.traceparent, t.part, t.off, t.received_at, t.tracestate,
                   x.sku, x.qty, s.version, s.version IS NOT NULL AS known,
                   bool_and(s.version IS NOT NULL) OVER (PARTITION BY t.i) AS all_known
              FROM todo t
             CROSS JOIN LATERAL jsonb_to_recordset(t.items) AS x(sku text, qty bigint)
              LEFT JOIN LATERAL (SELECT st.version FROM stock st
                                  WHERE st.sku = x.sku OFFSET 0) s  -- one index probe
                     ON true
             WHERE NOT t.is_dup
        ), res AS (         -- reservations bump their sku's version in batch order
            SELECT it.*,
                   it.version + count(*) FILTER (WHERE it.all_known)
                       OVER (PARTITION BY it.sku ORDER BY it.i) AS stock_version
              FROM it
        ), per_sku AS (
            SELECT res.sku, sum(res.qty) AS q, count(*) AS n
              FROM res WHERE res.all_known GROUP BY res.sku
        ), upd AS (
            UPDATE stock s
               SET available = s.available - p.q, reserved = s.reserved + p.q,
                   version = s.version + p.n, updated_at = now()
              FROM per_sku p
             WHERE s.sku = p.sku AND s.available >= p.q
         RETURNING s.sku
        ), led AS (
            INSERT INTO stock_ledger (sku, kind, delta_available, delta_reserved,
                                      stock_version, ref)
            SELECT res.sku, 'reserve', -res.qty, res.qty, res.stock_version, res.order_id
              FROM res WHERE res.all_known
        ), dec AS (         -- fulfilled, or compensated for an unknown sku
            SELECT res.i, res.payment_id, res.event_id, res.outcome_event_id,
                   res.order_id, res.sha256, res.amount_cents, res.currency,
                   res.part, res.off,
                   CASE WHEN res.all_known THEN 'fulfilled' ELSE 'compensated' END
                       AS result,
                   CASE WHEN res.all_known THEN NULL ELSE 'unknown_sku' END AS reason,
                   CASE WHEN res.all_known
                        THEN jsonb_agg(jsonb_build_object('sku', res.sku, 'qty', res.qty,
                                       'stock_version', res.stock_version) ORDER BY res.sku)
                   END AS ful_items,
                   CASE WHEN res.all_known THEN NULL
                        ELSE jsonb_agg(jsonb_build_object('sku', res.sku,
                                       'requested', res.qty, 'available', 0,
                                       'problem', 'unknown_sku') ORDER BY res.sku)
                             FILTER (WHERE NOT res.known)
                   END AS details,
                   res.items, res.customer, res.traceparent, res.received_at,
                   res.tracestate,
                   false AS is_dup
              FROM res
             GROUP BY res.i, res.payment_id, res.event_id, res.outcome_event_id,
                      res.order_id, res.sha256, res.amount_cents, res.currency,
                      res.part, res.off, res.all_known, res.items, res.customer,
                      res.traceparent, res.received_at, res.tracestate
        ), outc AS (        -- every payment decided now
            SELECT * FROM dec
            UNION ALL
            SELECT t.i, t.payment_id, t.event_id, t.outcome_event_id, t.order_id,
                   t.sha256, t.amount_cents, t.currency, t.part, t.off,
                   'compensated', 'duplicate_payment', NULL, '[]'::jsonb, t.items,
                   t.customer, t.traceparent, t.received_at, t.tracestate, true
              FROM todo t WHERE t.is_dup
        ), ord AS (
            INSERT INTO orders (order_id, status, reason, payment_id,
                   payment_event_id, outcome_event_id, amount_cents, currency, items)
            SELECT o.order_id, o.result, o.reason, o.payment_id, o.event_id,
                   o.outcome_event_id, o.amount_cents, o.currency,
                   coalesce(o.ful_items, o.items)
              FROM outc o WHERE NOT o.is_dup
            ON CONFLICT (order_id) DO NOTHING
            RETURNING 1
        ), inb AS (
            INSERT INTO payment_inbox (payment_id, event_id, order_id,
                   content_sha256, result, reason, outcome_event_id,
                   source_partition, source_offset)
            SELECT o.payment_id, o.event_id, o.order_id, decode(o.sha256, 'hex'),
                   o.result, o.reason, o.outcome_event_id, o.part, o.off
              FROM outc o
            ON CONFLICT (payment_id) DO NOTHING
            RETURNING 1
        ), obx AS (         -- the outcome events, in batch order
            INSERT INTO outbox (order_id, topic, ce_id, ce_type, ce_time,
                   traceparent, payment_id, payment_event_id, reason, details,
                   items, versions, amount_cents, currency, customer,
                   payment_received_at, tracestate)
            SELECT o.order_id,
                   CASE WHEN o.result = 'fulfilled' THEN p_topic_fulfilled
                        ELSE p_topic_compensation END,
                   o.outcome_event_id,
                   CASE WHEN o.result = 'fulfilled' THEN 'order.fulfilled.v1'
                        ELSE 'order.compensation.v1' END,
                   p_at, o.traceparent, o.payment_id, o.event_id, o.reason,
                   o.details, o.items, o.ful_items, o.amount_cents, o.currency,
                   o.customer, o.received_at, o.tracestate
              FROM outc o ORDER BY o.i
            RETURNING 1
        ), chk AS (         -- did every write land? (else: a concurrent writer)
            SELECT (SELECT count(*) FROM upd) = (SELECT count(*) FROM per_sku)
                   AND (SELECT count(*) FROM ord) = (SELECT count(*) FROM outc WHERE NOT is_dup)
                   AND (SELECT count(*) FROM inb) = (SELECT count(*) FROM outc)
                   AND (SELECT count(*) FROM obx) = (SELECT count(*) FROM outc) AS ok
        )
        SELECT o.i, o.result, o.reason, o.ful_items, o.details
          FROM outc o, chk
         WHERE inv_retry_unless(chk.ok, 'a concurrent writer changed rows of this batch')
        UNION ALL
        SELECT s.i, CASE WHEN s.same THEN 'redelivered' ELSE 'idempotency_conflict' END,
               NULL::text, NULL::jsonb, NULL::jsonb
          FROM seen s, chk
         WHERE inv_retry_unless(chk.ok, 'a concurrent writer changed rows of this batch');
END
$fn$;
