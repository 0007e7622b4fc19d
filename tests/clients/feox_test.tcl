# tests/clients/feox_test.tcl — feox as a Tcl user drives it: Debian's tcl + libsqlite3-tcl
# (package sqlite3), the extension loaded with load_extension(), a database file in WAL and in the
# default rollback-journal mode.
#
# Usage: tclsh feox_test.tcl EXT DIR      (EXT: the extension's path without ".so"; DIR: an empty
#                                         scratch directory). tests/clients/run.sh runs it.
# The same file is the helper process the test starts with exec (first argument "child"):
#   child writer DB EXT ID N    waits for "go" on stdin, then N times: an IMMEDIATE transaction
#                               (feox_incr + a row of its own + a native counter) and an autocommit
#                               feox_incr; prints "done"
#   child holder DB EXT         BEGIN IMMEDIATE + a write, prints "held", commits after a line on
#                               stdin, prints "released"
#   child exiter DB EXT         commits two rows, leaves a third in an open transaction and exits
#                               without closing the connection
# Exits 1 with "FAIL: ..." on the first mismatch.
package require sqlite3

proc fail {msg} {
    puts stderr "FAIL (tcl): $msg"
    exit 1
}

# Equal as strings, or as lists (so a long expected list may span lines).
proc expect {what got want} {
    if {$got ne $want && ([catch {lrange $got 0 end} g] || [catch {lrange $want 0 end} w] || $g ne $w)} {
        fail "$what: got {$got}, want {$want}"
    }
}

# Runs script (in the caller's frame), which must fail; checks the SQLite primary result code of
# connection conn and that the message contains text.
proc expect_error {conn code text script} {
    if {![catch {uplevel 1 $script} msg]} {
        fail "expected an error ($text) from: $script"
    }
    set got [expr {[$conn errorcode] & 0xff}]
    if {$got != $code || ($text ne "" && [string first $text $msg] < 0)} {
        fail "wrong error from {$script}: code $got ($msg), want code $code containing '$text'"
    }
}

proc open_db {name file ext args} {
    sqlite3 $name $file {*}$args
    $name enable_load_extension 1
    $name eval {SELECT load_extension($ext)}
    $name enable_load_extension 0
    $name timeout 20000
}

# ---- helper processes ----------------------------------------------------------------------------
proc child_writer {db ext id n} {
    open_db w $db $ext
    gets stdin
    for {set i 0} {$i < $n} {incr i} {
        set key [format "w%s:%04d" $id $i]
        w transaction immediate {
            w eval {SELECT feox_incr('kv', 'total', 1)}
            w eval {INSERT INTO kv(key, value) VALUES ($key, $i)}
            w eval {UPDATE ledger SET n = n + 1 WHERE id = 1}
        }
        w eval {SELECT feox_incr('kv', 'auto', 1)}
    }
    puts done
}

proc child_holder {db ext} {
    open_db h $db $ext
    h eval {BEGIN IMMEDIATE}
    h eval {INSERT INTO kv(key, value) VALUES ('held', 1)}
    puts held
    flush stdout
    gets stdin
    after 200 ;# not synchronisation: makes the other side wait inside its busy handler
    h eval {COMMIT}
    puts released
}

proc child_exiter {db ext} {
    open_db x $db $ext
    x eval {INSERT INTO kv(key, value) VALUES ('exit:1', 'committed')}
    x eval {SELECT feox_incr('kv', 'exit:n', 5)}
    x eval {BEGIN}
    x eval {INSERT INTO kv(key, value) VALUES ('exit:2', 'never committed')}
    x eval {SELECT feox_incr('kv', 'exit:n', 100)}
    exit 0 ;# no COMMIT, no close
}

if {[lindex $argv 0] eq "child"} {
    set role [lindex $argv 1]
    child_$role {*}[lrange $argv 2 end]
    exit 0
}

