/*
 * plan.c — xBestIndex: which index answers a query, and the plan encoding xFilter decodes.
 *
 * Usable key constraints (BINARY collation only; a NOCASE LIKE range or COLLATE NOCASE term would
 * give wrong rows) are all handed to xFilter, which enforces each exactly, so all are omitted:
 *   key = ? / key IS ?      hash lookup of the first; the others must be equal to it
 *   key IN (...)            the whole list at once (sqlite3_vtab_in), sorted and de-duplicated
 *   key > ? >= ? < ? <= ?   every bound in any order; xFilter takes the tightest lower and upper
 *                           bound (BETWEEN, GLOB 'p*' and case-sensitive LIKE prefixes arrive as
 *                           such bounds; the GLOB/LIKE term itself is left to SQLite)
 * The plan is the best of: EQ (one hash lookup) < IN (a few lookups) < RANGE (ordered scan between
 * bounds) < SCAN (whole ordered index). With EQ or IN, bounds filter the looked-up keys.
 * ORDER BY key [ASC|DESC] (first term; the key is unique) is consumed by every plan.
 * Text keys in a UTF-16 database (feox_vtab.key_order_differs) take EQ and IN only: SQLite's
 * BINARY order is then that of the UTF-16 bytes, not the indexes' UTF-8 order, so bounds and
 * ORDER BY key are left to SQLite (which scans and sorts; equality does not depend on it).
 * LIMIT and OFFSET are consumed only when every other constraint is consumed and either there is
 * no ORDER BY or it was consumed; otherwise SQLite would apply them to rows it later filters.
 * With a >= or <= bound (possibly half of a row-value comparison SQLite re-checks) LIMIT is only
 * a hint and OFFSET is left to SQLite.
 *
 * Encoding (idxNum), decoded by xFilter in the same order:
 *   bits 0-1    feox_plan_kind (SCAN, RANGE, EQ, IN)
 *   bit  2      FEOX_PLAN_DESC: return keys in descending order
 *   bits 3-26   one feox_plan_op per argv entry, 4 bits each, in argv order (at most 6; 0 ends):
 *               EQ, IN, GT, GE, LT, LE (key operands), LIMIT, OFFSET, LIMIT_HINT (not enforced)
 *   bit  27     FEOX_PLAN_NO_VALUE: a scan whose statement uses no value (colUsed): count(*),
 *               SELECT key, ts, ttl, DELETE; its rows carry no value (feox_cursor_no_values), so
 *               a row costs its key and metadata only
 * Argv order: EQ operands, IN lists, bounds (each in constraint order), then LIMIT, OFFSET.
 * idxStr is for people (EXPLAIN QUERY PLAN), e.g. "hash lookup key=?",
 * "ordered scan key>=? AND key<? DESC LIMIT OFFSET", "full scan", "full scan, no values".
 */
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

static const char *const op_text[] = {"",      "key=?",  "key IN(...)", "key>?",  "key>=?",
                                      "key<?", "key<=?", "LIMIT",       "OFFSET", "LIMIT"};

typedef struct plan_term {
    int constraint; /* index in aConstraint */
    feox_plan_op op;
} plan_term;

/* Estimated live rows, for costs: never tiny, so a scan always looks worse than a lookup.
 * FEOX_LEN_ESTIMATE: planning never changes the store (no sweep of expired keys, no lock). */
static double table_rows(feox_vtab *vt)
{
    double n = vt->entry->store ? (double)feox_len(vt->entry->store, FEOX_LEN_ESTIMATE) : 0.0;
    if (n < (double)vt->rows_hint) {
        n = (double)vt->rows_hint; /* database mode: a cache still loading (db_mode.c) */
    }
    return n < 1000.0 ? 1000.0 : n;
}

static double log2_approx(double n)
{
    double l = 1.0;
    while (n > 2.0) {
        n /= 2.0;
        l += 1.0;
    }
    return l;
}

