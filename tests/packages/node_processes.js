// tests/packages/node_processes.js — feox counters from several processes through better-sqlite3.
//
// node_package.sh copies it into the scratch npm project next to node_app.js and runs
// `node node_processes.js <dir>`. For each journal mode (WAL, rollback journal) and each kind of
// transaction (deferred db.transaction(), .immediate()), on a new database file in <dir>, at once:
//   - CHILDREN child processes and one worker_thread, each with its own connection and a busy
//     timeout, run ROUNDS transactions; each adds 1 to a shared counter and to the writer's own,
//     both in a feox table (feox_incr) and in a native one (an upsert with RETURNING), feox first
//     in even rounds and native first in odd ones; the feox and native values returned must agree;
//   - a child acknowledges KILL_AFTER commits on a pipe, then stops inside one more transaction
//     (its writes done) and is killed there with SIGKILL;
//   - another child is killed with SIGKILL wherever it is once it has acknowledged KILL_AFTER
//     commits (waiting for the lock, inside a transaction, committing, or before its ack).
// Afterwards, on a new connection: the feox and native tables hold the same counters; each
// writer's own counter equals the commits it acknowledged (the one killed at a random point: or
// one more), the shared counter is their sum, and feox_check and PRAGMA integrity_check say 'ok'.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { fork } = require('child_process');
const { Worker, isMainThread, workerData, parentPort } = require('worker_threads');
const Database = require('better-sqlite3');
const feox = require('feox');

const CHILDREN = 3;
const ROUNDS = 60;
const KILL_AFTER = 7;
// As in node_app.js: several connections committing in rollback-journal mode on a busy machine can
// wait longer than better-sqlite3's default 5 s.
const BUSY_TIMEOUT_MS = 60000;
const ACK = 'commit\n';
const INSIDE = 'inside\n';
// How long the child to kill waits inside its transaction before giving up (the parent is gone).
const HANG_LIMIT_MS = 120000;
// Children still running, killed if the test fails so none outlives it.
const running = new Set();

// Opens a connection with feox loaded and the statements of one increment: the shared counter
// 'hits' and the writer's own 'w:<name>', each in the feox table c and the native table n.
function openCounters(file) {
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  feox.load(db);
  const feoxIncr = db.prepare('SELECT feox_incr(\'c\', ?, 1)').pluck();
  const nativeIncr = db.prepare(
    'INSERT INTO n(k, v) VALUES (?, 1) ON CONFLICT(k) DO UPDATE SET v = v + 1 RETURNING v').pluck();
  return { db, feoxIncr, nativeIncr };
}

// Adds 1 to a key in both tables, feox first or native first; both must return the same value.
function incrementKey(c, key, feoxFirst) {
  let f;
  let n;
  if (feoxFirst) {
    f = c.feoxIncr.get(key);
    n = c.nativeIncr.get(key);
  } else {
    n = c.nativeIncr.get(key);
    f = c.feoxIncr.get(key);
  }
  assert.strictEqual(f, n, `${key}: feox_incr gave ${f}, the native counter ${n}`);
}

// One transaction body: the shared and the writer's own counters up by 1 in both tables, feox
// first in even rounds (its first use of the table may come first in a deferred transaction).
function incrementAll(c, name, round) {
  incrementKey(c, 'hits', round % 2 === 0);
  incrementKey(c, `w:${name}`, round % 2 === 0);
}

// Runs `rounds` transactions of the given kind; afterCommit() runs after each commit.
function runRounds(args, rounds, afterCommit) {
  const c = openCounters(args.file);
  const txn = c.db.transaction((round) => incrementAll(c, args.name, round));
  for (let i = 0; i < rounds; i++) {
    if (args.kind === 'immediate') txn.immediate(i);
    else txn(i);
    afterCommit();
  }
  return c;
}

// A child process, acknowledging each commit on its stdout (a pipe) once it returned. role 'full':
// ROUNDS transactions; 'cut': the same, killed by the parent wherever it is once KILL_AFTER are
// acknowledged; 'hang': KILL_AFTER, then one that stops after its writes until it is killed.
function childMain(args) {
  const ack = () => fs.writeSync(1, ACK);
  const c = runRounds(args, args.role === 'hang' ? KILL_AFTER : ROUNDS, ack);
  if (args.role === 'hang') {
    const hang = c.db.transaction((round) => {
      incrementAll(c, args.name, round);
      fs.writeSync(1, INSIDE);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, HANG_LIMIT_MS); // until SIGKILL
    });
    if (args.kind === 'immediate') hang.immediate(KILL_AFTER);
    else hang(KILL_AFTER);
    throw new Error('the child to kill was not killed');
  }
  c.db.close();
}

// A worker_thread: ROUNDS transactions on its own connection; posts 'done' or the error's stack
// (an SqliteError thrown out of a worker reaches the parent without its message).
function workerMain() {
  try {
    runRounds(workerData, ROUNDS, () => {}).db.close();
    parentPort.postMessage('done');
  } catch (e) {
    parentPort.postMessage(String(e.stack));
  }
}

