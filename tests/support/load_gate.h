/*
 * load_gate.h — a gate for a store's background load, for tests of what runs while it loads.
 * Armed, it installs both test hooks of engine/store/store_internal.h: a background load stops
 * at its start until the gate opens (feox_background_load_hook), and a call that is about to
 * wait for a running load is counted and opens the gate, so that nothing waits for ever
 * (feox_load_wait_hook). Counts are read under the gate's lock (the load runs on its own thread).
 */
#ifndef FTEST_LOAD_GATE_H
#define FTEST_LOAD_GATE_H

/* Close the gate, zero both counts and install both hooks. */
void ftest_load_gate_arm(void);

/* Let every held load go (and every later one, until the next arm). */
void ftest_load_gate_open(void);

/* Open the gate and remove both hooks. */
void ftest_load_gate_disarm(void);

/* Background loads that reached the gate since the last arm. */
int ftest_load_gate_loads(void);

/* Calls that were about to wait for a running load since the last arm. */
int ftest_load_gate_waits(void);

#endif
