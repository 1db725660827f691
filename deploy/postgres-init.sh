#!/bin/sh
# First start of the compose database: the schema owner and the runtime role (no SUPERUSER,
# no BYPASSRLS: Licentia refuses to start otherwise), and the database.
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE licentia_owner LOGIN PASSWORD '${LICENTIA_OWNER_PASSWORD}';
CREATE ROLE licentia_app LOGIN PASSWORD '${LICENTIA_APP_PASSWORD}' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE licentia OWNER licentia_owner;
GRANT CONNECT ON DATABASE licentia TO licentia_app;
SQL
