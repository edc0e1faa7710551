/**
 * The jobs table: its DDL as versioned migrations, and running the ones a database has not seen
 * (SQLite's user_version records how far it is).
 */
import type Database from 'better-sqlite3';
import { GabeError } from '../service/errors.js';

/**
 * Versioned migrations: index i brings the schema from user_version i to i + 1. Append only; a shipped
 * migration is never edited, because users' databases already ran it.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     type TEXT NOT NULL,
     status TEXT NOT NULL,
     request TEXT NOT NULL,
     client_ip TEXT NOT NULL,
     video_name TEXT NOT NULL,
     created_at TEXT NOT NULL,
     started_at TEXT,
     completed_at TEXT,
     updated_at TEXT NOT NULL,
     result TEXT,
     error TEXT,
     error_code TEXT,
     progress REAL NOT NULL DEFAULT 0,
     total_segments INTEGER NOT NULL DEFAULT 0,
     downloaded_segments INTEGER NOT NULL DEFAULT 0,
     downloaded_bytes INTEGER NOT NULL DEFAULT 0,
     total_bytes INTEGER,
     speed_bps REAL NOT NULL DEFAULT 0,
     eta_seconds REAL,
     attempts INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX jobs_status_seq ON jobs (status, seq);
   CREATE INDEX jobs_client_status ON jobs (client_ip, status);
   CREATE INDEX jobs_completed_at ON jobs (completed_at);`,
  // 2: jobs belong to the API key that submitted them (a SHA-256 of it: the key itself is never stored).
  `ALTER TABLE jobs ADD COLUMN owner TEXT;
   CREATE INDEX jobs_owner_status ON jobs (owner, status);`,
  // 3: live recordings report the seconds of media recorded so far.
  `ALTER TABLE jobs ADD COLUMN recorded_seconds REAL;`,
];

/** Brings the database's schema up to the newest migration; refuses one a newer Gabe wrote. */
export function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new GabeError(
      'CONFIG',
      `the database was written by a newer Gabe (schema ${version}, this one knows ${MIGRATIONS.length})`,
    );
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
