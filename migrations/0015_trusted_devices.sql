-- Device cookies (issue 19, finding 8): a browser that has signed in to an account is let
-- through that account's cap on failures from everywhere, so a guesser spread over many
-- addresses cannot lock the owner out of the browsers they use. Only the cookie's digest is kept.
CREATE TABLE trusted_devices (
    hash       BYTEA PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX trusted_devices_expiry ON trusted_devices (expires_at);
