-- What the stored deadline clocks were computed with: a fingerprint of the
-- catalogue's deadlines and calendars. When a reload changes either, the
-- checker drops the clocks and computes them again.
CREATE TABLE deadline_clock_basis (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    fingerprint text NOT NULL
);