# ---- the test ------------------------------------------------------------------------------------
lassign $argv EXT DIR
if {$EXT eq "" || $DIR eq ""} {
    fail "usage: tclsh feox_test.tcl EXT DIR"
}

proc types_round_trip {} {
    set i [expr {42}]
    set big [expr {9223372036854775807}]
    set neg [expr {-7}]
    set r [expr {2.5}]
    set bytes [binary format H* 00ff7f80]
    set text "héllo wörld"
    set digits "0042" ;# a string that looks like a number stays TEXT
    db eval {INSERT INTO kv(key, value) VALUES ('t:int', $i), ('t:big', $big), ('t:neg', $neg),
             ('t:real', $r), ('t:blob', @bytes), ('t:text', $text), ('t:digits', $digits),
             ('t:null', NULL), ('t:empty', '')}
    set want {t:big integer t:blob blob t:digits text t:empty text t:int integer t:neg integer
              t:null null t:real real t:text text}
    expect "types" [db eval {SELECT key, typeof(value) FROM kv WHERE key GLOB 't:*' ORDER BY key}] $want
    expect "int" [db onecolumn {SELECT value FROM kv WHERE key = 't:int'}] 42
    expect "big" [db onecolumn {SELECT value FROM kv WHERE key = 't:big'}] 9223372036854775807
    expect "neg" [db onecolumn {SELECT value + 0 FROM kv WHERE key = 't:neg'}] -7
    expect "real" [db onecolumn {SELECT value FROM kv WHERE key = 't:real'}] 2.5
    expect "blob" [binary encode hex [db onecolumn {SELECT value FROM kv WHERE key = 't:blob'}]] 00ff7f80
    expect "blob length" [db onecolumn {SELECT length(value) FROM kv WHERE key = 't:blob'}] 4
    expect "text" [db onecolumn {SELECT value FROM kv WHERE key = 't:text'}] $text
    expect "digits" [db onecolumn {SELECT value FROM kv WHERE key = 't:digits'}] 0042
    db nullvalue <NULL>
    expect "null" [db onecolumn {SELECT value FROM kv WHERE key = 't:null'}] <NULL>
    expect "null is" [db onecolumn {SELECT count(*) FROM kv WHERE key = 't:null' AND value IS NULL}] 1
    db nullvalue ""
    # a NULL key is an error naming the column, and nothing is written
    expect_error db 19 "" {db eval {INSERT INTO kv(key, value) VALUES (NULL, 1)}}
    # a key given as a number is the text of the number
    db eval {INSERT INTO kv(key, value) VALUES (5, 'five')}
    expect "numeric key" [db eval {SELECT key, typeof(key) FROM kv WHERE key = '5'}] {5 text}
    db eval {DELETE FROM kv WHERE key = '5' OR key GLOB 't:*'}
}

