"""PostgreSQL adapters: the psycopg store, the listener, migrations and admin queries."""
