<?php
// tests/clients/feox_test.php — feox as a PHP user drives it: Debian's php-cli + php-sqlite3 (the
// SQLite3 class; PDO cannot load extensions before PHP 8.4), the extension loaded with
// SQLite3::loadExtension, a database file in WAL and in the default rollback-journal mode; helper
// processes are made with pcntl_fork.
//
// Usage: php -d sqlite3.extension_dir=$(dirname EXT) feox_test.php EXT DIR
//   EXT: the extension's path without ".so" (SQLite3::loadExtension loads only from
//   sqlite3.extension_dir, a php.ini setting, so the directory is given there too);
//   DIR: an empty scratch directory. tests/clients/run.sh runs it.
// Exits 1 with "FAIL (php): ..." on the first mismatch.

if ($argc < 3) {
    fwrite(STDERR, "usage: php -d sqlite3.extension_dir=\$(dirname EXT) feox_test.php EXT DIR\n");
    exit(2);
}
[, $EXT, $DIR] = $argv;
if (realpath(ini_get('sqlite3.extension_dir')) !== realpath(dirname($EXT))) {
    fwrite(STDERR, "php: run with -d sqlite3.extension_dir=" . dirname($EXT) . "\n");
    exit(2);
}
define('FEOX_SO', basename($EXT) . '.so');

function fail(string $msg): void
{
    fwrite(STDERR, "FAIL (php): $msg\n");
    exit(1);
}

function expect(string $what, $got, $want): void
{
    if ($got !== $want) {
        fail("$what: got " . var_export($got, true) . ", want " . var_export($want, true));
    }
}

// $f must throw; the connection's last primary result code must be $code and the message must
// contain $text.
function expect_error(SQLite3 $db, int $code, string $text, callable $f): void
{
    try {
        $f();
    } catch (Exception $e) {
        $got = $db->lastErrorCode();
        if ($got !== $code || strpos($e->getMessage(), $text) === false) {
            fail("wrong error: code $got ({$e->getMessage()}), want code $code containing '$text'");
        }
        return;
    }
    fail("expected an error (code $code, $text), nothing was thrown");
}

function open_db(string $file, int $flags = SQLITE3_OPEN_READWRITE | SQLITE3_OPEN_CREATE): SQLite3
{
    $db = new SQLite3($file, $flags);
    $db->enableExceptions(true);
    if (!$db->loadExtension(FEOX_SO)) {
        fail('loadExtension failed');
    }
    $db->busyTimeout(20000);
    return $db;
}

// Runs a statement with bound values and returns every row (numeric arrays). Only for
// statements without side effects: SQLite3Stmt::execute() steps the statement once and resets it,
// and fetchArray() then runs it again from the start (so a SELECT feox_incr(...) would count twice).
function rows(SQLite3 $db, string $sql, array $params = []): array
{
    $stmt = $db->prepare($sql);
    foreach ($params as $i => $v) {
        $stmt->bindValue($i + 1, $v, is_array($v) ? SQLITE3_BLOB : php_type($v));
    }
    $res = $stmt->execute();
    $out = [];
    while (($row = $res->fetchArray(SQLITE3_NUM)) !== false) {
        $out[] = $row;
    }
    $stmt->close();
    return $out;
}

function php_type($v): int
{
    if (is_int($v)) return SQLITE3_INTEGER;
    if (is_float($v)) return SQLITE3_FLOAT;
    if (is_null($v)) return SQLITE3_NULL;
    return SQLITE3_TEXT;
}

// Runs a write (INSERT/UPDATE/DELETE, or a writing function whose result is not needed) with
// bound values exactly once: execute() without fetchArray().
function run(SQLite3 $db, string $sql, array $params = [], array $types = []): void
{
    $stmt = $db->prepare($sql);
    foreach ($params as $i => $v) {
        $stmt->bindValue($i + 1, $v, $types[$i] ?? php_type($v));
    }
    $stmt->execute();
    $stmt->close();
}

function value_of(SQLite3 $db, string $key, string $table = 'kv')
{
    return $db->querySingle("SELECT value FROM $table WHERE key = '" . SQLite3::escapeString($key) . "'");
}

// A writing function called once, its result returned: querySingle steps the statement once.
function call(SQLite3 $db, string $sql)
{
    return $db->querySingle($sql);
}

