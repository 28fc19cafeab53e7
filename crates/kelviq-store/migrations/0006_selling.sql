-- Selling: payment methods, checkout sessions, subscriptions (and one-time
-- purchases), orders with their invoices, transactions, refunds, and the
-- sandbox test clocks. Each record is a JSON document (`doc`) plus the columns
-- that queries filter, order or lock on. Due work (renewals, trial ends,
-- scheduled cancellations, retries) is `subscriptions.next_due_at`: it lives
-- in the database, so a restart loses nothing.

CREATE TABLE payment_methods (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    is_default    BOOLEAN NOT NULL,
    doc           TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX payment_methods_by_customer ON payment_methods (org_id, environment, customer_id);

CREATE TABLE checkout_sessions (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    status        TEXT NOT NULL,
    doc           TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX checkout_sessions_newest ON checkout_sessions (org_id, environment, created_at DESC);

CREATE TABLE subscriptions (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    status        TEXT NOT NULL,
    next_due_at   BIGINT,
    doc           TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    modified_at   BIGINT NOT NULL
);
CREATE INDEX subscriptions_by_customer ON subscriptions (org_id, environment, customer_id);
CREATE INDEX subscriptions_due ON subscriptions (next_due_at);

CREATE TABLE orders (
    pk              INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    invoice_id      TEXT NOT NULL UNIQUE,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    environment     TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    subscription_id TEXT,
    status          TEXT NOT NULL,
    billing_type    TEXT NOT NULL,
    is_renewal      BOOLEAN NOT NULL,
    doc             TEXT NOT NULL,
    paid_at         BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX orders_newest ON orders (org_id, environment, paid_at DESC);
CREATE INDEX orders_by_subscription ON orders (subscription_id);

CREATE TABLE transactions (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    order_id      TEXT NOT NULL,
    status        TEXT NOT NULL,
    doc           TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX transactions_newest ON transactions (org_id, environment, created_at DESC);

CREATE TABLE refunds (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    order_id      TEXT NOT NULL,
    status        TEXT NOT NULL,
    doc           TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX refunds_newest ON refunds (org_id, environment, created_at DESC);

-- How far a sandbox environment's test clock runs ahead of the server's clock.
CREATE TABLE test_clocks (
    org_id         TEXT NOT NULL REFERENCES organizations (id),
    environment    TEXT NOT NULL,
    offset_micros  BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment)
);
