// npm run bench (bench/verify.mjs) keeps working: run briefly, it measures every
// check it names against a real deputy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

test('the benchmark runs and reports each operation', async () => {
  const script = fileURLToPath(new URL('../bench/verify.mjs', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { env: { ...process.env, BENCH_MS: '30' } });
  const rows = stdout.split('\n').filter((l) => /\/s +[0-9.]+ µs\/op$/.test(l));
  assert.deepEqual(rows.map((l) => l.replace(/ +[0-9]+ \/s +[0-9.]+ µs\/op$/, '').trim()), [
    'verify: bearer access token (ES256)',
    'verify: DPoP-bound token + proof (ES256)',
    'of which: making the proof (ES256)',
    'verify: transaction token (ES256)',
    'exchange: answered from the cache',
  ], stdout);
});