proc writes_and_functions {} {
    db eval {INSERT INTO kv(key, value) VALUES ('u:1', 'one')}
    expect_error db 19 "UNIQUE constraint failed: kv.key" {
        db eval {INSERT INTO kv(key, value) VALUES ('u:1', 'again')}
    }
    db eval {INSERT OR IGNORE INTO kv(key, value) VALUES ('u:1', 'ignored')}
    expect "or ignore" [list [db changes] [db onecolumn {SELECT value FROM kv WHERE key = 'u:1'}]] {0 one}
    db eval {INSERT OR REPLACE INTO kv(key, value) VALUES ('u:1', 'replaced')}
    db eval {REPLACE INTO kv(key, value) VALUES ('u:2', 2)}
    expect "replace" [db eval {SELECT key, value FROM kv WHERE key GLOB 'u:*' ORDER BY key}] {u:1 replaced u:2 2}
    db eval {UPDATE kv SET value = value + 40 WHERE key = 'u:2'}
    expect "update changes" [db changes] 1
    expect "update" [db eval {SELECT value, typeof(value) FROM kv WHERE key = 'u:2'}] {42 integer}
    db eval {UPDATE kv SET key = 'u:3' WHERE key = 'u:2'}
    expect "rename key" [db eval {SELECT key FROM kv WHERE key GLOB 'u:*' ORDER BY key}] {u:1 u:3}
    db eval {DELETE FROM kv WHERE key GLOB 'u:*'}
    expect "delete changes" [db changes] 2

    expect "incr new" [db onecolumn {SELECT feox_incr('kv', 'hits', 1)}] 1
    set step [expr {10}]
    expect "incr bound" [db onecolumn {SELECT feox_incr('kv', 'hits', $step)}] 11
    expect "incr negative" [db onecolumn {SELECT feox_incr('kv', 'hits', -12)}] -1
    set r [expr {3.0}]
    db eval {INSERT INTO kv(key, value) VALUES ('whole', $r)}
    expect "incr whole real" [db onecolumn {SELECT feox_incr('kv', 'whole', 1)}] 4
    expect "incr type" [db onecolumn {SELECT typeof(value) FROM kv WHERE key = 'whole'}] integer
    # Tcl quirk: a value that is only a string (read from a file or a socket, built by string
    # operations) binds as TEXT, even when it looks like a number; [expr {$s}] makes it an integer.
    # (A literal "5" in a script may bind either way: Tcl shares literals between uses.)
    set literal [string trimleft "x$step" x]
    db eval {INSERT INTO kv(key, value) VALUES ('textnum', $literal)}
    expect "literal binds as text" [db onecolumn {SELECT typeof(value) FROM kv WHERE key = 'textnum'}] text
    expect_error db 20 "not a 64-bit integer" {db eval {SELECT feox_incr('kv', 'textnum', 1)}}

    db eval {INSERT INTO kv(key, value) VALUES ('flag', 'v1')}
    expect "cas hit" [db onecolumn {SELECT feox_cas('kv', 'flag', 'v1', 'v2')}] 1
    expect "cas miss" [db onecolumn {SELECT feox_cas('kv', 'flag', 'v1', 'v3')}] 0
    set five [expr {5}]
    db eval {INSERT INTO kv(key, value) VALUES ('n5', $five)}
    expect "cas type" [db onecolumn {SELECT feox_cas('kv', 'n5', '5', 6)}] 0
    expect "cas int" [db onecolumn {SELECT feox_cas('kv', 'n5', $five, 6)}] 1
    expect "cas value" [db eval {SELECT value, typeof(value) FROM kv WHERE key = 'n5'}] {6 integer}

    db eval {INSERT INTO kv(key, value) VALUES ('doc', '{"name":"Ada","age":36}')}
    set patch {[{"op":"replace","path":"/age","value":37},{"op":"add","path":"/tags","value":["x"]}]}
    expect "patch" [db onecolumn {SELECT feox_patch('kv', 'doc', $patch)}] {{"name":"Ada","age":37,"tags":["x"]}}
    expect "json" [db onecolumn {SELECT json_extract(value, '$.age') FROM kv WHERE key = 'doc'}] 37
    expect_error db 1 "feox" {db eval {SELECT feox_patch('kv', 'doc', '[{"op":"test","path":"/age","value":1}]')}}
    expect "patch all or nothing" [db onecolumn {SELECT json_extract(value, '$.age') FROM kv WHERE key = 'doc'}] 37
    db eval {DELETE FROM kv WHERE key IN ('hits', 'whole', 'textnum', 'flag', 'n5', 'doc')}
}

# Whether a ttl read back is the one set, give or take 5 s: the commits in between fsync the
# database file, which on a busy disk may take a second or more.
proc ttl_near {ttl set} {
    return [expr {[string is integer -strict $ttl] && $ttl <= $set && $ttl >= $set - 5}]
}

