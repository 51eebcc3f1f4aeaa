-- Console/API accounts with hashed bearer tokens, and multilingual authority
-- search (accent-insensitive, typo-tolerant).

CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- unaccent() is only STABLE (its dictionary could change); pinning the
-- dictionary makes it safe to index.
CREATE FUNCTION imi_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;

ALTER TABLE authorities ADD COLUMN competences jsonb NOT NULL DEFAULT '{}';
ALTER TABLE authorities ADD COLUMN contact text;

-- Everything a user may search by, folded: id, names and competences in
-- every language.
CREATE FUNCTION imi_authority_document(id text, names jsonb, competences jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT imi_fold(id || ' ' ||
            coalesce((SELECT string_agg(value, ' ') FROM jsonb_each_text(names)), '') || ' ' ||
            coalesce((SELECT string_agg(value, ' ') FROM jsonb_each_text(competences)), ''))
    $$;

CREATE INDEX authorities_search ON authorities
    USING gin (imi_authority_document(id, names, competences) gin_trgm_ops);

CREATE TABLE accounts (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('operator', 'coordinator', 'auditor')),
    -- A coordinator acts for one country.
    country       text,
    -- SHA-256 of the bearer token: tokens are 256 random bits, so a fast
    -- hash is enough; the token itself is shown once and never stored.
    token_sha256  bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CHECK (role <> 'coordinator' OR country IS NOT NULL)
);
