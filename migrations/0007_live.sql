-- Open dashboards refresh when their rollout changes. Every change a person or the guard loop
-- makes writes an audit entry, so one trigger on the audit log covers them all; ingest
-- notifies in its own transaction when new events arrive. NOTIFY is delivered at commit and
-- identical payloads within one transaction are sent once.

CREATE FUNCTION notify_rollout_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.rollout_id IS NOT NULL THEN
        PERFORM pg_notify('rampart_rollouts', NEW.rollout_id::text);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_log_notify_rollout_change AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION notify_rollout_change();