int feox_vt_best_index(sqlite3_vtab *tab, sqlite3_index_info *info)
{
    feox_vtab *vt = (feox_vtab *)tab;
    plan_term terms[FEOX_PLAN_MAX_ARGS];
    int n_terms = 0;
    int n_eq = 0, n_in = 0, n_lo = 0, n_hi = 0, n_ge_le = 0;
    int limit_idx = -1, offset_idx = -1;
    bool all_consumed = true;
    int pass;

    /* Pass 0: EQ, pass 1: IN, pass 2: bounds, so argv order is EQ, IN, bounds. */
    for (pass = 0; pass < 3; pass++) {
        for (int i = 0; i < info->nConstraint; i++) {
            const struct sqlite3_index_constraint *c = &info->aConstraint[i];
            if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT) {
                if (pass == 0 && c->usable) {
                    limit_idx = i;
                }
                continue;
            }
            if (c->op == SQLITE_INDEX_CONSTRAINT_OFFSET) {
                if (pass == 0 && c->usable) {
                    offset_idx = i;
                }
                continue;
            }
            feox_plan_op op = FEOX_OP_END;
            bool on_key = c->usable && c->iColumn == FEOX_COL_KEY &&
                          sqlite3_stricmp(sqlite3_vtab_collation(info, i), "BINARY") == 0;
            if (on_key) {
                switch (c->op) {
                case SQLITE_INDEX_CONSTRAINT_EQ:
                    op = sqlite3_vtab_in(info, i, -1) ? FEOX_OP_IN : FEOX_OP_EQ;
                    break;
                case SQLITE_INDEX_CONSTRAINT_IS:
                    op = FEOX_OP_EQ; /* keys are never NULL: IS NULL matches nothing, as = NULL */
                    break;
                case SQLITE_INDEX_CONSTRAINT_GT: op = FEOX_OP_GT; break;
                case SQLITE_INDEX_CONSTRAINT_GE: op = FEOX_OP_GE; break;
                case SQLITE_INDEX_CONSTRAINT_LT: op = FEOX_OP_LT; break;
                case SQLITE_INDEX_CONSTRAINT_LE: op = FEOX_OP_LE; break;
                default: break;
                }
                if (vt->key_order_differs && op != FEOX_OP_EQ && op != FEOX_OP_IN) {
                    op = FEOX_OP_END; /* a bound in the indexes' order is not one in SQLite's */
                }
            }
            int want_pass = op == FEOX_OP_EQ ? 0 : op == FEOX_OP_IN ? 1 : 2;
            if (op == FEOX_OP_END) {
                if (pass == 0) {
                    all_consumed = false; /* SQLite checks this one after us */
                }
                continue;
            }
            if (want_pass != pass) {
                continue;
            }
            /* Keep two argv slots for LIMIT and OFFSET. */
            if (n_terms >= FEOX_PLAN_MAX_ARGS - 2) {
                all_consumed = false;
                continue;
            }
            if (op == FEOX_OP_IN) {
                sqlite3_vtab_in(info, i, 1); /* the whole list in one xFilter call */
            }
            terms[n_terms].constraint = i;
            terms[n_terms].op = op;
            n_terms++;
            n_eq += op == FEOX_OP_EQ;
            n_in += op == FEOX_OP_IN;
            n_lo += op == FEOX_OP_GT || op == FEOX_OP_GE;
            n_ge_le += op == FEOX_OP_GE || op == FEOX_OP_LE;
            n_hi += op == FEOX_OP_LT || op == FEOX_OP_LE;
        }
    }

    feox_plan_kind kind = n_eq             ? FEOX_PLAN_EQ
                          : n_in           ? FEOX_PLAN_IN
                          : (n_lo || n_hi) ? FEOX_PLAN_RANGE
                                           : FEOX_PLAN_SCAN;
    bool desc = false;
    bool order_consumed = false;
    if (info->nOrderBy > 0 && info->aOrderBy[0].iColumn == FEOX_COL_KEY &&
        !vt->key_order_differs) {
        order_consumed = true;
        desc = info->aOrderBy[0].desc != 0;
    }
    if (limit_idx >= 0 && all_consumed && (info->nOrderBy == 0 || order_consumed)) {
        /* A row-value comparison such as (key, value) > (?, ?) reaches us as key >= ? (or <=)
         * that SQLite re-checks in full after us, whatever omit says; stopping early or skipping
         * an OFFSET would then lose rows. With a >= or <= bound, LIMIT is only a hint (SQLite
         * still counts rows) and OFFSET stays with SQLite. */
        bool exact_limit = n_ge_le == 0;
        terms[n_terms].constraint = limit_idx;
        terms[n_terms].op = exact_limit ? FEOX_OP_LIMIT : FEOX_OP_LIMIT_HINT;
        n_terms++;
        if (offset_idx >= 0 && exact_limit) {
            terms[n_terms].constraint = offset_idx;
            terms[n_terms].op = FEOX_OP_OFFSET;
            n_terms++;
        }
    }

    bool no_value = (kind == FEOX_PLAN_SCAN || kind == FEOX_PLAN_RANGE) &&
                    !(info->colUsed & ((sqlite3_uint64)1 << FEOX_COL_VALUE));
    int idx_num = (int)kind | (desc ? FEOX_PLAN_DESC : 0) | (no_value ? FEOX_PLAN_NO_VALUE : 0);
    for (int t = 0; t < n_terms; t++) {
        info->aConstraintUsage[terms[t].constraint].argvIndex = t + 1;
        info->aConstraintUsage[terms[t].constraint].omit = 1;
        idx_num |= (int)terms[t].op << (FEOX_PLAN_OP_SHIFT + FEOX_PLAN_OP_BITS * t);
    }
    info->idxNum = idx_num;
    info->orderByConsumed = order_consumed;

    double rows = table_rows(vt);
    switch (kind) {
    case FEOX_PLAN_EQ:
        info->estimatedCost = 1.0;
        info->estimatedRows = 1;
        info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
        break;
    case FEOX_PLAN_IN:
        info->estimatedCost = 10.0;
        info->estimatedRows = 10;
        break;
    case FEOX_PLAN_RANGE:
        if (n_lo && n_hi) {
            info->estimatedCost = 20.0 + log2_approx(rows) + rows / 20.0;
            info->estimatedRows = (sqlite3_int64)(rows / 20.0);
        } else {
            info->estimatedCost = 20.0 + log2_approx(rows) + rows / 4.0;
            info->estimatedRows = (sqlite3_int64)(rows / 4.0);
        }
        break;
    default:
        info->estimatedCost = 100.0 + rows;
        info->estimatedRows = (sqlite3_int64)rows;
        break;
    }

    /* The readable plan. */
    static const char *const kind_text[] = {"full scan", "ordered scan", "hash lookup",
                                            "hash lookup"};
    sqlite3_str *s = sqlite3_str_new(NULL);
    sqlite3_str_appendall(s, kind_text[kind]);
    const char *sep = " ";
    for (int t = 0; t < n_terms; t++) {
        if (terms[t].op >= FEOX_OP_LIMIT) {
            continue;
        }
        sqlite3_str_appendf(s, "%s%s", sep, op_text[terms[t].op]);
        sep = " AND ";
    }
    if (order_consumed) {
        sqlite3_str_appendall(s, desc ? " DESC" : " ASC");
    }
    for (int t = 0; t < n_terms; t++) {
        if (terms[t].op >= FEOX_OP_LIMIT) {
            sqlite3_str_appendf(s, " %s", op_text[terms[t].op]);
        }
    }
    if (no_value) {
        sqlite3_str_appendall(s, ", no values");
    }
    info->idxStr = sqlite3_str_finish(s);
    info->needToFreeIdxStr = 1;
    if (info->idxStr == NULL) {
        return SQLITE_NOMEM;
    }
    return SQLITE_OK;
}
