-- V005: observed_at gets a floor; V001's label_events_observed_not_future is its ceiling (recorded_at plus
-- 5 minutes of client clock skew). No fraud label is about a time before 1970, and a time in year 1 breaks
-- readers of the Delta export (PySpark's collect() raises "year 0 is out of range").
-- NOT VALID: every new row is checked, rows stored before this version stay exactly as they are (truth is
-- append-only); the label export refuses such a row by id rather than copy it (jobs/export_labels.py).
-- Mirrored by common/db/labels.py OBSERVED_FLOOR.

alter table human_loop.label_events
    add constraint label_events_observed_since_1970
    check (observed_at >= timestamptz '1970-01-01 00:00:00+00') not valid;
