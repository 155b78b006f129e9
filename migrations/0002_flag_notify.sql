-- Every server process keeps the served flag configs in memory and refreshes a flag when this
-- notification arrives. NOTIFY is delivered at commit, so listeners never see a flag change
-- that was rolled back.

CREATE FUNCTION notify_flag_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR NEW.flag_enabled IS DISTINCT FROM OLD.flag_enabled
       OR NEW.flag_percentage IS DISTINCT FROM OLD.flag_percentage
       OR NEW.version IS DISTINCT FROM OLD.version THEN
        PERFORM pg_notify('rampart_flags', NEW.flag_key);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER rollouts_notify_flag_change AFTER INSERT OR UPDATE ON rollouts
    FOR EACH ROW EXECUTE FUNCTION notify_flag_change();
