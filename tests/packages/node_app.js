// tests/packages/node_app.js — a small app against the installed feox npm package.
//
// node_package.sh copies it into a scratch npm project holding the feox tarball and better-sqlite3
// and runs `node node_app.js <dir>`. Every step asserts its result:
//   1. require('feox') comes from the project's node_modules; getLoadablePath() names its feox.so;
//   2. on a file database <dir>/app.db: a feox table, a transaction that throws (rolled back) and
//      one that commits, feox_incr inside a transaction, TTL, a range query, and how JS numbers
//      bind (REAL; BigInt gives INTEGER);
//   3. WORKERS worker_threads each open their own connection to app.db, load feox and call
//      feox_incr('kv', 'hits', 1) ROUNDS times: all connections share the one store, so the
//      returned values are exactly 1..WORKERS*ROUNDS, each once, and every per-worker key equals
//      ROUNDS;
//   4. typed values round trip through better-sqlite3 with safeIntegers: BigInt (the 64-bit
//      limits), Buffer (empty, with NUL bytes), null, REAL, TEXT (empty, with NUL and non-ASCII),
//      each read back with its value and SQL type, on this connection and a new one, and
//      feox_incr on BigInts beyond 2^53 and at the 64-bit limit;
//   5. feox.load() refuses an object without loadExtension with a TypeError.
'use strict';

const assert = require('assert');
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const Database = require('better-sqlite3');
const feox = require('feox');

const WORKERS = 4;
const ROUNDS = 500;
// better-sqlite3 waits 5 s for a lock by default; four connections committing 1000 times each in
// rollback-journal mode on a busy machine can starve one for longer (a native table as well), so
// wait as long as the Python tests do.
const BUSY_TIMEOUT_MS = 60000;

// A worker: its own connection, ROUNDS shared increments; posts the values it got back.
function workerMain() {
  const db = new Database(workerData.db, { timeout: BUSY_TIMEOUT_MS });
  feox.load(db);
  const hit = db.prepare("SELECT feox_incr('kv', 'hits', 1) AS n");
  const mine = db.prepare("SELECT feox_incr('kv', ?, 1) AS n");
  const got = [];
  for (let i = 0; i < ROUNDS; i++) {
    got.push(hit.get().n);
    mine.get(`worker:${workerData.id}`);
  }
  db.close();
  parentPort.postMessage(got);
}

// Runs one worker to completion; resolves with the values it posted.
function runWorker(db, id) {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { db, id } });
    let result;
    w.on('message', (m) => { result = m; });
    w.on('error', reject);
    w.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`exit ${code}`))));
  });
}

// Single-connection checks: transactions, TTL, a range query, number binding.
function singleConnection(db) {
  db.exec('CREATE VIRTUAL TABLE kv USING feox');
  const put = db.prepare('INSERT INTO kv(key, value) VALUES (?, ?)');
  const count = db.prepare('SELECT count(*) AS n FROM kv').pluck();
  put.run('user:1', 'Ada');
  put.run('user:2', 'Bob');

  const failing = db.transaction(() => {
    put.run('user:3', 'Cy');
    db.prepare("SELECT feox_incr('kv', 'visits', 5)").get();
    throw new Error('abort');
  });
  assert.throws(failing, /abort/);
  assert.strictEqual(count.get(), 2, 'a thrown transaction left rows behind');

  const incr = db.prepare("SELECT feox_incr('kv', 'visits', 1) AS n").pluck();
  const committed = db.transaction(() => {
    put.run('user:3', 'Cy');
    return [incr.get(), incr.get(), incr.get()];
  });
  assert.deepStrictEqual(committed(), [1, 2, 3]);

  db.prepare('INSERT INTO kv(key, value, ttl) VALUES (?, ?, ?)')
    .run('session:a', Buffer.from([0, 255]), 3600);
  const ttl = db.prepare("SELECT ttl FROM kv WHERE key = 'session:a'").pluck().get();
  assert.ok(ttl >= 3500 && ttl <= 3600, `ttl ${ttl}`);
  const rows = db
    .prepare("SELECT key, value FROM kv WHERE key BETWEEN 'user:' AND 'user:~' ORDER BY key DESC")
    .all();
  assert.deepStrictEqual(rows.map((r) => r.key), ['user:3', 'user:2', 'user:1']);

  put.run('n:real', 5);
  put.run('n:int', 5n);
  const type = db.prepare('SELECT typeof(value) FROM kv WHERE key = ?').pluck();
  assert.strictEqual(type.get('n:real'), 'real', 'JS numbers bind as REAL');
  assert.strictEqual(type.get('n:int'), 'integer', 'BigInt binds as INTEGER');
  assert.strictEqual(db.prepare("SELECT feox_incr('kv', 'n:int', ?)").pluck().get(2), 7);
  // An integral REAL counts as that integer (better-sqlite3 binds JS numbers as REAL).
  assert.strictEqual(db.prepare("SELECT feox_incr('kv', 'n:real', 1)").pluck().get(), 6);
  assert.strictEqual(type.get('n:real'), 'integer', 'the result is stored as INTEGER');
  put.run('n:frac', 0.5);
  assert.throws(() => db.prepare("SELECT feox_incr('kv', 'n:frac', 1)").get(),
    /not a 64-bit integer|whole number|fraction/);
}