function fork_child(callable $f): int
{
    $pid = pcntl_fork();
    if ($pid < 0) {
        fail('pcntl_fork failed');
    }
    if ($pid === 0) {
        try {
            $f();
        } catch (Throwable $e) {
            fwrite(STDERR, "FAIL (php child): " . $e->getMessage() . "\n" . $e->getTraceAsString() . "\n");
            exit(1);
        }
        exit(0); // a normal exit: destructors run, nothing was closed first
    }
    return $pid;
}

function expect_child(int $pid, string $what): void
{
    pcntl_waitpid($pid, $status);
    if (!pcntl_wifexited($status) || pcntl_wexitstatus($status) !== 0) {
        fail("$what: child failed (status $status)");
    }
}

function types_round_trip(SQLite3 $db): void
{
    $values = [
        't:int' => [42, SQLITE3_INTEGER, 'integer'], 't:big' => [PHP_INT_MAX, SQLITE3_INTEGER, 'integer'],
        't:min' => [PHP_INT_MIN, SQLITE3_INTEGER, 'integer'], 't:real' => [2.5, SQLITE3_FLOAT, 'real'],
        't:blob' => ["\x00\xff\x7f\x80", SQLITE3_BLOB, 'blob'], 't:text' => ['héllo wörld', SQLITE3_TEXT, 'text'],
        't:digits' => ['0042', SQLITE3_TEXT, 'text'], 't:null' => [null, SQLITE3_NULL, 'null'],
        't:empty' => ['', SQLITE3_TEXT, 'text'],
    ];
    foreach ($values as $k => [$v, $type, $_]) {
        run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', [$k, $v], [SQLITE3_TEXT, $type]);
    }
    ksort($values, SORT_STRING);
    $want = [];
    foreach ($values as $k => [$v, $_, $t]) {
        $want[] = [$k, $v, $t];
    }
    expect('types', rows($db, "SELECT key, value, typeof(value) FROM kv WHERE key GLOB 't:*' ORDER BY key"), $want);
    // PHP quirks, not feox's: a bool binds as INTEGER; a PHP string binds as TEXT unless told
    // SQLITE3_BLOB, and a TEXT value with a NUL byte comes back cut at the NUL
    run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', ['t:bool', true], [SQLITE3_TEXT, SQLITE3_INTEGER]);
    expect('bool', rows($db, "SELECT value, typeof(value) FROM kv WHERE key = 't:bool'"), [[1, 'integer']]);
    run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', ['t:nul', "a\x00b"]);
    expect('nul text', rows($db, "SELECT hex(value), typeof(value) FROM kv WHERE key = 't:nul'"), [['610062', 'text']]);
    expect_error($db, 19, 'key may not be NULL', function () use ($db) {
        run($db, 'INSERT INTO kv(key, value) VALUES (?, 1)', [null]);
    });
    run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', [5, 'five']);
    expect('numeric key', rows($db, 'SELECT key, typeof(key) FROM kv WHERE key = ?', [5]), [['5', 'text']]);
    $db->exec("DELETE FROM kv WHERE key = '5' OR key GLOB 't:*'");
}

