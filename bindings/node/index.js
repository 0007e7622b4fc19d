// bindings/node/index.js — load the feox SQLite extension into a better-sqlite3 Database.
//
//   const Database = require('better-sqlite3');
//   const feox = require('feox');
//   const db = new Database('app.db');
//   feox.load(db);                 // every connection that uses a feox table loads it
//   db.exec('CREATE VIRTUAL TABLE kv USING feox');
//
// The package bundles feox.so (it needs the shared libraries it was linked with: Debian's libck0,
// libcjson1 and libxxhash0). load() takes any database object with a loadExtension(path) method.
'use strict';

const fs = require('fs');
const path = require('path');

// The bundled extension's full path, feox.so included (loadExtension takes it as it is).
function getLoadablePath() {
  return path.join(__dirname, 'feox.so');
}

// Loads feox into db (a better-sqlite3 Database): db.loadExtension(getLoadablePath()).
function load(db) {
  if (!db || typeof db.loadExtension !== 'function') {
    throw new TypeError('feox.load(db): db must be a better-sqlite3 Database (no loadExtension)');
  }
  const file = getLoadablePath();
  if (!fs.existsSync(file)) {
    throw new Error(`feox: the bundled extension is missing: ${file}`);
  }
  db.loadExtension(file);
}

module.exports = { load, getLoadablePath };
