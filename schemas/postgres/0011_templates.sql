-- 0011_templates: campaign-level template values and the policy for a template's missing values.
-- Why: `content.title`, `content.body` and `content.data` are Liquid templates rendered per recipient
-- (src/domain/template.ts); `variables` is what they read as `variables.*`, `missing` says whether a
-- missing value renders as nothing ('empty') or the recipient is skipped ('skip', a `skipped` outcome).
-- Both are fixed at creation, like the content, so a process compiles a campaign's templates once.
ALTER TABLE campaigns ADD COLUMN variables jsonb;
ALTER TABLE campaigns ADD COLUMN missing text NOT NULL DEFAULT 'empty' CHECK (missing IN ('empty', 'skip'));
