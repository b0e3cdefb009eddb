-- The portal's two database roles (README, "Deployment: database roles"). Run once, as a
-- superuser, on the portal's database; psql variables:
--   owner_role, owner_password      owns the tables; only `migrate` and `grant_runtime_role`
--                                   connect as it (the one-off `migrate` service)
--   runtime_role, runtime_password  web, worker and beat: application tables read-write, the
--                                   timeline read and append only (granted after each migrate)
--   database                        the portal's database
-- Neither role is a superuser or may create roles, so neither can switch the timeline's
-- triggers off for its session; the runtime role owns nothing, so it cannot alter or disable
-- them either.
\set ON_ERROR_STOP on

CREATE ROLE :"owner_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
CREATE ROLE :"runtime_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    NOINHERIT PASSWORD :'runtime_password';

ALTER DATABASE :"database" OWNER TO :"owner_role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"runtime_role";

\connect :"database"
-- Only the owner creates objects; the runtime role is granted USAGE by grant_runtime_role.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_role";
