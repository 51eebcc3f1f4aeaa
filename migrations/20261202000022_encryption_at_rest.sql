-- Encryption at rest (docs/encryption.md): `messages.raw` may be sealed
-- (AES-256-GCM), so nothing in the database reads it as JSON any more. The
-- few payload fields the database's own queries need (the statistics'
-- agreed answer dates and ratings, an alert's end date) are kept beside it.

ALTER TABLE messages ADD COLUMN facts jsonb NOT NULL DEFAULT '{}';

UPDATE messages m SET facts = jsonb_strip_nulls(jsonb_build_object(
        'requested_answer_date', p.payload -> 'requested_answer_date',
        'rating', p.payload -> 'rating',
        'restriction_end_date', p.payload -> 'restriction_end_date'))
FROM (SELECT id, convert_from(raw, 'UTF8')::jsonb -> 'payload' AS payload FROM messages) p
WHERE p.id = m.id;

-- It read `raw` as JSON.
DROP VIEW message_payloads;