function writes_and_functions(SQLite3 $db): void
{
    $db->exec("INSERT INTO kv(key, value) VALUES ('u:1', 'one')");
    expect_error($db, 19, 'UNIQUE constraint failed: kv.key', function () use ($db) {
        $db->exec("INSERT INTO kv(key, value) VALUES ('u:1', 'again')");
    });
    $db->exec("INSERT OR IGNORE INTO kv(key, value) VALUES ('u:1', 'ignored')");
    expect('or ignore', [$db->changes(), value_of($db, 'u:1')], [0, 'one']);
    run($db, 'INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)', ['u:1', 'replaced']);
    run($db, 'REPLACE INTO kv(key, value) VALUES (?, ?)', ['u:2', 2]);
    expect('replace', rows($db, "SELECT key, value FROM kv WHERE key GLOB 'u:*' ORDER BY key"), [['u:1', 'replaced'], ['u:2', 2]]);
    run($db, 'UPDATE kv SET value = value + ? WHERE key = ?', [40, 'u:2']);
    expect('update changes', $db->changes(), 1);
    expect('update', rows($db, "SELECT value, typeof(value) FROM kv WHERE key = 'u:2'"), [[42, 'integer']]);
    $db->exec("UPDATE kv SET key = 'u:3' WHERE key = 'u:2'");
    expect('rename key', rows($db, "SELECT key FROM kv WHERE key GLOB 'u:*' ORDER BY key"), [['u:1'], ['u:3']]);
    $db->exec("DELETE FROM kv WHERE key GLOB 'u:*'");
    expect('delete changes', $db->changes(), 2);

    expect('incr new', call($db, "SELECT feox_incr('kv', 'hits', 1)"), 1);
    expect('incr step', call($db, "SELECT feox_incr('kv', 'hits', 10)"), 11);
    expect('incr negative', call($db, "SELECT feox_incr('kv', 'hits', -12)"), -1);
    // a prepared feox_incr whose result is not fetched runs once
    run($db, 'SELECT feox_incr(?, ?, ?)', ['kv', 'hits', 2.0]);
    expect('incr float delta', value_of($db, 'hits'), 1);
    // PHP quirk: execute() + fetchArray() runs the statement twice (see rows())
    $stmt = $db->prepare('SELECT feox_incr(?, ?, ?)');
    $stmt->bindValue(1, 'kv');
    $stmt->bindValue(2, 'twice');
    $stmt->bindValue(3, 1);
    $first = $stmt->execute()->fetchArray(SQLITE3_NUM)[0];
    $stmt->close();
    if (!in_array($first, [1, 2], true) || value_of($db, 'twice') !== $first) {
        fail("prepared feox_incr returned $first, the table holds " . var_export(value_of($db, 'twice'), true));
    }
    expect_error($db, 20, 'delta must be an integer', function () use ($db) {
        call($db, "SELECT feox_incr('kv', 'hits', 0.5)");
    });
    run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', ['whole', 3.0]);
    expect('incr whole real', call($db, "SELECT feox_incr('kv', 'whole', 1)"), 4);
    run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', ['textnum', '5']);
    expect_error($db, 20, 'not a 64-bit integer', function () use ($db) {
        call($db, "SELECT feox_incr('kv', 'textnum', 1)");
    });

    $db->exec("INSERT INTO kv(key, value) VALUES ('flag', 'v1')");
    expect('cas hit', call($db, "SELECT feox_cas('kv', 'flag', 'v1', 'v2')"), 1);
    expect('cas miss', call($db, "SELECT feox_cas('kv', 'flag', 'v1', 'v3')"), 0);
    run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', ['n5', 5]);
    expect('cas type', call($db, "SELECT feox_cas('kv', 'n5', '5', 6)"), 0);
    expect('cas real', call($db, "SELECT feox_cas('kv', 'n5', 5.0, 6)"), 0);
    expect('cas int', call($db, "SELECT feox_cas('kv', 'n5', 5, 6)"), 1);
    expect('cas value', rows($db, "SELECT value, typeof(value) FROM kv WHERE key = 'n5'"), [[6, 'integer']]);

    run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', ['doc', '{"name":"Ada","age":36}']);
    $patch = SQLite3::escapeString('[{"op":"replace","path":"/age","value":37},{"op":"add","path":"/tags","value":["x"]}]');
    expect('patch', call($db, "SELECT feox_patch('kv', 'doc', '$patch')"), '{"name":"Ada","age":37,"tags":["x"]}');
    expect('json', $db->querySingle("SELECT json_extract(value, '$.age') FROM kv WHERE key = 'doc'"), 37);
    expect_error($db, 1, 'feox', function () use ($db) {
        call($db, "SELECT feox_patch('kv', 'doc', '[{\"op\":\"test\",\"path\":\"/age\",\"value\":1}]')");
    });
    expect('patch all or nothing', $db->querySingle("SELECT json_extract(value, '$.age') FROM kv WHERE key = 'doc'"), 37);
    $db->exec("DELETE FROM kv WHERE key IN ('hits', 'twice', 'whole', 'textnum', 'flag', 'n5', 'doc')");
}

// Whether a ttl read back is the one set, give or take 5 s: the commits in between fsync the
// database file, which on a busy disk may take a second or more.
function ttl_near($ttl, int $set): bool
{
    return is_int($ttl) && $ttl <= $set && $ttl >= $set - 5;
}

