-- Refused messages are kept for inspection, not for ever: after the
-- operator's retention period their bodies (and the values quoted in their
-- error details) are erased; code, pointers, sizes and SHA-256 stay.
ALTER TABLE rejected_messages ADD COLUMN body_erased_at timestamptz;