proc ttl_and_expiry {} {
    db eval {INSERT INTO kv(key, value, ttl) VALUES ('s:1', 'token', 60)}
    set ttl [db onecolumn {SELECT ttl FROM kv WHERE key = 's:1'}]
    if {![ttl_near $ttl 60]} { fail "ttl after insert: $ttl" }
    db eval {UPDATE kv SET value = 'token2' WHERE key = 's:1'}
    set ttl [db onecolumn {SELECT ttl FROM kv WHERE key = 's:1'}]
    if {![ttl_near $ttl 60]} { fail "an UPDATE without ttl kept the expiry: $ttl" }
    db eval {UPDATE kv SET ttl = NULL WHERE key = 's:1'}
    expect "ttl cleared" [db eval {SELECT ttl IS NULL FROM kv WHERE key = 's:1'}] 1
    expect "incr with ttl" [db onecolumn {SELECT feox_incr('kv', 'rate', 1, 30)}] 1
    set ttl [db onecolumn {SELECT ttl FROM kv WHERE key = 'rate'}]
    if {![ttl_near $ttl 30]} { fail "feox_incr ttl: $ttl" }
    expect_error db 1 "" {db eval {INSERT INTO kv(key, value, ttl) VALUES ('s:neg', 1, -1)}}
    db eval {DELETE FROM kv WHERE key IN ('s:1', 'rate')}

    # expiry without waiting: a table on the logical clock
    db eval {CREATE VIRTUAL TABLE lc USING feox(clock='log')}
    set t0 [expr {1700000000 * 1000000000}]
    db eval {INSERT INTO lc(lc, ts) VALUES ('clock', $t0)}
    db eval {INSERT INTO lc(key, value, ttl) VALUES ('short', 1, 10), ('long', 2, 100), ('forever', 3, NULL)}
    expect "before expiry" [db eval {SELECT key, ttl FROM lc ORDER BY key}] {forever {} long 100 short 10}
    set t1 [expr {$t0 + 11 * 1000000000}]
    db eval {INSERT INTO lc(lc, ts) VALUES ('clock', $t1)}
    expect "after expiry" [db eval {SELECT key FROM lc ORDER BY key}] {forever long}
    expect "expired point read" [db eval {SELECT count(*) FROM lc WHERE key = 'short'}] 0
    db eval {INSERT INTO lc(lc) VALUES ('sweep')}
    expect "swept" [db onecolumn {SELECT count(*) FROM lc_data}] 2
    db eval {DROP TABLE lc}
}

proc ranges {} {
    db transaction {
        for {set i 0} {$i < 100} {incr i} {
            set k [format "r:%03d" $i]
            db eval {INSERT INTO kv(key, value) VALUES ($k, $i)}
        }
    }
    expect "between" [db onecolumn {SELECT count(*) FROM kv WHERE key BETWEEN 'r:010' AND 'r:019'}] 10
    expect "glob" [db onecolumn {SELECT count(*) FROM kv WHERE key GLOB 'r:*'}] 100
    expect "like" [db onecolumn {SELECT count(*) FROM kv WHERE key LIKE 'r:09%'}] 10
    expect "desc limit" [db eval {SELECT key FROM kv WHERE key >= 'r:' AND key < 'r:~' ORDER BY key DESC LIMIT 3}] {r:099 r:098 r:097}
    expect "after" [db eval {SELECT value FROM kv WHERE key > 'r:050' ORDER BY key LIMIT 2 OFFSET 1}] {52 53}
    expect "sum" [db onecolumn {SELECT sum(value) FROM kv WHERE key GLOB 'r:*'}] 4950
    db eval {DELETE FROM kv WHERE key GLOB 'r:*'}
    expect "range delete" [db changes] 100
}