// Whether a child's output says it is time to kill it.
function killNow(role, out) {
  if (role === 'hang') return out.endsWith(INSIDE);
  return role === 'cut' && out.split(ACK).length - 1 >= KILL_AFTER;
}

// Starts a child; resolves with the commits it acknowledged once it has exited (killed with
// SIGKILL when killNow says so), rejects on an unexpected end.
function runChild(args) {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--child', JSON.stringify(args)],
      { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    running.add(child);
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (killNow(args.role, out)) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      running.delete(child);
      const acked = out.split(ACK).length - 1;
      const expected = {
        full: code === 0,
        hang: signal === 'SIGKILL' && out.endsWith(INSIDE),
        cut: signal === 'SIGKILL' || code === 0, // it may finish before the signal lands
      }[args.role];
      if (expected) resolve(acked);
      else reject(new Error(`child ${JSON.stringify(args)} ended with ${code ?? signal}: ${out}`));
    });
  });
}

// Runs a worker_thread to completion; resolves with the commits it made (ROUNDS).
function runWorker(args) {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: args });
    let said = 'nothing';
    w.on('message', (m) => { said = m; });
    w.on('error', reject);
    w.on('exit', (code) => {
      if (code === 0 && said === 'done') resolve(ROUNDS);
      else reject(new Error(`worker ${JSON.stringify(args)} exited with ${code}: ${said}`));
    });
  });
}

// A new database file in the given journal mode with the shared counters at 0.
function createDatabase(file, journalMode) {
  assert.ok(!fs.existsSync(file), `${file} exists already`);
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  feox.load(db);
  assert.strictEqual(db.pragma(`journal_mode = ${journalMode}`, { simple: true }), journalMode);
  db.exec(`CREATE VIRTUAL TABLE c USING feox;
           CREATE TABLE n(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
           INSERT INTO n VALUES ('hits', 0);`);
  db.prepare("SELECT feox_incr('c', 'hits', 0)").get();
  db.close();
}

// Reads every counter on a new connection: the feox and native tables hold the same keys and
// values, feox_check and integrity_check say 'ok'; returns the counters as { key: value }.
function readCounters(file, label) {
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  feox.load(db);
  const f = db.prepare('SELECT key, value FROM c ORDER BY key').all();
  const n = db.prepare('SELECT k AS key, v AS value FROM n ORDER BY k').all();
  assert.deepStrictEqual(f, n, `${label}: the feox and the native counters differ`);
  const check = db.prepare("SELECT feox_check('c')").pluck().get();
  assert.strictEqual(check, 'ok', `${label}: feox_check`);
  const integrity = db.pragma('integrity_check', { simple: true });
  assert.strictEqual(integrity, 'ok', `${label}: integrity_check`);
  db.close();
  return Object.fromEntries(f.map((r) => [r.key, r.value]));
}

// One journal mode and kind of transaction: all writers at once, then the counters.
async function runCase(dir, journalMode, kind) {
  const label = `${journalMode}/${kind}`;
  const file = path.join(dir, `${journalMode}-${kind}.db`);
  createDatabase(file, journalMode);
  const children = [...Array(CHILDREN).keys()].map((id) => ({ name: `child${id}`, role: 'full' }));
  children.push({ name: 'hang', role: 'hang' }, { name: 'cut', role: 'cut' });
  const acked = await Promise.all([
    runWorker({ file, kind, name: 'worker' }),
    ...children.map((child) => runChild({ file, kind, ...child })),
  ]);
  const got = readCounters(file, label);
  const names = ['worker', ...children.map((child) => child.name)];
  names.forEach((name, i) => {
    const committed = got[`w:${name}`] ?? 0;
    if (name === 'cut') {
      // Killed anywhere: after its last acknowledged commit, or between a commit and its ack.
      assert.ok(committed === acked[i] || committed === acked[i] + 1,
        `${label}: cut committed ${committed}, acknowledged ${acked[i]}`);
    } else {
      assert.strictEqual(committed, acked[i], `${label}: ${name}: committed != acknowledged`);
      assert.strictEqual(acked[i], name === 'hang' ? KILL_AFTER : ROUNDS, `${label}: ${name}`);
    }
  });
  const sum = names.reduce((total, name) => total + (got[`w:${name}`] ?? 0), 0);
  assert.strictEqual(got.hits, sum, `${label}: the shared counter is not the sum of the writers'`);
  return label;
}

async function main() {
  const dir = process.argv[2];
  const started = Date.now();
  const done = [];
  for (const journalMode of ['wal', 'delete']) {
    for (const kind of ['deferred', 'immediate']) done.push(await runCase(dir, journalMode, kind));
  }
  console.log(`node processes: ok (${done.join(', ')}: ${CHILDREN} children + 1 worker x ` +
    `${ROUNDS} transactions, 2 children killed; ${Date.now() - started} ms)`);
}

if (!isMainThread) {
  workerMain();
} else if (process.argv[2] === '--child') {
  childMain(JSON.parse(process.argv[3]));
} else {
  main().catch((e) => {
    console.error('node processes FAILED:', e);
    for (const child of running) child.kill('SIGKILL');
    process.exit(1);
  });
}
