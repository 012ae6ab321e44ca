import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "../../src/peers/ports.ts";

/**
 * A private PostgreSQL server for the tests: initdb into a temporary folder, pg_ctl on a free port
 * (loopback, unix socket in the same folder), stopped and removed after. initdb and postgres refuse
 * to run as root (CI runs as root), so there they run as the `postgres` user that Debian's package
 * creates, and the folder is handed to it.
 */
export interface PrivatePostgres {
  port: number;
  /** Connection URL of a database (the server's own `postgres` database by default). */
  url(database?: string): string;
  /** A fresh, empty database; its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server (its data stays) — a database outage — and starts it again on the same port. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

/** The folder of initdb/pg_ctl (Debian keeps them out of PATH), or undefined when PostgreSQL is not installed. */
export function postgresBinDir(): string | undefined {
  const has = (dir: string) => existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl"));
  try {
    const dir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    if (has(dir)) return dir;
  } catch {
    // pg_config is not installed everywhere the server is: look where Debian puts each version.
  }
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, "bin")).find(has);
}

/** Why the PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresUnavailable(): string | undefined {
  if (!postgresBinDir()) return "PostgreSQL server binaries not found (Debian package postgresql; scripts/setup.sh installs it)";
  if (process.getuid?.() === 0 && !userId("postgres")) return "running as root and there is no `postgres` user to run the server as";
  return undefined;
}

function userId(name: string): { uid: number; gid: number } | undefined {
  try {
    return { uid: Number(execFileSync("id", ["-u", name], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", name], { encoding: "utf8" })) };
  } catch {
    return undefined;
  }
}

/** `durable`: fsync as in production (benchmarks); the tests turn it off for speed. */
export async function startPostgres(opts: { durable?: boolean } = {}): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(postgresUnavailable());
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? userId("postgres") : undefined;
  if (asRoot && !owner) throw new Error(postgresUnavailable());
  const dir = mkdtempSync(join(tmpdir(), "cxr-pg-"));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const run = (tool: string, args: string[]) => {
    const cmd = owner ? "runuser" : join(bin, tool);
    const argv = owner ? ["-u", "postgres", "--", join(bin, tool), ...args] : args;
    try {
      return execFileSync(cmd, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${tool} ${args.join(" ")}: ${e.stderr || e.stdout || e.message}`);
    }
  };
  const data = join(dir, "data");
  let port = await freePort();
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
  // Durability is not under test in the tests: fsync off keeps the suite fast on CI's disks.
  const fast = opts.durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";
  const start = () => run("pg_ctl", ["-D", data, "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1${fast}`, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"]);
  // The free port may be taken by another process before the server binds it: then again on another (three tries).
  for (let attempt = 1; ; attempt++) {
    try {
      start();
      break;
    } catch (err) {
      if (attempt === 3) throw err;
      port = await freePort();
    }
  }
  let n = 0;
  const url = (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    async createDatabase() {
      const name = `cxr_${process.pid}_${++n}`;
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    pause() {
      run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
    },
    resume: start,
    async stop() {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