proc transactions {} {
    db eval {INSERT INTO kv(key, value) VALUES ('acct', 100)}
    db transaction {
        db eval {UPDATE kv SET value = value - 30 WHERE key = 'acct'}
        db eval {SELECT feox_incr('kv', 'moves', 1)}
        db eval {UPDATE ledger SET n = n + 1 WHERE id = 1}
    }
    expect "committed" [db eval {SELECT value FROM kv WHERE key IN ('acct', 'moves') ORDER BY key}] {70 1}

    db eval {BEGIN}
    db eval {UPDATE kv SET value = 0 WHERE key = 'acct'}
    db eval {INSERT INTO kv(key, value) VALUES ('ghost', 1)}
    expect "own uncommitted" [db onecolumn {SELECT value FROM kv WHERE key = 'acct'}] 0
    db eval {ROLLBACK}
    expect "rolled back" [db eval {SELECT key, value FROM kv WHERE key IN ('acct', 'ghost') ORDER BY key}] {acct 70}

    # an error inside db transaction: everything in it is rolled back, the error comes out
    set ledger [db onecolumn {SELECT n FROM ledger WHERE id = 1}]
    if {![catch {
        db transaction {
            db eval {UPDATE kv SET value = value - 50 WHERE key = 'acct'}
            db eval {SELECT feox_incr('kv', 'moves', 1)}
            db eval {SELECT feox_patch('kv', 'acct', '[{"op":"add","path":"/x","value":1}]')} ;# 70 has no members: fails
            db eval {UPDATE ledger SET n = n + 1 WHERE id = 1}
        }
    } msg]} { fail "the failing transaction did not fail" }
    expect "error inside transaction" [db eval {SELECT value FROM kv WHERE key IN ('acct', 'moves') ORDER BY key}] {70 1}
    expect "native rolled back" [db onecolumn {SELECT n FROM ledger WHERE id = 1}] $ledger
    expect "autocommit again" [db onecolumn {SELECT 1}] 1
    if {![catch {
        db transaction {
            db eval {INSERT INTO kv(key, value) VALUES ('tcl-error', 1)}
            error "application error"
        }
    } msg] || $msg ne "application error"} { fail "Tcl error in transaction: $msg" }
    expect "tcl error rolled back" [db onecolumn {SELECT count(*) FROM kv WHERE key = 'tcl-error'}] 0

    # nested db transaction = a savepoint: the inner one fails, the outer one commits
    db transaction {
        db eval {SELECT feox_incr('kv', 'moves', 10)}
        catch {
            db transaction {
                db eval {SELECT feox_incr('kv', 'moves', 100)}
                db eval {INSERT INTO kv(key, value) VALUES ('inner', 1)}
                error "inner fails"
            }
        }
        expect "inside outer" [db onecolumn {SELECT value FROM kv WHERE key = 'moves'}] 11
    }
    expect "outer committed" [db eval {SELECT key, value FROM kv WHERE key IN ('moves', 'inner')}] {moves 11}
    expect "check" [db onecolumn {SELECT feox_check('kv')}] ok
    db eval {DELETE FROM kv WHERE key IN ('acct', 'moves')}
}

# A progress handler that stops the statement at its Nth callback (what a statement time limit
# does), for N = 1, 2, ... until feox_incr completes: the connection is never left inside a
# transaction, and another connection always sees what this one sees.
proc tick {} {
    if {$::budget > 0 && [incr ::budget -1] == 0} { return 1 }
    return 0
}
proc interrupted_calls {dbfile ext} {
    open_db other $dbfile $ext
    db progress 1 tick
    for {set n 1} {$n < 2000} {incr n} {
        set ::budget $n
        set rc [catch {db eval {SELECT feox_incr('kv', 'p', 1)}} msg]
        set ::budget 0
        if {$rc && [string first interrupted $msg] < 0} { fail "interrupted feox_incr: $msg" }
        if {[catch {db eval {BEGIN; COMMIT}} msg]} { fail "left in a transaction after step $n: $msg" }
        set mine [db eval {SELECT value FROM kv WHERE key = 'p'}]
        expect "interrupted at $n" [other eval {SELECT value FROM kv WHERE key = 'p'}] $mine
        if {!$rc} break
    }
    db progress 0 {}
    if {$n < 10} { fail "feox_incr completed after $n progress callbacks" }
    expect "check after interrupts" [db onecolumn {SELECT feox_check('kv')}] ok
    other close
    db eval {DELETE FROM kv WHERE key = 'p'}
}