function ttl_and_expiry(SQLite3 $db): void
{
    run($db, "INSERT INTO kv(key, value, ttl) VALUES ('s:1', 'token', ?)", [60]);
    $ttl = $db->querySingle("SELECT ttl FROM kv WHERE key = 's:1'");
    if (!ttl_near($ttl, 60)) fail("ttl after insert: $ttl");
    $db->exec("UPDATE kv SET value = 'token2' WHERE key = 's:1'");
    if (!ttl_near($db->querySingle("SELECT ttl FROM kv WHERE key = 's:1'"), 60)) fail('an UPDATE lost the expiry');
    run($db, "UPDATE kv SET ttl = ? WHERE key = 's:1'", [null]);
    expect('ttl cleared', $db->querySingle("SELECT ttl FROM kv WHERE key = 's:1'"), null);
    expect('incr with ttl', call($db, "SELECT feox_incr('kv', 'rate', 1, 30)"), 1);
    if (!ttl_near($db->querySingle("SELECT ttl FROM kv WHERE key = 'rate'"), 30)) fail('feox_incr ttl');
    expect_error($db, 1, 'ttl', function () use ($db) {
        $db->exec("INSERT INTO kv(key, value, ttl) VALUES ('neg', 1, -1)");
    });
    $db->exec("DELETE FROM kv WHERE key IN ('s:1', 'rate')");

    $db->exec("CREATE VIRTUAL TABLE lc USING feox(clock='log')");
    $t0 = 1700000000 * 1000000000;
    run($db, "INSERT INTO lc(lc, ts) VALUES ('clock', ?)", [$t0]);
    $db->exec("INSERT INTO lc(key, value, ttl) VALUES ('short', 1, 10), ('long', 2, 100), ('forever', 3, NULL)");
    expect('before expiry', rows($db, 'SELECT key, ttl FROM lc ORDER BY key'), [['forever', null], ['long', 100], ['short', 10]]);
    run($db, "INSERT INTO lc(lc, ts) VALUES ('clock', ?)", [$t0 + 11 * 1000000000]);
    expect('after expiry', rows($db, 'SELECT key FROM lc ORDER BY key'), [['forever'], ['long']]);
    $db->exec("INSERT INTO lc(lc) VALUES ('sweep')");
    expect('swept', $db->querySingle('SELECT count(*) FROM lc_data'), 2);
    $db->exec('DROP TABLE lc');
}

function ranges(SQLite3 $db): void
{
    $db->exec('BEGIN');
    $stmt = $db->prepare('INSERT INTO kv(key, value) VALUES (?, ?)');
    for ($i = 0; $i < 100; $i++) {
        $stmt->bindValue(1, sprintf('r:%03d', $i));
        $stmt->bindValue(2, $i);
        $stmt->execute();
        $stmt->reset();
    }
    $stmt->close();
    $db->exec('COMMIT');
    expect('between', rows($db, 'SELECT count(*) FROM kv WHERE key BETWEEN ? AND ?', ['r:010', 'r:019']), [[10]]);
    expect('glob', $db->querySingle("SELECT count(*) FROM kv WHERE key GLOB 'r:*'"), 100);
    expect('like', $db->querySingle("SELECT count(*) FROM kv WHERE key LIKE 'r:09%'"), 10);
    expect('desc limit', rows($db, "SELECT key FROM kv WHERE key >= 'r:' AND key < 'r:~' ORDER BY key DESC LIMIT 3"), [['r:099'], ['r:098'], ['r:097']]);
    expect('after', rows($db, 'SELECT value FROM kv WHERE key > ? ORDER BY key LIMIT 2 OFFSET 1', ['r:050']), [[52], [53]]);
    expect('sum', $db->querySingle("SELECT sum(value) FROM kv WHERE key GLOB 'r:*'"), 4950);
    $db->exec("DELETE FROM kv WHERE key GLOB 'r:*'");
    expect('range delete', $db->changes(), 100);
}

