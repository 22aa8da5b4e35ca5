-- The profile ha's PostgreSQL: one database per service (each owns its data; docs/databases.md).
-- Run once, when the image initialises an empty data folder; each service migrates its schema.
CREATE DATABASE presence;
CREATE DATABASE chat;
CREATE DATABASE calls;
CREATE DATABASE help;
