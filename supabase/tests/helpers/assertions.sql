-- Assertions shared by the SQL policy tests. The jest runner (sql-policies.test.ts) runs this file first on
-- the test's connection; pg_temp functions live for that session. With psql: \i helpers/assertions.sql

CREATE FUNCTION pg_temp.check(label text, actual bigint, expected bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF actual IS DISTINCT FROM expected THEN
    RAISE EXCEPTION '%: expected %, got %', label, expected, actual;
  END IF;
END $$;

CREATE FUNCTION pg_temp.check_text(label text, actual text, expected text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF actual IS DISTINCT FROM expected THEN
    RAISE EXCEPTION '%: expected %, got %', label, coalesce(expected, 'NULL'), coalesce(actual, 'NULL');
  END IF;
END $$;

CREATE FUNCTION pg_temp.refused(label text, stmt text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RAISE EXCEPTION '% succeeded: %', label, stmt;
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;