function transactions(SQLite3 $db): void
{
    $db->exec("INSERT INTO kv(key, value) VALUES ('acct', 100)");
    $db->exec('BEGIN');
    $db->exec("UPDATE kv SET value = value - 30 WHERE key = 'acct'");
    call($db, "SELECT feox_incr('kv', 'moves', 1)");
    $db->exec('UPDATE ledger SET n = n + 1 WHERE id = 1');
    $db->exec('COMMIT');
    expect('committed', [value_of($db, 'acct'), value_of($db, 'moves')], [70, 1]);

    $db->exec('BEGIN');
    $db->exec("UPDATE kv SET value = 0 WHERE key = 'acct'");
    $db->exec("INSERT INTO kv(key, value) VALUES ('ghost', 1)");
    expect('own uncommitted', value_of($db, 'acct'), 0);
    $db->exec('ROLLBACK');
    expect('rolled back', rows($db, "SELECT key, value FROM kv WHERE key IN ('acct', 'ghost')"), [['acct', 70]]);

    // the usual PHP pattern: try { BEGIN ... COMMIT } catch { ROLLBACK }
    $ledger = $db->querySingle('SELECT n FROM ledger WHERE id = 1');
    try {
        $db->exec('BEGIN IMMEDIATE');
        $db->exec("UPDATE kv SET value = value - 50 WHERE key = 'acct'");
        call($db, "SELECT feox_incr('kv', 'moves', 1)");
        $db->exec('UPDATE ledger SET n = n + 1 WHERE id = 1');
        throw new RuntimeException('insufficient funds');
    } catch (RuntimeException $e) {
        $db->exec('ROLLBACK');
        expect('thrown', $e->getMessage(), 'insufficient funds');
    }
    expect('throw rolled back', [value_of($db, 'acct'), value_of($db, 'moves')], [70, 1]);
    expect('native rolled back', $db->querySingle('SELECT n FROM ledger WHERE id = 1'), $ledger);
    try {
        $db->exec('BEGIN');
        call($db, "SELECT feox_incr('kv', 'moves', 1)");
        call($db, "SELECT feox_patch('kv', 'acct', '[{\"op\":\"add\",\"path\":\"/x\",\"value\":1}]')"); // 70 has no members: fails
        fail('feox_patch did not throw');
    } catch (Exception $e) {
        $db->exec('ROLLBACK');
        if (strpos($e->getMessage(), 'kv') === false) fail('feox_patch error: ' . $e->getMessage());
    }
    expect('sql error rolled back', value_of($db, 'moves'), 1);

    $db->exec('BEGIN');
    call($db, "SELECT feox_incr('kv', 'moves', 10)");
    $db->exec('SAVEPOINT inner');
    call($db, "SELECT feox_incr('kv', 'moves', 100)");
    $db->exec("INSERT INTO kv(key, value) VALUES ('inner', 1)");
    $db->exec('ROLLBACK TO inner');
    $db->exec('RELEASE inner');
    expect('inside outer', value_of($db, 'moves'), 11);
    $db->exec('COMMIT');
    expect('outer committed', rows($db, "SELECT key, value FROM kv WHERE key IN ('moves', 'inner')"), [['moves', 11]]);
    expect('check', $db->querySingle("SELECT feox_check('kv')"), 'ok');
    $db->exec("DELETE FROM kv WHERE key IN ('acct', 'moves')");
}

