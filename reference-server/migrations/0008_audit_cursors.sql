-- Where each audit stream (the webhook) got to: the sequence number of the
-- last event it delivered, so a restart resumes without loss or repeats.
CREATE TABLE audit_cursors (
    stream TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL
);
