// Starts a real deputy for the tests: the `deputy` on PATH, or DEPUTY_BIN, or one
// built from this repository (go build) when neither exists. Each call gets its own
// directory, SQLite database and port; stop() ends the process and removes them.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import assert from 'node:assert/strict';
import { VerifyError } from '../dist/errors.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
let built;

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

// deputyBinary finds or builds the binary once per test process.
export function deputyBinary() {
  if (process.env.DEPUTY_BIN) return process.env.DEPUTY_BIN;
  const found = onPath('deputy');
  if (found) return found;
  if (!built) {
    const dir = mkdtempSync(join(tmpdir(), 'deputy-ts-bin-'));
    built = join(dir, 'deputy');
    execFileSync('go', ['build', '-o', built, './cmd/deputy'], { cwd: repo, stdio: 'inherit' });
  }
  return built;
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

// startDeputy writes config (a JS object: deputy's YAML configuration keys; issuer,
// listen and storage are filled in) as JSON, which YAML reads, starts `deputy serve`
// and waits until /readyz answers 200. It returns { issuer, tokenEndpoint, dir,
// stop }.
export async function startDeputy(config = {}) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'deputy-ts-'));
  const full = {
    issuer,
    listen: `127.0.0.1:${port}`,
    storage: { driver: 'sqlite', dsn: join(dir, 'deputy.db') },
    ...config,
  };
  const path = join(dir, 'deputy.json.yaml');
  writeFileSync(path, JSON.stringify(full, null, 2));
  const child = spawn(deputyBinary(), ['serve', '--config', path], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEPUTY_'))),
  });
  let log = '';
  child.stdout.on('data', (b) => { log += b; });
  child.stderr.on('data', (b) => { log += b; });
  let exited = false;
  child.once('exit', () => { exited = true; });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`deputy exited while starting:\n${log}`);
    try {
      const r = await fetch(`${issuer}/readyz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`deputy did not become ready in 20 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    dir,
    log: () => log,
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await done;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// clientCredentials gets an access token for clientId (client_secret_basic).
export async function clientCredentials(d, clientId, secret, extra = {}, headers = {}) {
  const r = await fetch(d.tokenEndpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64'),
      ...headers,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...extra }),
  });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`client_credentials of ${clientId}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

// rejects asserts that p fails with a VerifyError of code and status whose
// description contains want.
export async function rejects(p, code, status, want) {
  let err;
  try {
    const got = await p;
    assert.fail(`accepted: ${JSON.stringify(got?.subject)}; want ${code} "${want}"`);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof VerifyError, `not a VerifyError: ${err?.stack ?? err}`);
  assert.equal(err.code, code, `code of "${err.description}"`);
  assert.equal(err.status, status);
  assert.ok(err.description.includes(want), `description "${err.description}", want it to say "${want}"`);
  return err;
}