function concurrent_writers(SQLite3 $db, string $file): void
{
    $n = 40;
    $pids = [];
    $gos = [];
    foreach (['a', 'b'] as $id) {
        [$parent_end, $child_end] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        $pids[] = fork_child(function () use ($file, $id, $n, $child_end) {
            $w = open_db($file);
            fread($child_end, 1);
            for ($i = 0; $i < $n; $i++) {
                $w->exec('BEGIN IMMEDIATE');
                call($w, "SELECT feox_incr('kv', 'total', 1)");
                run($w, 'INSERT INTO kv(key, value) VALUES (?, ?)', [sprintf('w%s:%04d', $id, $i), $i]);
                $w->exec('UPDATE ledger SET n = n + 1 WHERE id = 1');
                $w->exec('COMMIT');
                call($w, "SELECT feox_incr('kv', 'auto', 1)");
            }
        });
        fclose($child_end);
        $gos[] = $parent_end;
    }
    $ledger = $db->querySingle('SELECT n FROM ledger WHERE id = 1');
    foreach ($gos as $go) {
        fwrite($go, 'g');
    }
    for ($i = 0; $i < $n; $i++) {
        $db->exec('BEGIN IMMEDIATE');
        call($db, "SELECT feox_incr('kv', 'total', 1)");
        run($db, 'INSERT INTO kv(key, value) VALUES (?, ?)', [sprintf('wp:%04d', $i), $i]);
        $db->exec('UPDATE ledger SET n = n + 1 WHERE id = 1');
        $db->exec('COMMIT');
        call($db, "SELECT feox_incr('kv', 'auto', 1)");
        $row = $db->querySingle("SELECT (SELECT value FROM kv WHERE key = 'total') AS t, (SELECT n FROM ledger WHERE id = 1) AS l", true);
        if ($row['t'] !== $row['l'] - $ledger) fail("feox total {$row['t']} and native ledger " . ($row['l'] - $ledger) . " disagree");
    }
    foreach ($pids as $pid) {
        expect_child($pid, 'writer');
    }
    $total = 3 * $n;
    foreach ([$db, open_db($file)] as $c) {
        expect('total', value_of($c, 'total'), $total);
        expect('auto', value_of($c, 'auto'), $total);
        expect('rows', $c->querySingle("SELECT count(*) FROM kv WHERE key GLOB 'w?:*'"), $total);
        expect('ledger', $c->querySingle('SELECT n FROM ledger WHERE id = 1'), $ledger + $total);
        expect('check', $c->querySingle("SELECT feox_check('kv')"), 'ok');
    }
    $db->exec("DELETE FROM kv WHERE key GLOB 'w?:*' OR key IN ('total', 'auto')");
}

function exit_without_close(SQLite3 $db, string $file): void
{
    $pid = fork_child(function () use ($file) {
        $x = open_db($file);
        $x->exec("INSERT INTO kv(key, value) VALUES ('exit:1', 'committed')");
        call($x, "SELECT feox_incr('kv', 'exit:n', 5)");
        $x->exec('BEGIN');
        $x->exec("INSERT INTO kv(key, value) VALUES ('exit:2', 'never committed')");
        call($x, "SELECT feox_incr('kv', 'exit:n', 100)");
        exit(0); // no COMMIT, no close
    });
    expect_child($pid, 'exiter');
    // the same without destructors: the process ends at once
    $pid = fork_child(function () use ($file) {
        $x = open_db($file);
        $x->exec("INSERT INTO kv(key, value) VALUES ('exit:3', 'committed')");
        $x->exec('BEGIN');
        $x->exec("INSERT INTO kv(key, value) VALUES ('exit:4', 'never committed')");
        posix_kill(posix_getpid(), SIGKILL);
    });
    pcntl_waitpid($pid, $status);
    expect('killed', pcntl_wifsignaled($status) && pcntl_wtermsig($status) === SIGKILL, true);
    expect('after exit', rows($db, "SELECT key, value FROM kv WHERE key GLOB 'exit:*' ORDER BY key"),
           [['exit:1', 'committed'], ['exit:3', 'committed'], ['exit:n', 5]]);
    expect('check after exit', $db->querySingle("SELECT feox_check('kv')"), 'ok');
    $db->exec("INSERT INTO kv(key, value) VALUES ('exit:2', 'now'), ('exit:4', 'now')");
    $db->exec("DELETE FROM kv WHERE key GLOB 'exit:*'");
}

function read_only(SQLite3 $db, string $file): void
{
    $db->exec("INSERT INTO kv(key, value) VALUES ('ro', 1)");
    $ro = open_db($file, SQLITE3_OPEN_READONLY);
    expect('ro read', value_of($ro, 'ro'), 1);
    expect('ro range', $ro->querySingle("SELECT count(*) FROM kv WHERE key >= 'r' AND key < 's'"), 1);
    foreach (["INSERT INTO kv(key, value) VALUES ('ro2', 1)", "UPDATE kv SET value = 2 WHERE key = 'ro'",
              'DELETE FROM kv'] as $sql) {
        expect_error($ro, 8, 'attempt to write a readonly database', function () use ($ro, $sql) {
            $ro->exec($sql);
        });
    }
    foreach (["SELECT feox_incr('kv', 'ro', 1)", "SELECT feox_cas('kv', 'ro', 1, 2)",
              "SELECT feox_patch('kv', 'ro', '[]')"] as $sql) {
        expect_error($ro, 8, 'attempt to write a readonly database', function () use ($ro, $sql) {
            $ro->querySingle($sql);
        });
    }
    if (strpos($ro->querySingle("SELECT feox_stats('kv')"), '{') !== 0) fail('ro stats');
    expect('ro check', $ro->querySingle("SELECT feox_check('kv')"), 'ok');
    $db->exec("UPDATE kv SET value = 2 WHERE key = 'ro'");
    expect('ro sees commit', value_of($ro, 'ro'), 2);
    $ro->close();
    expect('unchanged', rows($db, "SELECT key, value FROM kv WHERE key GLOB 'ro*'"), [['ro', 2]]);
    $db->exec("DELETE FROM kv WHERE key = 'ro'");
}

