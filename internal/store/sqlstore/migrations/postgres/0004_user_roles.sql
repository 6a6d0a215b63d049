-- deputy schema, version 4 (PostgreSQL): the roles of a local account
-- (users[].roles, `deputy users add --role`), e.g. 'auditor' for the audit
-- explorer. A list like the others (0001_init.sql: ' a b ', '' = none), sorted,
-- without repeats, read and written with the account's row in one statement. Every
-- account stored before has none. Who holds a role:
--   SELECT username FROM users WHERE strpos(roles, ' auditor ') > 0;

ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';
