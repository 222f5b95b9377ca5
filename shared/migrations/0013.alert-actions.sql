-- Alerts that act (owned by the gateway): new redemptions can be stopped beside the kill switch,
-- by an admin or by an alert, and every change says which.
ALTER TABLE feature_flags ADD COLUMN redemptions_enabled boolean NOT NULL DEFAULT true;
ALTER TABLE feature_flag_changes ADD COLUMN redemptions_enabled boolean;
