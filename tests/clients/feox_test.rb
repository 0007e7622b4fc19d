# tests/clients/feox_test.rb — feox as a Ruby user drives it: Debian's ruby + ruby-sqlite3 (the
# sqlite3 gem), the extension loaded with Database#load_extension, a database file in WAL and in
# the default rollback-journal mode; helper processes are fork()ed.
#
# Usage: ruby feox_test.rb EXT DIR      (EXT: the extension's path without ".so"; DIR: an empty
#                                       scratch directory). tests/clients/run.sh runs it.
# Exits 1 with "FAIL (ruby): ..." on the first mismatch.
require 'sqlite3'

EXT, DIR = ARGV
abort 'usage: ruby feox_test.rb EXT DIR' unless EXT && DIR

def fail!(msg)
  $stderr.puts "FAIL (ruby): #{msg}"
  exit! 1
end

def expect(what, got, want)
  fail!("#{what}: got #{got.inspect}, want #{want.inspect}") unless got == want
end

# The block must raise an SQLite3 exception of class klass whose message contains text.
def expect_error(klass, text = '')
  yield
rescue SQLite3::Exception => e
  fail!("wrong error: #{e.class} (#{e.message}), want #{klass} containing '#{text}'") unless
    e.is_a?(klass) && e.message.include?(text)
else
  fail!("expected #{klass} (#{text}), nothing was raised")
end

def open_db(file, **options)
  db = SQLite3::Database.new(file, **options)
  db.enable_load_extension(true)
  db.load_extension(EXT)
  db.enable_load_extension(false)
  db.busy_timeout = 20_000
  db
end

def value_of(db, key, table = 'kv')
  db.get_first_value("SELECT value FROM #{table} WHERE key = ?", [key])
end

# Runs the block in a fork()ed child that exits 0 on success; returns the pid.
def fork_child
  fork do
    begin
      yield
    rescue Exception => e # rubocop:disable Lint/RescueException
      $stderr.puts "FAIL (ruby child): #{e.class}: #{e.message}\n#{e.backtrace.first(3).join("\n")}"
      exit! 1
    end
    exit 0 # a normal exit: at_exit handlers and finalizers run, connections are not closed first
  end
end

def expect_child(pid, what)
  _, status = Process.wait2(pid)
  fail!("#{what}: child exited with #{status.inspect}") unless status.success?
end

