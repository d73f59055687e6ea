-- inventory: one row per sku. `available` can be sold, `reserved` is held
-- for fulfilled orders; neither can go below zero (CHECK), whatever the
-- concurrency. `version` goes up by one on every change of the row (a
-- reservation or an operator's PUT /v1/stock/{sku}).
CREATE TABLE stock (
    sku        text        PRIMARY KEY
                           CHECK (sku ~ '^[A-Za-z0-9._:-]{1,64}$'),
    available  bigint      NOT NULL CHECK (available >= 0),
    reserved   bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    version    bigint      NOT NULL DEFAULT 0 CHECK (version >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE stock IS
    'inventory: stock per sku (available >= 0, reserved >= 0, version bumped on every change)';
