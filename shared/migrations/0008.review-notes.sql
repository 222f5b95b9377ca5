-- depends: 0007.redemptions
-- An admin's note on a reviewed event, and when a review happened.
ALTER TABLE points_events ADD COLUMN review_note text;
CREATE INDEX points_events_review_queue ON points_events (created_at) WHERE validation_status = 'pending_review';
CREATE INDEX fraud_insights_severity ON fraud_insights (severity, created_at DESC);
