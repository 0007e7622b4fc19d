#!/usr/bin/python3
"""test_dqlite_failover.py — a feox table on a 3-node dqlite cluster (127.0.0.1 only): writes,
kill -9 of the leader, failover, and leadership coming back to a node, with every acknowledged
write checked on the node that leads.

  test_dqlite_failover.py HOST_PROGRAM FEOX_SO

HOST_PROGRAM is build/cluster/feox_dqlite_node (tests/cluster/feox_dqlite_node.c). Every node
runs in its own process with its data directory under one mktemp directory; every process started
here is stopped by its pid when the test ends, passes or fails (finally), and the whole run is
bounded by an alarm (150 s). Steps:

 1. three nodes, 2 and 3 join node 1 as voters; CREATE VIRTUAL TABLE kv USING feox on the leader;
 2. writes through the leader: plain rows of every type, rows with ttl, counters with
    UPDATE kv SET value = value + ? WHERE key = ?, and feox_incr / feox_cas / feox_patch inside
    BEGIN ... COMMIT, plus the DML form of a JSON change (json_set in an UPDATE);
 3. a writing function in a bare SELECT (no BEGIN), sent as a query and as an exec, is refused
    with feox's error, changes nothing, and the node survives (on dqlite 1.11.1 it used to abort
    on the next write: vfsFileShmLock: Assertion 'wal->n_tx == 0');
 4. a writer keeps writing while the leader is killed with kill -9; a new leader is found (the
    failover time is printed) and has every acknowledged write; writing goes on;
 5. stale cache: the new leader reads every key (its cache is warm), hands leadership to another
    node (dqlite then closes its SQL connections); a client opens a connection on it while it
    follows and prepares a read of kv (feox loads its cache there); writes go through the other
    leader; leadership comes back; the prepared read must see those writes (the data version
    check sees frames dqlite applied underneath the connection);
 6. the killed node is restarted, leadership is handed to it, and it answers every key.
"""
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dqlite_client as dq  # noqa: E402

TIME_LIMIT = 150


