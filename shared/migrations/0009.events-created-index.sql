-- depends: 0008.review-notes
-- The console's hourly figures and the guide's canary queries filter points_events by created_at alone.
CREATE INDEX points_events_created ON points_events (created_at);