// Typed values: each one stored through a bound parameter comes back equal, with its SQL type, on
// the connection that wrote it (the cache) and on a new one (read from the shadow tables).
const TYPED = [
  ['t:max', 2n ** 63n - 1n, 'integer'],
  ['t:min', -(2n ** 63n), 'integer'],
  ['t:zero', 0n, 'integer'],
  ['t:blob', Buffer.from([0, 1, 0, 255]), 'blob'],
  ['t:empty-blob', Buffer.alloc(0), 'blob'],
  ['t:null', null, 'null'],
  ['t:real', 1.5, 'real'],
  ['t:tiny', -5e-324, 'real'],
  ['t:text', 'h\u00e9llo \u{1F30D}', 'text'],
  ['t:nul-text', 'a\u0000b', 'text'],
  ['t:empty-text', '', 'text'],
];

function checkTypedValues(db) {
  const get = db.prepare('SELECT value, typeof(value) AS type FROM kv WHERE key = ?');
  get.safeIntegers();
  for (const [key, value, type] of TYPED) {
    const row = get.get(key);
    assert.ok(row, `${key}: no row`);
    assert.strictEqual(row.type, type, `${key}: SQL type`);
    assert.deepStrictEqual(row.value, value, `${key}: value`);
  }
}

function typedValues(db, file) {
  const put = db.prepare('INSERT INTO kv(key, value) VALUES (?, ?)').safeIntegers();
  db.transaction(() => TYPED.forEach(([key, value]) => put.run(key, value)))();
  checkTypedValues(db);
  // feox_incr with BigInt in and out: exact beyond 2^53, saturating at the 64-bit limit.
  const incr = db.prepare('SELECT feox_incr(\'kv\', ?, ?)').pluck();
  incr.safeIntegers();
  assert.strictEqual(incr.get('t:big', 2n ** 53n), 2n ** 53n);
  assert.strictEqual(incr.get('t:big', 1n), 2n ** 53n + 1n);
  assert.strictEqual(incr.get('t:max', 1n), 2n ** 63n - 1n);
  const other = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  feox.load(other);
  checkTypedValues(other);
  const big = other.prepare("SELECT value FROM kv WHERE key = 't:big'").pluck();
  big.safeIntegers();
  assert.strictEqual(big.get(), 2n ** 53n + 1n);
  // Without safeIntegers an INTEGER reads as a JS number.
  assert.strictEqual(other.prepare("SELECT value FROM kv WHERE key = 't:zero'").pluck().get(), 0);
  other.close();
}

async function main() {
  const dir = process.argv[2];
  assert.ok(require.resolve('feox').startsWith(path.join(process.cwd(), 'node_modules')),
    `feox resolved to ${require.resolve('feox')}`);
  assert.ok(feox.getLoadablePath().endsWith(path.join('node_modules', 'feox', 'feox.so')));
  assert.throws(() => feox.load({}), TypeError);

  const file = path.join(dir, 'app.db');
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  feox.load(db);
  singleConnection(db);
  typedValues(db, file);

  const ids = Array.from({ length: WORKERS }, (_, id) => id);
  const results = await Promise.all(ids.map((id) => runWorker(file, id)));
  const all = results.flat().sort((a, b) => a - b);
  assert.strictEqual(all.length, WORKERS * ROUNDS);
  all.forEach((v, i) => assert.strictEqual(v, i + 1, 'feox_incr values are not 1..N exactly once'));
  const value = db.prepare('SELECT value FROM kv WHERE key = ?').pluck();
  assert.strictEqual(value.get('hits'), WORKERS * ROUNDS);
  for (let id = 0; id < WORKERS; id++) assert.strictEqual(value.get(`worker:${id}`), ROUNDS);
  db.close();
  console.log(`node package app: ok (${WORKERS} workers x ${ROUNDS} feox_incr)`);
}

if (isMainThread) {
  main().catch((e) => {
    console.error('node package app FAILED:', e);
    process.exit(1);
  });
} else {
  workerMain();
}