proc concurrent_writers {dbfile ext} {
    set n 40
    set pipes {}
    foreach id {a b} {
        lappend pipes [open |[list [info nameofexecutable] [info script] child writer $dbfile $ext $id $n 2>@stderr] r+]
    }
    set ledger [db onecolumn {SELECT n FROM ledger WHERE id = 1}]
    foreach p $pipes { puts $p go; flush $p }
    for {set i 0} {$i < $n} {incr i} {
        set key [format "wp:%04d" $i]
        db transaction immediate {
            db eval {SELECT feox_incr('kv', 'total', 1)}
            db eval {INSERT INTO kv(key, value) VALUES ($key, $i)}
            db eval {UPDATE ledger SET n = n + 1 WHERE id = 1}
        }
        db eval {SELECT feox_incr('kv', 'auto', 1)}
        # a reader never sees the feox counter and the native one disagree
        lassign [db eval {SELECT (SELECT value FROM kv WHERE key = 'total'), (SELECT n FROM ledger WHERE id = 1)}] t l
        if {$t != $l - $ledger} { fail "feox total $t and native ledger [expr {$l - $ledger}] disagree" }
    }
    foreach p $pipes {
        expect "writer output" [gets $p] done
        if {[catch {close $p} msg]} { fail "writer failed: $msg" }
    }
    set total [expr {3 * $n}]
    expect "total" [db onecolumn {SELECT value FROM kv WHERE key = 'total'}] $total
    expect "auto" [db onecolumn {SELECT value FROM kv WHERE key = 'auto'}] $total
    expect "rows" [db onecolumn {SELECT count(*) FROM kv WHERE key GLOB 'w?:*'}] $total
    expect "ledger" [db onecolumn {SELECT n FROM ledger WHERE id = 1}] [expr {$ledger + $total}]
    open_db fresh $dbfile $ext
    expect "fresh total" [fresh onecolumn {SELECT value FROM kv WHERE key = 'total'}] $total
    expect "fresh rows" [fresh onecolumn {SELECT count(*) FROM kv WHERE key GLOB 'w?:*'}] $total
    expect "fresh check" [fresh onecolumn {SELECT feox_check('kv')}] ok
    fresh close
    db eval {DELETE FROM kv WHERE key GLOB 'w?:*' OR key IN ('total', 'auto')}
}

proc exit_without_close {dbfile ext} {
    exec [info nameofexecutable] [info script] child exiter $dbfile $ext 2>@stderr
    expect "after exit" [db eval {SELECT key, value FROM kv WHERE key GLOB 'exit:*' ORDER BY key}] {exit:1 committed exit:n 5}
    expect "check after exit" [db onecolumn {SELECT feox_check('kv')}] ok
    db eval {INSERT INTO kv(key, value) VALUES ('exit:2', 'now')}
    db eval {DELETE FROM kv WHERE key GLOB 'exit:*'}
}