def types_round_trip(db)
  values = {
    't:int' => [42, 'integer'], 't:big' => [2**63 - 1, 'integer'], 't:min' => [-2**63, 'integer'],
    't:real' => [2.5, 'real'], 't:blob' => ["\x00\xFF\x7F\x80".b, 'blob'],
    't:wrapped' => [SQLite3::Blob.new('ab'), 'blob'], 't:text' => ['héllo wörld', 'text'],
    't:digits' => ['0042', 'text'], 't:null' => [nil, 'null'], 't:empty' => ['', 'text']
  }
  values.each { |k, (v, _)| db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', [k, v]) }
  got = db.execute("SELECT key, value, typeof(value) FROM kv WHERE key GLOB 't:*' ORDER BY key")
  want = values.sort.map { |k, (v, t)| [k, v, t] }
  expect('types', got, want)
  blob = value_of(db, 't:blob')
  expect('blob encoding', blob.encoding, Encoding::BINARY)
  expect('text encoding', value_of(db, 't:text').encoding, Encoding::UTF_8)
  expect('real class', value_of(db, 't:real').class, Float)
  # quirks of the gem, not of feox: an Integer past 64 bits binds as REAL, true/false do not bind
  db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', ['t:huge', 2**64])
  expect('huge', db.execute("SELECT typeof(value) FROM kv WHERE key = 't:huge'"), [['real']])
  begin
    db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', ['t:bool', true])
    fail!('true bound')
  rescue RuntimeError => e
    expect('true', e.message, "can't prepare TrueClass")
  end
  expect_error(SQLite3::ConstraintException, 'key may not be NULL') do
    db.execute('INSERT INTO kv(key, value) VALUES (?, 1)', [nil])
  end
  db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', [5, 'five'])
  expect('numeric key', db.execute('SELECT key, typeof(key) FROM kv WHERE key = ?', [5]), [%w[5 text]])
  db.execute("DELETE FROM kv WHERE key = '5' OR key GLOB 't:*'")
  expect('named parameters', db.execute('SELECT :a || :b', 'a' => 'x', 'b' => 'y'), [['xy']])
end

def writes_and_functions(db)
  db.execute("INSERT INTO kv(key, value) VALUES ('u:1', 'one')")
  expect_error(SQLite3::ConstraintException, 'UNIQUE constraint failed: kv.key') do
    db.execute("INSERT INTO kv(key, value) VALUES ('u:1', 'again')")
  end
  db.execute("INSERT OR IGNORE INTO kv(key, value) VALUES ('u:1', 'ignored')")
  expect('or ignore', [db.changes, value_of(db, 'u:1')], [0, 'one'])
  db.execute('INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)', ['u:1', 'replaced'])
  db.execute('REPLACE INTO kv(key, value) VALUES (?, ?)', ['u:2', 2])
  expect('replace', db.execute("SELECT key, value FROM kv WHERE key GLOB 'u:*' ORDER BY key"),
         [['u:1', 'replaced'], ['u:2', 2]])
  db.execute('UPDATE kv SET value = value + ? WHERE key = ?', [40, 'u:2'])
  expect('update changes', db.changes, 1)
  expect('update', db.execute("SELECT value, typeof(value) FROM kv WHERE key = 'u:2'"), [[42, 'integer']])
  db.execute("UPDATE kv SET key = 'u:3' WHERE key = 'u:2'")
  expect('rename key', db.execute("SELECT key FROM kv WHERE key GLOB 'u:*' ORDER BY key").flatten, %w[u:1 u:3])
  db.execute("DELETE FROM kv WHERE key GLOB 'u:*'")
  expect('delete changes', db.changes, 2)

  incr = db.prepare('SELECT feox_incr(?, ?, ?)')
  expect('incr new', incr.execute('kv', 'hits', 1).to_a, [[1]])
  expect('incr step', incr.execute('kv', 'hits', 10).to_a, [[11]])
  expect('incr negative', incr.execute('kv', 'hits', -12).to_a, [[-1]])
  expect('incr float delta', incr.execute('kv', 'hits', 2.0).to_a, [[1]])
  expect_error(SQLite3::Exception, 'feox') { incr.execute('kv', 'hits', 0.5).to_a }
  incr.close
  db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', ['whole', 3.0])
  expect('incr whole real', db.get_first_value("SELECT feox_incr('kv', 'whole', 1)"), 4)
  db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', ['textnum', '5'])
  expect_error(SQLite3::MismatchException, 'not a 64-bit integer') do
    db.execute("SELECT feox_incr('kv', 'textnum', 1)")
  end

  db.execute("INSERT INTO kv(key, value) VALUES ('flag', 'v1')")
  cas = 'SELECT feox_cas(?, ?, ?, ?)'
  expect('cas hit', db.get_first_value(cas, ['kv', 'flag', 'v1', 'v2']), 1)
  expect('cas miss', db.get_first_value(cas, ['kv', 'flag', 'v1', 'v3']), 0)
  db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', ['n5', 5])
  expect('cas type', db.get_first_value(cas, ['kv', 'n5', '5', 6]), 0)
  expect('cas real', db.get_first_value(cas, ['kv', 'n5', 5.0, 6]), 0)
  expect('cas int', db.get_first_value(cas, ['kv', 'n5', 5, 6]), 1)
  expect('cas blob', db.get_first_value(cas, ['kv', 'n5', 6, "\x01".b]), 1)
  expect('cas blob value', value_of(db, 'n5'), "\x01".b)

  db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', ['doc', '{"name":"Ada","age":36}'])
  patch = '[{"op":"replace","path":"/age","value":37},{"op":"add","path":"/tags","value":["x"]}]'
  expect('patch', db.get_first_value("SELECT feox_patch('kv', 'doc', ?)", [patch]),
         '{"name":"Ada","age":37,"tags":["x"]}')
  expect('json', db.get_first_value("SELECT json_extract(value, '$.age') FROM kv WHERE key = 'doc'"), 37)
  expect_error(SQLite3::Exception, 'feox') do
    db.execute("SELECT feox_patch('kv', 'doc', '[{\"op\":\"test\",\"path\":\"/age\",\"value\":1}]')")
  end
  db.execute("DELETE FROM kv WHERE key IN ('hits', 'whole', 'textnum', 'flag', 'n5', 'doc')")
end

# Whether a ttl read back is the one set, give or take 5 s: the commits in between fsync the
# database file, which on a busy disk may take a second or more.
def ttl_near?(ttl, set)
  ttl.is_a?(Integer) && ttl <= set && ttl >= set - 5
end

def ttl_and_expiry(db)
  db.execute("INSERT INTO kv(key, value, ttl) VALUES ('s:1', 'token', ?)", [60])
  ttl = db.get_first_value("SELECT ttl FROM kv WHERE key = 's:1'")
  fail!("ttl after insert: #{ttl}") unless ttl_near?(ttl, 60)
  db.execute("UPDATE kv SET value = 'token2' WHERE key = 's:1'")
  fail!('an UPDATE without ttl lost the expiry') unless ttl_near?(db.get_first_value("SELECT ttl FROM kv WHERE key = 's:1'"), 60)
  db.execute("UPDATE kv SET ttl = ? WHERE key = 's:1'", [nil])
  expect('ttl cleared', db.get_first_value("SELECT ttl FROM kv WHERE key = 's:1'"), nil)
  expect('incr with ttl', db.get_first_value("SELECT feox_incr('kv', 'rate', 1, 30)"), 1)
  fail!('feox_incr ttl') unless ttl_near?(db.get_first_value("SELECT ttl FROM kv WHERE key = 'rate'"), 30)
  expect_error(SQLite3::Exception, 'ttl') { db.execute("INSERT INTO kv(key, value, ttl) VALUES ('neg', 1, -1)") }
  db.execute("DELETE FROM kv WHERE key IN ('s:1', 'rate')")

  db.execute("CREATE VIRTUAL TABLE lc USING feox(clock='log')")
  t0 = 1_700_000_000 * 1_000_000_000
  db.execute("INSERT INTO lc(lc, ts) VALUES ('clock', ?)", [t0])
  db.execute("INSERT INTO lc(key, value, ttl) VALUES ('short', 1, 10), ('long', 2, 100), ('forever', 3, NULL)")
  expect('before expiry', db.execute('SELECT key, ttl FROM lc ORDER BY key'), [['forever', nil], ['long', 100], ['short', 10]])
  db.execute("INSERT INTO lc(lc, ts) VALUES ('clock', ?)", [t0 + 11 * 1_000_000_000])
  expect('after expiry', db.execute('SELECT key FROM lc ORDER BY key').flatten, %w[forever long])
  db.execute("INSERT INTO lc(lc) VALUES ('sweep')")
  expect('swept', db.get_first_value('SELECT count(*) FROM lc_data'), 2)
  db.execute('DROP TABLE lc')
end

def ranges(db)
  db.transaction do
    stmt = db.prepare('INSERT INTO kv(key, value) VALUES (?, ?)')
    100.times { |i| stmt.execute(format('r:%03d', i), i) }
    stmt.close
  end
  expect('between', db.get_first_value("SELECT count(*) FROM kv WHERE key BETWEEN ? AND ?", ['r:010', 'r:019']), 10)
  expect('glob', db.get_first_value("SELECT count(*) FROM kv WHERE key GLOB 'r:*'"), 100)
  expect('like', db.get_first_value("SELECT count(*) FROM kv WHERE key LIKE 'r:09%'"), 10)
  expect('desc limit', db.execute("SELECT key FROM kv WHERE key >= 'r:' AND key < 'r:~' ORDER BY key DESC LIMIT 3").flatten,
         %w[r:099 r:098 r:097])
  expect('after', db.execute("SELECT value FROM kv WHERE key > ? ORDER BY key LIMIT 2 OFFSET 1", ['r:050']).flatten, [52, 53])
  expect('in', db.execute("SELECT value FROM kv WHERE key IN (?, ?, 'nope') ORDER BY key", ['r:007', 'r:003']).flatten, [3, 7])
  expect('sum', db.get_first_value("SELECT sum(value) FROM kv WHERE key GLOB 'r:*'"), 4950)
  db.execute("DELETE FROM kv WHERE key GLOB 'r:*'")
  expect('range delete', db.changes, 100)
end

def transactions(db)
  db.execute("INSERT INTO kv(key, value) VALUES ('acct', 100)")
  db.transaction do |t|
    t.execute("UPDATE kv SET value = value - 30 WHERE key = 'acct'")
    t.execute("SELECT feox_incr('kv', 'moves', 1)")
    t.execute('UPDATE ledger SET n = n + 1 WHERE id = 1')
  end
  expect('committed', [value_of(db, 'acct'), value_of(db, 'moves')], [70, 1])

  db.transaction
  db.execute("UPDATE kv SET value = 0 WHERE key = 'acct'")
  db.execute("INSERT INTO kv(key, value) VALUES ('ghost', 1)")
  expect('own uncommitted', value_of(db, 'acct'), 0)
  db.rollback
  expect('rolled back', db.execute("SELECT key, value FROM kv WHERE key IN ('acct', 'ghost')"), [['acct', 70]])

  ledger = db.get_first_value('SELECT n FROM ledger WHERE id = 1')
  begin
    db.transaction do
      db.execute("UPDATE kv SET value = value - 50 WHERE key = 'acct'")
      db.execute("SELECT feox_incr('kv', 'moves', 1)")
      db.execute('UPDATE ledger SET n = n + 1 WHERE id = 1')
      raise ArgumentError, 'insufficient funds'
    end
    fail!('the transaction did not raise')
  rescue ArgumentError => e
    expect('raised', e.message, 'insufficient funds')
  end
  expect('raise rolled back', [value_of(db, 'acct'), value_of(db, 'moves')], [70, 1])
  expect('native rolled back', db.get_first_value('SELECT n FROM ledger WHERE id = 1'), ledger)
  expect('not in a transaction', db.transaction_active?, false)
  begin
    db.transaction do
      db.execute("SELECT feox_incr('kv', 'moves', 1)")
      db.execute("SELECT feox_patch('kv', 'acct', '[{\"op\":\"add\",\"path\":\"/x\",\"value\":1}]')") # 70 has no members: fails
    end
    fail!('feox_patch did not raise')
  rescue SQLite3::Exception => e
    fail!("feox_patch error: #{e.message}") unless e.message.include?('kv')
  end
  expect('sql error rolled back', value_of(db, 'moves'), 1)

  # savepoints inside a transaction
  db.transaction(:immediate) do
    db.execute("SELECT feox_incr('kv', 'moves', 10)")
    db.execute('SAVEPOINT inner')
    db.execute("SELECT feox_incr('kv', 'moves', 100)")
    db.execute("INSERT INTO kv(key, value) VALUES ('inner', 1)")
    db.execute('ROLLBACK TO inner')
    db.execute('RELEASE inner')
    expect('inside outer', value_of(db, 'moves'), 11)
  end
  expect('outer committed', db.execute("SELECT key, value FROM kv WHERE key IN ('moves', 'inner')"), [['moves', 11]])
  expect('check', db.get_first_value("SELECT feox_check('kv')"), 'ok')
  db.execute("DELETE FROM kv WHERE key IN ('acct', 'moves')")
end

def concurrent_writers(db, file)
  n = 40
  go_r, go_w = IO.pipe
  pids = %w[a b].map do |id|
    fork_child do
      go_w.close
      w = open_db(file)
      go_r.read(1)
      n.times do |i|
        w.transaction(:immediate) do
          w.execute("SELECT feox_incr('kv', 'total', 1)")
          w.execute('INSERT INTO kv(key, value) VALUES (?, ?)', [format('w%s:%04d', id, i), i])
          w.execute('UPDATE ledger SET n = n + 1 WHERE id = 1')
        end
        w.execute("SELECT feox_incr('kv', 'auto', 1)")
      end
    end
  end
  go_r.close
  ledger = db.get_first_value('SELECT n FROM ledger WHERE id = 1')
  go_w.write('gg')
  go_w.close
  n.times do |i|
    db.transaction(:immediate) do
      db.execute("SELECT feox_incr('kv', 'total', 1)")
      db.execute('INSERT INTO kv(key, value) VALUES (?, ?)', [format('wp:%04d', i), i])
      db.execute('UPDATE ledger SET n = n + 1 WHERE id = 1')
    end
    db.execute("SELECT feox_incr('kv', 'auto', 1)")
    t, l = db.execute("SELECT (SELECT value FROM kv WHERE key = 'total'), (SELECT n FROM ledger WHERE id = 1)")[0]
    fail!("feox total #{t} and native ledger #{l - ledger} disagree") unless t == l - ledger
  end
  pids.each { |pid| expect_child(pid, 'writer') }
  total = 3 * n
  [db, open_db(file)].each do |c|
    expect('total', value_of(c, 'total'), total)
    expect('auto', value_of(c, 'auto'), total)
    expect('rows', c.get_first_value("SELECT count(*) FROM kv WHERE key GLOB 'w?:*'"), total)
    expect('ledger', c.get_first_value('SELECT n FROM ledger WHERE id = 1'), ledger + total)
    expect('check', c.get_first_value("SELECT feox_check('kv')"), 'ok')
  end
  db.execute("DELETE FROM kv WHERE key GLOB 'w?:*' OR key IN ('total', 'auto')")
end

def exit_without_close(db, file)
  pid = fork_child do
    x = open_db(file)
    x.execute("INSERT INTO kv(key, value) VALUES ('exit:1', 'committed')")
    x.execute("SELECT feox_incr('kv', 'exit:n', 5)")
    x.transaction
    x.execute("INSERT INTO kv(key, value) VALUES ('exit:2', 'never committed')")
    x.execute("SELECT feox_incr('kv', 'exit:n', 100)")
    # exit with x (and the parent's inherited db) still open
  end
  expect_child(pid, 'exiter')
  # the same, leaving without finalizers (exit!)
  pid = fork do
    x = open_db(file)
    x.execute("INSERT INTO kv(key, value) VALUES ('exit:3', 'committed')")
    x.transaction
    x.execute("INSERT INTO kv(key, value) VALUES ('exit:4', 'never committed')")
    exit! 0
  end
  expect_child(pid, 'exit!')
  expect('after exit', db.execute("SELECT key, value FROM kv WHERE key GLOB 'exit:*' ORDER BY key"),
         [['exit:1', 'committed'], ['exit:3', 'committed'], ['exit:n', 5]])
  expect('check after exit', db.get_first_value("SELECT feox_check('kv')"), 'ok')
  db.execute("INSERT INTO kv(key, value) VALUES ('exit:2', 'now'), ('exit:4', 'now')")
  db.execute("DELETE FROM kv WHERE key GLOB 'exit:*'")
end

def read_only(db, file)
  db.execute("INSERT INTO kv(key, value) VALUES ('ro', 1)")
  ro = open_db(file, readonly: true)
  expect('readonly?', ro.readonly?, true)
  expect('ro read', value_of(ro, 'ro'), 1)
  expect('ro range', ro.get_first_value("SELECT count(*) FROM kv WHERE key >= 'r' AND key < 's'"), 1)
  ["INSERT INTO kv(key, value) VALUES ('ro2', 1)", "UPDATE kv SET value = 2 WHERE key = 'ro'",
   'DELETE FROM kv', "SELECT feox_incr('kv', 'ro', 1)", "SELECT feox_cas('kv', 'ro', 1, 2)",
   "SELECT feox_patch('kv', 'ro', '[]')"].each do |sql|
    expect_error(SQLite3::ReadOnlyException, 'attempt to write a readonly database') { ro.execute(sql) }
  end
  expect_error(SQLite3::ReadOnlyException, 'readonly') do
    ro.transaction { ro.execute("INSERT INTO kv(key, value) VALUES ('ro3', 1)") }
  end
  fail!('ro stats') unless ro.get_first_value("SELECT feox_stats('kv')").start_with?('{')
  expect('ro check', ro.get_first_value("SELECT feox_check('kv')"), 'ok')
  db.execute("UPDATE kv SET value = 2 WHERE key = 'ro'")
  expect('ro sees commit', value_of(ro, 'ro'), 2)
  ro.close
  expect('unchanged', db.execute("SELECT key, value FROM kv WHERE key GLOB 'ro*'"), [['ro', 2]])
  db.execute("DELETE FROM kv WHERE key = 'ro'")
end

def busy_timeout(db, file)
  held_r, held_w = IO.pipe
  go_r, go_w = IO.pipe
  pid = fork_child do
    held_r.close
    go_w.close
    h = open_db(file)
    h.execute('BEGIN IMMEDIATE')
    h.execute("INSERT INTO kv(key, value) VALUES ('held', 1)")
    held_w.write('h')
    held_w.close
    go_r.read(1)
    sleep 0.2 # not synchronisation: makes the parent wait inside its busy handler
    h.execute('COMMIT')
  end
  held_w.close
  go_r.close
  expect('holder', held_r.read(1), 'h')
  db.busy_timeout = 0
  before = db.execute('SELECT key, value FROM kv ORDER BY key')
  expect_error(SQLite3::BusyException, 'database is locked') do
    db.execute("INSERT INTO kv(key, value) VALUES ('busy', 1)")
  end
  expect_error(SQLite3::BusyException, 'database is locked') { db.execute("SELECT feox_incr('kv', 'busy', 1)") }
  expect_error(SQLite3::BusyException, 'database is locked') { db.transaction(:immediate) {} }
  expect('busy changed nothing', db.execute('SELECT key, value FROM kv ORDER BY key'), before)
  db.busy_timeout = 20_000
  go_w.write('g')
  go_w.close
  db.execute("INSERT INTO kv(key, value) VALUES ('busy', 1)") # waits until the holder commits
  expect('incr after wait', db.get_first_value("SELECT feox_incr('kv', 'busy', 1)"), 2)
  expect_child(pid, 'holder')
  expect('after busy', db.execute("SELECT key, value FROM kv WHERE key IN ('busy', 'held') ORDER BY key"),
         [['busy', 2], ['held', 1]])
  db.execute("DELETE FROM kv WHERE key IN ('busy', 'held')")
end

%w[wal delete].each do |mode|
  file = File.join(DIR, "ruby-#{mode}.db")
  db = open_db(file)
  expect('journal_mode', db.get_first_value("PRAGMA journal_mode = #{mode}"), mode)
  db.execute('CREATE TABLE ledger(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)')
  db.execute('INSERT INTO ledger VALUES (1, 0)')
  db.execute('CREATE VIRTUAL TABLE kv USING feox')
  expect('shadow tables', db.execute("SELECT name FROM sqlite_schema WHERE name GLOB 'kv_*' AND type = 'table' ORDER BY name").flatten,
         %w[kv_data kv_log kv_meta])
  %i[types_round_trip writes_and_functions ttl_and_expiry ranges transactions].each { |step| send(step, db) }
  %i[concurrent_writers exit_without_close read_only busy_timeout].each { |step| send(step, db, file) }
  expect('empty at the end', db.get_first_value('SELECT count(*) FROM kv'), 0)
  expect('final check', db.get_first_value("SELECT feox_check('kv')"), 'ok')
  db.close
  fail!('a store file was made') unless Dir.glob(File.join(DIR, '*.feox')).empty?
  puts "ruby: #{mode} ok"
end
