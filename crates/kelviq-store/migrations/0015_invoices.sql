-- Invoices as records: one per order, numbered in sequence per
-- environment. `billing_key` names what the invoice bills (a subscription
-- and period, or a one-off order): no two invoices bill the same thing,
-- so a billing run that restarts never issues one twice.

CREATE TABLE invoices (
    pk              INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    number          TEXT NOT NULL,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    environment     TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    subscription_id TEXT,
    order_id        TEXT NOT NULL,
    status          TEXT NOT NULL,
    billing_key     TEXT NOT NULL,
    doc             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (org_id, environment, number),
    UNIQUE (org_id, environment, billing_key)
);
CREATE INDEX invoices_newest ON invoices (org_id, environment, created_at);
CREATE INDEX invoices_by_subscription ON invoices (subscription_id);
CREATE INDEX invoices_by_order ON invoices (order_id);

-- The last invoice number given in each environment.
CREATE TABLE invoice_numbers (
    org_id      TEXT NOT NULL,
    environment TEXT NOT NULL,
    last        BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment)
);