function busy_timeout(SQLite3 $db, string $file): void
{
    [$parent_end, $child_end] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
    $pid = fork_child(function () use ($file, $child_end) {
        $h = open_db($file);
        $h->exec('BEGIN IMMEDIATE');
        $h->exec("INSERT INTO kv(key, value) VALUES ('held', 1)");
        fwrite($child_end, 'h');
        fread($child_end, 1);
        usleep(200000); // not synchronisation: makes the parent wait inside its busy handler
        $h->exec('COMMIT');
    });
    fclose($child_end);
    expect('holder', fread($parent_end, 1), 'h');
    $db->busyTimeout(0);
    $before = rows($db, 'SELECT key, value FROM kv ORDER BY key');
    expect_error($db, 5, 'database is locked', function () use ($db) {
        $db->exec("INSERT INTO kv(key, value) VALUES ('busy', 1)");
    });
    expect_error($db, 5, 'database is locked', function () use ($db) {
        $db->querySingle("SELECT feox_incr('kv', 'busy', 1)");
    });
    expect_error($db, 5, 'database is locked', function () use ($db) {
        $db->exec('BEGIN IMMEDIATE');
    });
    expect('busy changed nothing', rows($db, 'SELECT key, value FROM kv ORDER BY key'), $before);
    $db->busyTimeout(20000);
    fwrite($parent_end, 'g');
    $db->exec("INSERT INTO kv(key, value) VALUES ('busy', 1)"); // waits until the holder commits
    expect('incr after wait', call($db, "SELECT feox_incr('kv', 'busy', 1)"), 2);
    expect_child($pid, 'holder');
    expect('after busy', rows($db, "SELECT key, value FROM kv WHERE key IN ('busy', 'held') ORDER BY key"), [['busy', 2], ['held', 1]]);
    $db->exec("DELETE FROM kv WHERE key IN ('busy', 'held')");
}

// PDO (PHP 8.2) has no loadExtension, and load_extension() in SQL is refused
$pdo = new PDO('sqlite::memory:');
$pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
try {
    $pdo->query("SELECT load_extension('feox')");
    fail('PDO loaded an extension');
} catch (PDOException $e) {
    expect('pdo', strpos($e->getMessage(), 'not authorized') !== false, true);
}

foreach (['wal', 'delete'] as $mode) {
    $file = "$DIR/php-$mode.db";
    $db = open_db($file);
    expect('journal_mode', $db->querySingle("PRAGMA journal_mode = $mode"), $mode);
    $db->exec('CREATE TABLE ledger(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
    $db->exec('INSERT INTO ledger VALUES (1, 0)');
    $db->exec('CREATE VIRTUAL TABLE kv USING feox');
    expect('shadow tables', rows($db, "SELECT name FROM sqlite_schema WHERE name GLOB 'kv_*' AND type = 'table' ORDER BY name"),
           [['kv_data'], ['kv_log'], ['kv_meta']]);
    foreach (['types_round_trip', 'writes_and_functions', 'ttl_and_expiry', 'ranges', 'transactions'] as $step) {
        $step($db);
    }
    foreach (['concurrent_writers', 'exit_without_close', 'read_only', 'busy_timeout'] as $step) {
        $step($db, $file);
    }
    expect('empty at the end', $db->querySingle('SELECT count(*) FROM kv'), 0);
    expect('final check', $db->querySingle("SELECT feox_check('kv')"), 'ok');
    $db->close();
    if (glob("$DIR/*.feox")) fail('a store file was made');
    echo "php: $mode ok\n";
}
