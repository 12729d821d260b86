-- The platform's own state (DESIGN D6). Times are Unix seconds (UTC).

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    admin      INTEGER NOT NULL CHECK (admin IN (0, 1)),
    created_at INTEGER NOT NULL
);

CREATE TABLE squads (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    -- ResourceQuota `hard` of each of the squad's namespaces, as a JSON object.
    quota                TEXT    NOT NULL,
    -- LimitRange container defaults: {"default": {cpu, memory}, "defaultRequest": {cpu, memory}}.
    limits               TEXT    NOT NULL,
    preview_max          INTEGER NOT NULL,
    preview_quota        TEXT    NOT NULL,
    preview_ttl_seconds  INTEGER NOT NULL,
    preview_max_ttl_seconds INTEGER NOT NULL,
    allow_pinning        INTEGER NOT NULL CHECK (allow_pinning IN (0, 1)),
    created_at           INTEGER NOT NULL
);

CREATE TABLE squad_namespaces (
    id        INTEGER PRIMARY KEY,
    squad_id  INTEGER NOT NULL REFERENCES squads (id) ON DELETE CASCADE,
    namespace TEXT    NOT NULL UNIQUE
);

CREATE TABLE memberships (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    squad_id INTEGER NOT NULL REFERENCES squads (id) ON DELETE CASCADE,
    role     TEXT    NOT NULL CHECK (role IN ('member', 'owner')),
    UNIQUE (user_id, squad_id)
);

CREATE TABLE tokens (
    id            TEXT    PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    description   TEXT,
    -- Lower-case hex SHA-256 of the secret; the secret itself is never stored.
    secret_sha256 TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER
);

CREATE TABLE repos (
    id         INTEGER PRIMARY KEY,
    owner      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    squad_id   INTEGER NOT NULL REFERENCES squads (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL
);
