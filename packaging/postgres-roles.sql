-- packaging/postgres-roles.sql: least-privilege PostgreSQL roles for the arbosync agent.
--
-- Three roles (reliability-security.md §3.5, target R20):
--   owner  (arbosync_owner)   owns the schema and its tables; runs the migrations. Not used by the
--                             running service. Only this role can CREATE, ALTER, DROP or TRUNCATE.
--   writer (arbosync_writer)  what the service connects as: USAGE on the schema and SELECT,
--                             INSERT, UPDATE, DELETE on the sync tables (DELETE: the agent purges
--                             rows when an employer's options are narrowed). Read-only on
--                             schema_migrations. No DDL, no TRUNCATE, no other schema.
--   reader (arbosync_reader)  reporting: SELECT on the sync tables, except the employee.bsn column.
--
-- Run it as a superuser (or the database owner with CREATEROLE), connected to the arbodienst
-- database, with ON_ERROR_STOP. It is idempotent; run it
--   1. once before the agent's first start (creates the roles, the schema and default grants),
--   2. again after the owner ran the migrations, and after every upgrade that adds a migration
--      (grants on the tables that exist now; the reader's column list of `employee`).
--
--   psql -d arbodienst -v ON_ERROR_STOP=1 -f postgres-roles.sql
--   # names other than the defaults:
--   psql -d arbodienst -v ON_ERROR_STOP=1 -v owner=o -v writer=w -v reader=r -v schema=s -f ...
--
-- Migrations: the agent migrates when it connects, and skips that (no DDL at all) when the schema
-- is already at its version. So, on first install and after an upgrade that brings a migration,
-- start it once with the owner role, e.g. a copy of agent.toml whose [database] url names
-- arbosync_owner and that has no active employer:
--   arbosync-agent sync --once --config /etc/arbosync/agent-owner.toml
-- then re-run this file, and run the service with the writer:
--   [database] url = "postgres://arbosync_writer@db.internal/arbodienst"   schema = "arbosync"
-- Started as the writer against a schema that still needs a migration, the agent refuses to start
-- with "permission denied" naming the migration; nothing is half-applied (one transaction).
--
-- Passwords are not set here (no secrets in files): use `\password arbosync_writer` in psql, or
-- peer/certificate authentication in pg_hba.conf.

\set ON_ERROR_STOP on
\if :{?owner}
\else
  \set owner arbosync_owner
\endif
\if :{?writer}
\else
  \set writer arbosync_writer
\endif
\if :{?reader}
\else
  \set reader arbosync_reader
\endif
\if :{?schema}
\else
  \set schema arbosync
\endif

BEGIN;

-- 1. The roles: plain logins, no superuser, no CREATEDB/CREATEROLE, nothing inherited.
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', r)
  FROM (VALUES (:'owner'), (:'writer'), (:'reader')) AS v(r)
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r)
\gexec

-- 2. Nobody but the owner creates objects. PostgreSQL 15 no longer gives PUBLIC the CREATE right
--    on `public`, but a database upgraded from an older version keeps the old, open ACL.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Optional, in a database used only by arbosync: no temporary tables for anyone else either.
-- REVOKE TEMPORARY ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"owner", :"writer", :"reader";

-- 3. A dedicated schema that belongs to the owner: only the owner may create, alter or drop
--    tables in it (CREATE on the schema is not granted to anyone else).
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"owner";
ALTER SCHEMA :"schema" OWNER TO :"owner";
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
GRANT USAGE ON SCHEMA :"schema" TO :"writer", :"reader";

-- 4. Tables the owner creates later (a migration in an upgrade) are writable by the writer at
--    once, so the service keeps working after the owner migrated. The reader gets nothing by
--    default: a new table stays hidden from reporting until this file is run again (fail closed).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema"
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"writer";

-- 5. The tables that exist now (after the migrations).
--    Writer: DML on every table; only SELECT on schema_migrations. (The journal's `seq` is an
--    identity column: inserting needs no privilege on its sequence.)
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I',
              :'schema', :'writer')
\gexec
SELECT format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %I.%I FROM %I',
              :'schema', c.relname, :'writer')
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = to_regnamespace(:'schema') AND c.relname = 'schema_migrations'
\gexec

--    Reader: SELECT on every table but employee, whose columns it may read except bsn.
--    (Wages are in employment_salary_period: leave that table out here too if reporting must
--    not see them.)
SELECT format('GRANT SELECT ON %I.%I TO %I', :'schema', c.relname, :'reader')
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = to_regnamespace(:'schema') AND c.relkind IN ('r', 'p', 'v')
   AND c.relname <> 'employee'
\gexec
SELECT format('REVOKE SELECT ON %I.employee FROM %I', :'schema', :'reader'),
       format('GRANT SELECT (%s) ON %I.employee TO %I',
              string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), :'schema', :'reader')
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = to_regclass(format('%I.employee', :'schema'))
   AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'bsn'
HAVING count(*) > 0
\gexec

COMMIT;