proc read_only {dbfile ext} {
    db eval {INSERT INTO kv(key, value) VALUES ('ro', 1)}
    open_db ro $dbfile $ext -readonly 1
    expect "ro read" [ro onecolumn {SELECT value FROM kv WHERE key = 'ro'}] 1
    expect "ro range" [ro onecolumn {SELECT count(*) FROM kv WHERE key >= 'r' AND key < 's'}] 1
    expect_error ro 8 "readonly" {ro eval {INSERT INTO kv(key, value) VALUES ('ro2', 1)}}
    expect_error ro 8 "readonly" {ro eval {UPDATE kv SET value = 2 WHERE key = 'ro'}}
    expect_error ro 8 "readonly" {ro eval {DELETE FROM kv}}
    expect_error ro 8 "readonly" {ro eval {SELECT feox_incr('kv', 'ro', 1)}}
    expect_error ro 8 "readonly" {ro eval {SELECT feox_cas('kv', 'ro', 1, 2)}}
    expect_error ro 8 "readonly" {ro eval {SELECT feox_patch('kv', 'ro', '[]')}}
    # (db transaction runs ROLLBACK after the error, so errorcode is 0 by then: the message tells)
    if {![catch {ro transaction { ro eval {INSERT INTO kv(key, value) VALUES ('ro3', 1)} }} msg] ||
        $msg ne "attempt to write a readonly database"} { fail "ro transaction: $msg" }
    expect "ro stats" [string match {\{*} [ro onecolumn {SELECT feox_stats('kv')}]] 1
    expect "ro check" [ro onecolumn {SELECT feox_check('kv')}] ok
    db eval {UPDATE kv SET value = 2 WHERE key = 'ro'}
    expect "ro sees commit" [ro onecolumn {SELECT value FROM kv WHERE key = 'ro'}] 2
    ro close
    expect "unchanged" [db eval {SELECT key, value FROM kv WHERE key GLOB 'ro*'}] {ro 2}
    db eval {DELETE FROM kv WHERE key = 'ro'}
}

proc busy_timeout {dbfile ext} {
    set holder [open |[list [info nameofexecutable] [info script] child holder $dbfile $ext 2>@stderr] r+]
    expect "holder" [gets $holder] held
    db timeout 0
    set before [db eval {SELECT key, value FROM kv ORDER BY key}]
    expect_error db 5 "locked" {db eval {INSERT INTO kv(key, value) VALUES ('busy', 1)}}
    expect_error db 5 "locked" {db eval {SELECT feox_incr('kv', 'busy', 1)}}
    expect_error db 5 "locked" {db transaction immediate { db eval {SELECT 1} }}
    expect "busy changed nothing" [db eval {SELECT key, value FROM kv ORDER BY key}] $before
    db timeout 20000
    puts $holder go
    flush $holder
    # waits in the busy handler until the holder commits
    db eval {INSERT INTO kv(key, value) VALUES ('busy', 1)}
    expect "incr after wait" [db onecolumn {SELECT feox_incr('kv', 'busy', 1)}] 2
    expect "holder released" [gets $holder] released
    if {[catch {close $holder} msg]} { fail "holder failed: $msg" }
    expect "after busy" [db eval {SELECT key, value FROM kv WHERE key IN ('busy', 'held') ORDER BY key}] {busy 2 held 1}
    db eval {DELETE FROM kv WHERE key IN ('busy', 'held')}
}

foreach mode {wal delete} {
    set dbfile [file join $DIR "tcl-$mode.db"]
    open_db db $dbfile $EXT
    expect "journal_mode" [db onecolumn "PRAGMA journal_mode = $mode"] $mode
    db eval {CREATE TABLE ledger(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)}
    db eval {INSERT INTO ledger VALUES (1, 0)}
    db eval {CREATE VIRTUAL TABLE kv USING feox}
    expect "shadow tables" [db eval {SELECT name FROM sqlite_schema WHERE name GLOB 'kv_*' AND type = 'table' ORDER BY name}] {kv_data kv_log kv_meta}
    foreach step {types_round_trip writes_and_functions ttl_and_expiry ranges transactions} {
        $step
    }
    foreach step {interrupted_calls concurrent_writers exit_without_close read_only busy_timeout} {
        $step $dbfile $EXT
    }
    expect "empty at the end" [db onecolumn {SELECT count(*) FROM kv}] 0
    expect "final check" [db onecolumn {SELECT feox_check('kv')}] ok
    db close
    if {[glob -nocomplain -directory $DIR *.feox] ne ""} { fail "a store file was made" }
    puts "tcl: $mode ok"
}
