-- Who took a step that no message carries (a coordinator's reassignment).
ALTER TABLE transitions ADD COLUMN actor text;
