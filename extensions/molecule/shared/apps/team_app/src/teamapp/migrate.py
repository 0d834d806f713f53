"""The team's database migrations: ``python -m teamapp.migrate``, run once before a new release serves.

There is no database in the tests: each run appends what it ran with to $TEAM_MIGRATION_LOG instead.
"""

import os
import pathlib
import sys
import time


def main():
    if not os.environ.get("TEAM_DB_PASSWORD"):
        raise SystemExit("TEAM_DB_PASSWORD not set: cannot reach the database")
    log = pathlib.Path(os.environ.get("TEAM_MIGRATION_LOG", "/tmp/teamapp-migrations.log"))
    with log.open("a", encoding="utf-8") as out:
        out.write(f"{time.time():.3f} {os.getcwd()} {sys.prefix}\n")


if __name__ == "__main__":
    main()
