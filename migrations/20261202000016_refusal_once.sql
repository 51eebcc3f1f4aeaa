-- A refused message is recorded once per sender and message_id, however
-- often it is delivered (a crash before the ack delivers it again).
-- Earlier duplicates are folded into the first record.
DELETE FROM rejected_messages r
 USING rejected_messages first
 WHERE r.message_id IS NOT NULL
   AND r.message_id = first.message_id
   AND coalesce(r.user_id, '') = coalesce(first.user_id, '')
   AND r.id > first.id;

CREATE UNIQUE INDEX rejected_messages_once
    ON rejected_messages (message_id, (coalesce(user_id, '')))
    WHERE message_id IS NOT NULL;
