-- What the portal shows of a preview: its pull request as the reconciler last read it, and
-- whether its failure is in the repository's config or manifests (which the squad fixes
-- with a push) rather than in its rollout.
ALTER TABLE previews ADD COLUMN title        TEXT    NOT NULL DEFAULT '';
ALTER TABLE previews ADD COLUMN author       TEXT    NOT NULL DEFAULT '';
ALTER TABLE previews ADD COLUMN pr_url       TEXT    NOT NULL DEFAULT '';
ALTER TABLE previews ADD COLUMN config_error INTEGER NOT NULL DEFAULT 0 CHECK (config_error IN (0, 1));
