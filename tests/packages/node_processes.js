// tests/packages/node_processes.js — feox counters from several processes through better-sqlite3.
//
// node_package.sh copies it into the scratch npm project next to node_app.js and runs
// `node node_processes.js <dir>`. For each journal mode (WAL, rollback journal) and each kind of
// transaction (deferred db.transaction(), .immediate()) on a fresh database file <dir>/<mode>.db:
//   - CHILDREN child processes and one worker_thread, each with its own connection and a busy
//     timeout, run ROUNDS transactions that each add 1 to a feox counter (feox_incr) and to a
//     native one (UPDATE ... RETURNING), one first in even rounds, the other in odd ones; inside
//     every transaction both return the same value (the write lock orders them alike);
//   - at the same time a child commits KILL_AFTER transactions, acknowledging each on a pipe after
//     its commit, then stops inside one more (both counters written) and is killed with SIGKILL;
//   - afterwards, on a new connection: both counters equal the acknowledged commits
//     (CHILDREN * ROUNDS + ROUNDS + KILL_AFTER), feox_check says 'ok', and so does
//     PRAGMA integrity_check.
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

// Opens a connection with feox loaded and the statements of one increment.
function openCounters(file) {
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  feox.load(db);
  const feoxIncr = db.prepare("SELECT feox_incr('c', 'hits', 1)").pluck();
  const nativeIncr = db.prepare("UPDATE n SET v = v + 1 WHERE k = 'hits' RETURNING v").pluck();
  return { db, feoxIncr, nativeIncr };
}

// One transaction body: both counters up by 1, in the order the round number says.
function incrementBoth(c, round) {
  let f;
  let n;
  if (round % 2 === 0) {
    f = c.feoxIncr.get();
    n = c.nativeIncr.get();
  } else {
    n = c.nativeIncr.get();
    f = c.feoxIncr.get();
  }
  assert.strictEqual(f, n, `round ${round}: feox_incr gave ${f}, the native counter ${n}`);
}

// Runs `rounds` transactions of the given kind; afterCommit(i) runs after each commit.
function runRounds(file, kind, rounds, afterCommit) {
  const c = openCounters(file);
  const txn = c.db.transaction((round) => incrementBoth(c, round));
  for (let i = 0; i < rounds; i++) {
    if (kind === 'immediate') txn.immediate(i);
    else txn(i);
    afterCommit(i);
  }
  return c;
}

// A child process: ROUNDS transactions, or with `kill` set KILL_AFTER acknowledged ones and then a
// transaction that stops after both writes and waits to be killed.
function childMain(args) {
  const c = runRounds(args.file, args.kind, args.kill ? KILL_AFTER : ROUNDS,
    () => fs.writeSync(1, ACK));
  if (args.kill) {
    const hang = c.db.transaction((round) => {
      incrementBoth(c, round);
      fs.writeSync(1, INSIDE);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, HANG_LIMIT_MS); // until SIGKILL
    });
    if (args.kind === 'immediate') hang.immediate(KILL_AFTER);
    else hang(KILL_AFTER);
    throw new Error('the child to kill was not killed');
  }
  c.db.close();
}

// A worker_thread: the same ROUNDS transactions on its own connection.
function workerMain() {
  runRounds(workerData.file, workerData.kind, ROUNDS, () => {}).db.close();
  parentPort.postMessage('done');
}

// Starts a child; resolves with the commits it acknowledged once it has exited (killing it with
// SIGKILL when it says it is inside its last transaction), rejects on an unexpected exit.
function runChild(args) {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--child', JSON.stringify(args)],
      { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    running.add(child);
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (args.kill && out.endsWith(INSIDE)) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      running.delete(child);
      const acked = out.split(ACK).length - 1;
      const expected = args.kill ? signal === 'SIGKILL' && out.endsWith(INSIDE) : code === 0;
      if (expected) resolve(acked);
      else reject(new Error(`child ${JSON.stringify(args)} ended with ${code ?? signal}: ${out}`));
    });
  });
}

// Runs a worker_thread to completion.
function runWorker(args) {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: args });
    let done = false;
    w.on('message', () => { done = true; });
    w.on('error', reject);
    w.on('exit', (code) => {
      if (code === 0 && done) resolve(ROUNDS);
      else reject(new Error(`worker ${JSON.stringify(args)} exited with ${code}`));
    });
  });
}

// A new database file in the given journal mode with both counters at 0.
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

// Both counters, feox_check and integrity_check, read on a new connection.
function checkTotals(file, expected, label) {
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  feox.load(db);
  const f = db.prepare("SELECT value FROM c WHERE key = 'hits'").pluck().get();
  const n = db.prepare("SELECT v FROM n WHERE k = 'hits'").pluck().get();
  assert.strictEqual(f, expected, `${label}: feox counter ${f}, expected ${expected}`);
  assert.strictEqual(n, expected, `${label}: native counter ${n}, expected ${expected}`);
  const check = db.prepare("SELECT feox_check('c')").pluck().get();
  assert.strictEqual(check, 'ok', `${label}: feox_check`);
  const integrity = db.pragma('integrity_check', { simple: true });
  assert.strictEqual(integrity, 'ok', `${label}: integrity_check`);
  db.close();
}

// One journal mode and kind of transaction: all writers at once, then the totals.
async function runCase(dir, journalMode, kind) {
  const label = `${journalMode}/${kind}`;
  const file = path.join(dir, `${journalMode}-${kind}.db`);
  createDatabase(file, journalMode);
  const writers = [];
  for (let id = 0; id < CHILDREN; id++) writers.push(runChild({ file, kind, kill: false }));
  writers.push(runWorker({ file, kind }));
  writers.push(runChild({ file, kind, kill: true }));
  const commits = await Promise.all(writers);
  assert.deepStrictEqual(commits, [...Array(CHILDREN + 1).fill(ROUNDS), KILL_AFTER],
    `${label}: acknowledged commits`);
  checkTotals(file, CHILDREN * ROUNDS + ROUNDS + KILL_AFTER, label);
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
    `${ROUNDS} transactions, 1 child killed inside one; ${Date.now() - started} ms)`);
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
