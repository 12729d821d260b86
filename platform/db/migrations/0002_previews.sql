-- Pull-request previews (DESIGN D6, D7): how each repository reaches GitHub, every webhook
-- delivery accepted, and one preview per pull request. Times are Unix seconds (UTC).

-- The secret GitHub signs the repository's webhooks with, and the credentials the platform
-- calls GitHub with, as JSON: {"token": "..."} or {"app": {"appId": N, "privateKey": "..."}}.
-- Both must be readable to be used, so they are stored as given; the file is owner-only.
ALTER TABLE repos ADD COLUMN webhook_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE repos ADD COLUMN access TEXT NOT NULL DEFAULT '{}';

-- Every delivery accepted, stored before it is acknowledged. (hook, delivery) is the
-- deduplication key: GitHub's delivery id is per event, and a redelivery repeats it.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    hook         TEXT    NOT NULL,
    delivery     TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    action       TEXT,
    repo_id      INTEGER REFERENCES repos (id) ON DELETE CASCADE,
    pr           INTEGER,
    head_sha     TEXT,
    sender       TEXT,
    -- A comment's body, for the /slipway commands in it; NULL for other events.
    comment      TEXT,
    received_at  INTEGER NOT NULL,
    processed_at INTEGER,
    UNIQUE (hook, delivery)
);
CREATE INDEX deliveries_pending ON deliveries (repo_id, pr) WHERE processed_at IS NULL;

-- One preview per pull request. Events, users and gateways write the wanted side
-- (generation, extended_until, destroy_requested, last_request_at); only the reconciler
-- writes the rest.
CREATE TABLE previews (
    id                INTEGER PRIMARY KEY,
    repo_id           INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    pr                INTEGER NOT NULL,
    namespace         TEXT    NOT NULL UNIQUE,
    generation        INTEGER NOT NULL DEFAULT 1,
    extended_until    INTEGER,
    destroy_requested INTEGER NOT NULL DEFAULT 0 CHECK (destroy_requested IN (0, 1)),
    last_request_at   INTEGER,
    -- The reconciler's side.
    phase             TEXT    NOT NULL DEFAULT 'pending',
    message           TEXT    NOT NULL DEFAULT '',
    head_sha          TEXT    NOT NULL DEFAULT '',
    head_ref          TEXT    NOT NULL DEFAULT '',
    fork              INTEGER NOT NULL DEFAULT 0 CHECK (fork IN (0, 1)),
    approved_sha      TEXT,
    pinned            INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),
    deployed_sha      TEXT,
    deployed_at       INTEGER,
    expires_at        INTEGER,
    warned_at         INTEGER,
    url               TEXT,
    comment_id        INTEGER,
    deployment_id     INTEGER,
    deployment_sha    TEXT,
    -- What the last deploy applied, as JSON [{"apiVersion", "kind", "name"}]: what a new
    -- commit no longer declares is pruned, and teardown needs nothing from the branch.
    applied           TEXT    NOT NULL DEFAULT '[]',
    slept_at          INTEGER,
    observed          INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (repo_id, pr)
);
