-- One-time links that let a person choose their password (the first admin's, on a first start
-- without RAMPART_ADMIN_PASSWORD): only the hash of the link's secret is kept; a link works
-- once, until it expires.
CREATE TABLE setup_links (
    hash        BYTEA PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
