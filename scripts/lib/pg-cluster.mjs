// Throwaway PostgreSQL cluster for the maintenance scripts.
//
// initdb's a fresh cluster into a temporary directory, runs `postgres` on a
// Unix socket inside that directory (no TCP listener), and removes
// everything on stop(). PostgreSQL refuses to run as root, so when this
// process is root the server (and initdb) run as the unprivileged user
// `nobody`; psql/pg clients still connect as the `postgres` superuser
// through the socket with trust authentication.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** Directory holding initdb/postgres/psql: $PG_BIN, else newest /usr/lib/postgresql/N/bin, else PATH. */
export function findPgBin() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(base, versions[0], 'bin');
  }
  return '';
}

function bin(pgBin, name) {
  return pgBin ? join(pgBin, name) : name;
}

function unprivilegedIds() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const uid = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('cannot resolve user nobody');
  return { uid, gid };
}

/**
 * Start a throwaway cluster.
 * @returns {Promise<{dir: string, host: string, port: number, user: string, pgBin: string,
 *   connect: (database?: string) => Promise<import('pg').Client>,
 *   psql: (database: string, args: string[], input?: string) => string,
 *   stop: () => Promise<void>}>}
 */
export async function startThrowawayCluster({ pgBin = findPgBin(), port = 5432 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'zulip-manage-pg-'));
  const data = join(dir, 'data');
  const ids = unprivilegedIds();
  const asUser = ids ? { uid: ids.uid, gid: ids.gid } : {};
  if (ids) chownSync(dir, ids.uid, ids.gid);

  const init = spawnSync(
    bin(pgBin, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'],
    { cwd: dir, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8' }, ...asUser },
  );
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }

  const logFile = join(dir, 'postgres.log');
  writeFileSync(logFile, '');
  if (ids) chownSync(logFile, ids.uid, ids.gid);
  const server = spawn(
    bin(pgBin, 'postgres'),
    ['-D', data, '-k', dir, '-p', String(port), '-c', 'listen_addresses=', '-c', 'fsync=off',
      '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], ...asUser },
  );
  let serverLog = '';
  server.stderr.on('data', (chunk) => { serverLog += chunk; });
  let exited = false;
  server.on('exit', () => { exited = true; });

  const connect = async (database = 'postgres') => {
    const client = new pg.Client({ host: dir, port, user: 'postgres', database });
    await client.connect();
    return client;
  };

  const stop = async () => {
    if (!exited) {
      const done = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGINT'); // fast shutdown
      await done;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // Wait until the server accepts connections.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`postgres exited during startup:\n${serverLog}`);
    }
    try {
      const c = await connect();
      await c.end();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`postgres did not start: ${err}\n${serverLog}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const psql = (database, args, input) => {
    const res = spawnSync(
      bin(pgBin, 'psql'),
      ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', String(port), '-U', 'postgres', '-d', database, ...args],
      { encoding: 'utf8', input, maxBuffer: 256 * 1024 * 1024 },
    );
    if (res.status !== 0) throw new Error(`psql ${args.join(' ')} failed:\n${res.stderr}`);
    return res.stdout;
  };

  return { dir, host: dir, port, user: 'postgres', pgBin, connect, psql, stop };
}