class Cluster:
    def __init__(self, host, ext, tmp):
        self.host, self.ext, self.tmp = host, ext, tmp
        self.ports = free_ports(3)
        self.procs = {}

    def addr(self, i):
        return "127.0.0.1:%d" % self.ports[i - 1]

    def addrs(self):
        return [self.addr(i) for i in (1, 2, 3)]

    def node_id(self, address):
        return self.addrs().index(address) + 1

    def start(self, i):
        d = os.path.join(self.tmp, "node%d" % i)
        os.makedirs(d, exist_ok=True)
        log = open(os.path.join(self.tmp, "node%d.log" % i), "ab")
        p = subprocess.Popen([self.host, str(i), self.addr(i), d, "-e", self.ext],
                             stdout=subprocess.PIPE, stderr=log)
        log.close()
        self.procs[i] = p
        ready, _, _ = select.select([p.stdout], [], [], 10)
        line = p.stdout.readline().decode() if ready else ""
        check(line.startswith("ready %d " % i), "node %d did not start: %r" % (i, line))

    def kill9(self, i):
        os.kill(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait()

    def alive(self, i):
        return self.procs[i].poll() is None

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
            if p.stdout:
                p.stdout.close()

    def logs(self):
        out = []
        for i in (1, 2, 3):
            path = os.path.join(self.tmp, "node%d.log" % i)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append("--- node %d stderr:\n%s" % (i, f.read()[-2000:]))
        return "\n".join(out)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
            if v:
                return v
        except (OSError, ConnectionError, dq.DqliteError):
            pass
        if time.monotonic() > deadline:
            raise Failed("timed out: %s" % what)
        time.sleep(0.05)


def transfer_to(cluster, target):
    """Hand leadership to node target (retried: the target may still be catching up)."""
    def attempt():
        _lid, leader = dq.find_leader(cluster.addrs(), timeout=10)
        if leader == cluster.addr(target):
            return True
        with dq.Node(leader) as n:
            n.transfer(target)
        return dq.find_leader(cluster.addrs(), timeout=10)[1] == cluster.addr(target)
    wait_for("leadership to node %d" % target, attempt)


def read_all(node):
    return {k: (v, ttl) for k, v, ttl in node.query_sql("SELECT key, value, ttl FROM kv")}


def compare(got, model, where):
    """got: key -> (value, ttl) as read; model: key -> (value, has_ttl)."""
    check(set(got) == set(model),
          "%s: keys differ: missing %s, unexpected %s"
          % (where, sorted(set(model) - set(got))[:10], sorted(set(got) - set(model))[:10]))
    for k, (value, has_ttl) in model.items():
        v, ttl = got[k]
        check(v == value, "%s: %s = %r, acknowledged %r" % (where, k, v, value))
        check((ttl is not None and 0 < ttl <= 3600) if has_ttl else ttl is None,
              "%s: %s has ttl %r (acknowledged with%s ttl)" % (where, k, ttl,
                                                              "" if has_ttl else "out"))


def write_everything(leader, model):
    """Step 2: every kind of write, each acknowledged one recorded in model."""
    with dq.Node(leader) as n:
        n.exec_sql("CREATE VIRTUAL TABLE kv USING feox")
        for i in range(40):
            value = [i, "text %d" % i, ("blob %d" % i).encode(), i + 0.5][i % 4]
            n.exec_sql("INSERT INTO kv(key, value) VALUES(?, ?)", ["p%02d" % i, value])
            model["p%02d" % i] = (value, False)
        for i in range(10):
            n.exec_sql("INSERT INTO kv(key, value, ttl) VALUES(?, ?, 3600)", ["t%d" % i, i])
            model["t%d" % i] = (i, True)
        n.exec_sql("INSERT INTO kv(key, value) VALUES('c0', 0), ('c1', 0), ('c2', 0)")
        model.update({"c0": (0, False), "c1": (0, False), "c2": (0, False)})
        for i in range(30):
            key = "c%d" % (i % 3)
            _, changes = n.exec_sql("UPDATE kv SET value = value + ? WHERE key = ?", [i, key])
            check(changes == 1, "UPDATE value = value + ? changed %d rows" % changes)
            model[key] = (model[key][0] + i, False)
        # the functions, in an explicit transaction (BEGIN and COMMIT are execs, the SELECT a
        # query: dqlite replicates the COMMIT)
        n.exec_sql("INSERT INTO kv(key, value) VALUES('doc', '{\"n\":0,\"tags\":[]}')")
        n.exec_sql("BEGIN")
        r1 = n.query_sql("SELECT feox_incr('kv', 'c0', 100)")
        r2 = n.query_sql("SELECT feox_cas('kv', 'c1', ?, 7)", [model["c1"][0]])
        r3 = n.query_sql("SELECT feox_patch('kv', 'doc', "
                         "'[{\"op\":\"replace\",\"path\":\"/n\",\"value\":5},"
                         "{\"op\":\"add\",\"path\":\"/tags/-\",\"value\":\"x\"}]')")
        n.exec_sql("COMMIT")
        check(r1 == [[model["c0"][0] + 100]], "feox_incr returned %r" % r1)
        check(r2 == [[1]], "feox_cas returned %r" % r2)
        check(r3 == [['{"n":5,"tags":["x"]}']], "feox_patch returned %r" % r3)
        model["c0"] = (model["c0"][0] + 100, False)
        model["c1"] = (7, False)
        # the DML form of a JSON change
        n.exec_sql("UPDATE kv SET value = json_set(value, '$.m', ?) WHERE key = 'doc'", [9])
        model["doc"] = ('{"n":5,"tags":["x"],"m":9}', False)
        compare(read_all(n), model, "leader before failover")


def refused_in_bare_select(cluster, leader, model):
    """Step 3: a writing function that would commit by itself is refused; the node lives on."""
    with dq.Node(leader) as n:
        for run in (n.query_sql, n.exec_sql):
            for sql in ("SELECT feox_incr('kv', 'c2', 1)", "SELECT feox_sweep('kv')"):
                try:
                    run(sql)
                    raise Failed("%s in autocommit was not refused" % sql)
                except dq.DqliteError as e:
                    check("needs an explicit transaction under dqlite" in e.message,
                          "%s: unexpected error %r" % (sql, e.message))
        # the write that aborted the node when the call had committed by itself
        n.exec_sql("UPDATE kv SET value = value + 1 WHERE key = 'c2'")
        model["c2"] = (model["c2"][0] + 1, False)
        compare(read_all(n), model, "leader after the refused calls")
    check(all(cluster.alive(i) for i in (1, 2, 3)), "a node died after a refused call")


class Writer(threading.Thread):
    """Writes w<n> keys and counter increments to the leader until told to stop or a write fails;
    records what was acknowledged."""

    def __init__(self, leader):
        super().__init__(daemon=True)
        self.leader, self.acked, self.incr_acked = leader, [], 0
        self.started_writing = threading.Event()
        self.error = None

    def run(self):
        try:
            with dq.Node(self.leader, timeout=5.0) as n:
                i = 0
                while True:
                    n.exec_sql("INSERT INTO kv(key, value) VALUES(?, ?)", ["w%05d" % i, i])
                    self.acked.append(i)
                    n.exec_sql("UPDATE kv SET value = value + 1 WHERE key = 'c2'")
                    self.incr_acked += 1
                    i += 1
                    if i == 20:
                        self.started_writing.set()
        except (OSError, ConnectionError, dq.DqliteError) as e:
            self.error = e
            self.started_writing.set()


def failover(cluster, model):
    """Step 4: kill -9 the leader while a writer runs; the new leader has every acknowledged
    write. Returns (new leader id, seconds from kill to a leader answering, to a committed
    write)."""
    old_id, old = dq.find_leader(cluster.addrs())
    w = Writer(old)
    w.start()
    check(w.started_writing.wait(30), "the writer did not start")
    t0 = time.monotonic()
    cluster.kill9(old_id)
    w.join(30)
    check(not w.is_alive(), "the writer did not notice the leader's death")
    new_id, new = dq.find_leader(cluster.addrs(), timeout=30, exclude=(old,))
    t_leader = time.monotonic() - t0
    for i in w.acked:
        model["w%05d" % i] = (i, False)
    c2_base = model["c2"][0]
    with dq.Node(new) as n:
        got = read_all(n)
        # the one write in flight at the kill may or may not have been committed
        in_flight = "w%05d" % (len(w.acked))
        if in_flight in got:
            model[in_flight] = (len(w.acked), False)
        c2 = got["c2"][0]
        in_flight_incr = len(w.acked) > w.incr_acked  # its INSERT was acknowledged
        check(c2 == c2_base + w.incr_acked or (in_flight_incr and c2 == c2_base + w.incr_acked + 1),
              "c2 = %r after failover; %d + %d increments acknowledged"
              % (c2, c2_base, w.incr_acked))
        model["c2"] = (c2, False)
        compare(got, model, "new leader after kill -9")
        n.exec_sql("INSERT INTO kv(key, value) VALUES('after', 'failover')")
        t_write = time.monotonic() - t0
        model["after"] = ("failover", False)
        n.exec_sql("UPDATE kv SET value = value + 1 WHERE key = 'c0'")
        model["c0"] = (model["c0"][0] + 1, False)
        compare(read_all(n), model, "new leader after writing")
    print("failover: %d acknowledged writes before kill -9 of node %d; node %d leads after "
          "%.2f s, first write committed after %.2f s"
          % (len(w.acked) + w.incr_acked, old_id, new_id, t_leader, t_write))
    return new_id, t_leader, t_write


def leadership_returns(cluster, model, x, other):
    """Step 5: node x (leader now) loses leadership to other and wins it back; a connection
    that loaded feox's cache on x while it followed must see what other committed."""
    with dq.Node(cluster.addr(x)) as n:
        compare(read_all(n), model, "node %d before it hands leadership over" % x)
    transfer_to(cluster, other)
    cf = dq.Node(cluster.addr(x))
    try:
        sid = cf.prepare("SELECT key, value, ttl FROM kv")  # on a follower: loads the cache
        with dq.Node(cluster.addr(other)) as n:
            n.exec_sql("UPDATE kv SET value = value + 5 WHERE key = 'c1'")
            n.exec_sql("DELETE FROM kv WHERE key = 'p00'")
            n.exec_sql("INSERT OR REPLACE INTO kv(key, value) VALUES('p01', 'changed'), "
                       "('new', 'row')")
            n.exec_sql("UPDATE kv SET ttl = 3600 WHERE key = 'p02'")
        model["c1"] = (model["c1"][0] + 5, False)
        del model["p00"]
        model["p01"] = ("changed", False)
        model["new"] = ("row", False)
        model["p02"] = (model["p02"][0], True)
        transfer_to(cluster, x)
        got = {k: (v, ttl) for k, v, ttl in cf.query(sid)}
        compare(got, model, "node %d, a connection opened while it followed, after leadership "
                            "came back" % x)
        cf.finalize(sid)
    finally:
        cf.close()


def restarted_node_leads(cluster, model, k):
    """Step 6: the killed node comes back, leads, and answers every key; writing goes on."""
    cluster.start(k)
    transfer_to(cluster, k)
    with dq.Node(cluster.addr(k)) as n:
        compare(read_all(n), model, "restarted node %d leading" % k)
        n.exec_sql("UPDATE kv SET value = value + 1 WHERE key = 'c0'")
        model["c0"] = (model["c0"][0] + 1, False)
        compare(read_all(n), model, "restarted node %d after a write" % k)


def alarm(_sig, _frame):
    raise Failed("time limit of %d s reached" % TIME_LIMIT)


def main(argv):
    if len(argv) != 3:
        print("usage: test_dqlite_failover.py HOST_PROGRAM FEOX_SO", file=sys.stderr)
        return 2
    host, ext = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIME_LIMIT)
    tmp = tempfile.mkdtemp(prefix="feox-dqlite-")
    cluster = Cluster(host, ext, tmp)
    ok = False
    try:
        for i in (1, 2, 3):
            cluster.start(i)
        for i in (2, 3):
            wait_for("node %d joins" % i,
                     lambda i=i: dq.main(["", "join", cluster.addr(1), str(i), cluster.addr(i)])
                     == 0)
        with dq.Node(dq.find_leader(cluster.addrs())[1]) as n:
            roles = n.cluster()
        check(sorted(r for _i, _a, r in roles) == ["voter"] * 3, "cluster: %r" % roles)
        model = {}
        _lid, leader = dq.find_leader(cluster.addrs())
        write_everything(leader, model)
        refused_in_bare_select(cluster, leader, model)
        killed, _ = dq.find_leader(cluster.addrs())
        new_id, _t_leader, _t_write = failover(cluster, model)
        other = [i for i in (1, 2, 3) if i not in (killed, new_id)][0]
        leadership_returns(cluster, model, new_id, other)
        restarted_node_leads(cluster, model, killed)
        alive = [i for i in (1, 2, 3) if cluster.alive(i)]
        check(alive == [1, 2, 3], "nodes alive at the end: %r" % alive)
        ok = True
        print("dqlite failover test: ok (%d keys checked)" % len(model))
    except (Failed, dq.DqliteError, OSError, ConnectionError, TimeoutError) as e:
        print("dqlite failover test: FAILED: %s" % e, file=sys.stderr)
        print(cluster.logs(), file=sys.stderr)
    finally:
        signal.alarm(0)
        cluster.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
