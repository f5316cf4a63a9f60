/* The linearizability search loop of labkit.check.linearizability, compiled.
 *
 * Search(ops, outputs, nk, kcalls, krets, ocalls, step, state_key, read_only,
 *        states, init_key, init_state, lookahead, overwritten, as_seen,
 *        lookahead_after, overwritten_after)
 * runs exactly the loop of _Search._run_python: the same order of trials, the
 * same memo, the same shortcuts, the same step counts and results. The model
 * stays in Python: its step is called once per (operation class, state) pair,
 * as the Python loop's step cache does; state keys are numbered here, so the
 * memo holds bitsets and small integers instead of tuples.
 *
 * resume(slice_steps) runs to the next yield point (None), or to the verdict
 * (True or False); outcome() then gives what the explanations need.
 * The constructor raises OverflowError when a time is not a finite float or
 * an int that a double holds exactly: the caller then uses the Python loop.
 * order(ops) is _order_python, for plain times.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MISS (-2)
#define ILLEGAL (-1)
#define OVERWRITTEN (-1)
#define EMPTY_KEY UINT64_MAX

typedef struct {
    int op, sk, klo, rp;
} Entry;

/* Open addressing: uint64 key -> int32 value. */
typedef struct {
    uint64_t *keys;
    int32_t *vals;
    size_t cap, used;
} IntMap;

typedef struct {
    PyObject *inp, *out; /* borrowed: the ops and outputs lists hold them */
    int ro;
    int *members;
    int nmembers, capmembers;
} Class;

typedef struct {
    PyObject_HEAD
    /* inputs */
    PyObject *ops, *outputs, *step, *keyf, *read_only, *states, *lookahead, *overwritten, *as_seen;
    PyObject *viable, *dead; /* the hooks, once asked for */
    int n, nk, wk, wn;
    double *kcalls, *krets, *ocalls;
    /* per operation */
    int *rorder, *khi, *ohi, *cls, *pred;
    char *ro, *done, *blamed;
    PyObject **inp;
    /* operation classes: same input and output objects */
    Class *classes;
    int nclasses, capclasses;
    IntMap classmap; /* hash of (input, output) pointers -> class; a clash tries the hash + 1 */
    /* states: numbered by key */
    PyObject *intern; /* key -> number */
    PyObject **skeys, **sstates;
    int nstates, capstates;
    IntMap cache; /* (class << 32 | state) -> state after, or ILLEGAL */
    /* the memo: (completed set, state or OVERWRITTEN) -> entry; entries may hold optional sets */
    uint64_t *entries;
    size_t nentries, capentries;
    int64_t *slots;
    size_t capslots;
    uint64_t *olists; /* nodes: next + 1 (0 ends), then wn words */
    size_t nolists, capolists;
    /* search state */
    uint64_t *kb, *ob, *tmp;
    Entry *stack;
    int sp;
    Entry *best;
    int nbest;
    int *blamed_order;
    int nblamed;
    long long pops, yield_at, steps;
    int depth, best_depth, klo, rp, hi, phase, c, sk, best_key, best_klo, best_rp;
    int hooks, has_optional, started, finished, verdict;
    long long lookahead_after, overwritten_after; /* operations taken back before each hook is asked for */
} Search;

/* ---- small helpers ----------------------------------------------------- */

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static int intmap_init(IntMap *m, size_t cap) {
    m->keys = PyMem_Malloc(cap * sizeof(uint64_t));
    m->vals = PyMem_Malloc(cap * sizeof(int32_t));
    if (!m->keys || !m->vals) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < cap; i++) m->keys[i] = EMPTY_KEY;
    m->cap = cap;
    m->used = 0;
    return 0;
}

static void intmap_free(IntMap *m) {
    PyMem_Free(m->keys);
    PyMem_Free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
}

static int32_t intmap_get(const IntMap *m, uint64_t key, int32_t missing) {
    size_t mask = m->cap - 1, i = mix(key) & mask;
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key) return m->vals[i];
        if (k == EMPTY_KEY) return missing;
        i = (i + 1) & mask;
    }
}

static int intmap_put(IntMap *m, uint64_t key, int32_t val) {
    if (2 * (m->used + 1) > m->cap) {
        IntMap bigger;
        if (intmap_init(&bigger, 2 * m->cap) < 0) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] != EMPTY_KEY) intmap_put(&bigger, m->keys[i], m->vals[i]);
        intmap_free(m);
        *m = bigger;
    }
    size_t mask = m->cap - 1, i = mix(key) & mask;
    while (m->keys[i] != EMPTY_KEY && m->keys[i] != key) i = (i + 1) & mask;
    if (m->keys[i] == EMPTY_KEY) m->used++;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

static void *grow(void *array, size_t *cap, size_t need, size_t item) {
    if (need <= *cap) return array;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need) cap2 *= 2;
    void *bigger = PyMem_Realloc(array, cap2 * item);
    if (!bigger) {
        PyErr_NoMemory();
        return NULL;
    }
    *cap = cap2;
    return bigger;
}

/* A time as a double: 1, or 0 when it is not a finite float or an int that a double holds exactly. */
static int plain_time(PyObject *t, double *v) {
    if (PyFloat_CheckExact(t)) {
        *v = PyFloat_AS_DOUBLE(t);
    } else if (PyLong_CheckExact(t)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(t, &overflow);
        if (overflow || x > (1LL << 53) || x < -(1LL << 53)) return 0;
        *v = (double)x;
    } else {
        return 0;
    }
    return *v == *v && *v - *v == 0.0; /* not NaN, not infinite */
}

/* A list of times as doubles; -1 with OverflowError when one is not plain. */
static int times(PyObject *list, double **out) {
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "times must be a list");
        return -1;
    }
    Py_ssize_t len = PyList_GET_SIZE(list);
    *out = PyMem_Malloc((len + 1) * sizeof(double));
    if (!*out) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++)
        if (!plain_time(PyList_GET_ITEM(list, i), &(*out)[i])) {
            PyErr_SetString(PyExc_OverflowError, "a time the compiled search cannot compare exactly");
            return -1;
        }
    return 0;
}

static int bisect_right(const double *a, int len, double x) {
    int lo = 0, hi = len;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x < a[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Stable sort of 0..len-1 by keys (merge sort), as sorted(range(len), key=keys.__getitem__). */
static void sort_by(int *idx, int *scratch, int len, const double *keys) {
    if (len < 2) return;
    int half = len / 2;
    sort_by(idx, scratch, half, keys);
    sort_by(idx + half, scratch, len - half, keys);
    int i = 0, j = half, k = 0;
    while (i < half && j < len) scratch[k++] = keys[idx[j]] < keys[idx[i]] ? idx[j++] : idx[i++];
    while (i < half) scratch[k++] = idx[i++];
    while (j < len) scratch[k++] = idx[j++];
    memcpy(idx, scratch, len * sizeof(int));
}

/* ---- states ------------------------------------------------------------ */

/* The number of state key ``key`` (reached by state ``state``), numbering it if new. */
static int intern_state(Search *s, PyObject *key, PyObject *state) {
    PyObject *found = PyDict_GetItemWithError(s->intern, key);
    if (found) return (int)PyLong_AsLong(found);
    if (PyErr_Occurred()) return -1;
    size_t cap = s->capstates;
    PyObject **keys = grow(s->skeys, &cap, s->nstates + 1, sizeof(PyObject *));
    if (!keys) return -1;
    s->skeys = keys;
    cap = s->capstates;
    PyObject **sts = grow(s->sstates, &cap, s->nstates + 1, sizeof(PyObject *));
    if (!sts) return -1;
    s->sstates = sts;
    s->capstates = (int)cap;
    PyObject *number = PyLong_FromLong(s->nstates);
    if (!number || PyDict_SetItem(s->intern, key, number) < 0) {
        Py_XDECREF(number);
        return -1;
    }
    Py_DECREF(number);
    PyObject *kept = state;
    if (s->keyf != Py_None) {
        kept = PyDict_SetDefault(s->states, key, state);
        if (!kept) return -1;
    }
    Py_INCREF(key);
    Py_INCREF(kept);
    s->skeys[s->nstates] = key;
    s->sstates[s->nstates] = kept;
    return s->nstates++;
}

/* The state after ops[c] from state number sk: a number, ILLEGAL, or MISS with an exception set. */
static int step_of(Search *s, int c, int sk) {
    uint64_t key = (uint64_t)s->cls[c] << 32 | (uint32_t)sk;
    int32_t nsk = intmap_get(&s->cache, key, MISS);
    if (nsk != MISS) return nsk;
    PyObject *args[3] = {s->sstates[sk], s->inp[c], PyList_GET_ITEM(s->outputs, c)};
    PyObject *result = PyObject_Vectorcall(s->step, args, 3, NULL);
    if (!result) return MISS;
    PyObject *pair = PySequence_Tuple(result);
    Py_DECREF(result);
    if (!pair) return MISS;
    if (PyTuple_GET_SIZE(pair) != 2) {
        PyErr_Format(PyExc_ValueError, "a model step returns (legal, state), not %zd values", PyTuple_GET_SIZE(pair));
        Py_DECREF(pair);
        return MISS;
    }
    int legal = PyObject_IsTrue(PyTuple_GET_ITEM(pair, 0));
    if (legal < 0) {
        Py_DECREF(pair);
        return MISS;
    }
    if (!legal) {
        nsk = ILLEGAL;
    } else {
        PyObject *ns = PyTuple_GET_ITEM(pair, 1);
        if (s->keyf == Py_None) {
            nsk = intern_state(s, ns, ns);
        } else {
            PyObject *k = PyObject_CallOneArg(s->keyf, ns);
            if (!k) {
                Py_DECREF(pair);
                return MISS;
            }
            nsk = intern_state(s, k, ns);
            Py_DECREF(k);
        }
        if (nsk < 0) {
            Py_DECREF(pair);
            return MISS;
        }
    }
    Py_DECREF(pair);
    if (intmap_put(&s->cache, key, nsk) < 0) return MISS;
    return nsk;
}

/* ---- operations -------------------------------------------------------- */

static PyObject *input_name; /* "input", interned at import */

/* First reach of ops[c]: its input, class, read-only flag and identical predecessor. */
static int setup_op(Search *s, int c) {
    PyObject *inp = PyObject_GetAttr(PyList_GET_ITEM(s->ops, c), input_name);
    if (!inp) return -1;
    s->inp[c] = inp;
    PyObject *out = PyList_GET_ITEM(s->outputs, c);
    uint64_t h = mix((uint64_t)(uintptr_t)inp ^ mix((uint64_t)(uintptr_t)out));
    if (h == EMPTY_KEY) h = 0;
    int k;
    /* Probe the class map: keys are hashes, the classes say whether they match. */
    for (;; h = h + 1 == EMPTY_KEY ? 0 : h + 1) {
        k = intmap_get(&s->classmap, h, -1);
        if (k < 0 || (s->classes[k].inp == inp && s->classes[k].out == out)) break;
    }
    if (k < 0) {
        size_t cap = s->capclasses;
        Class *classes = grow(s->classes, &cap, s->nclasses + 1, sizeof(Class));
        if (!classes) return -1;
        s->classes = classes;
        s->capclasses = (int)cap;
        k = s->nclasses;
        Class *new = &s->classes[k];
        memset(new, 0, sizeof(Class));
        new->inp = inp;
        new->out = out;
        if (s->read_only != Py_None) {
            PyObject *args[2] = {inp, out};
            PyObject *r = PyObject_Vectorcall(s->read_only, args, 2, NULL);
            if (!r) return -1;
            new->ro = PyObject_IsTrue(r);
            Py_DECREF(r);
            if (new->ro < 0) return -1;
        }
        s->nclasses++;
        if (intmap_put(&s->classmap, h, k) < 0) return -1;
    }
    Class *cl = &s->classes[k];
    s->cls[c] = k;
    s->ro[c] = (char)cl->ro;
    if (cl->nmembers) {
        if (c < s->nk) {
            double mine = s->krets[c];
            for (int m = cl->nmembers - 1; m >= 0; m--) {
                int p = cl->members[m];
                if (p < s->nk && s->krets[p] <= mine) {
                    s->pred[c] = p;
                    break;
                }
            }
        } else if (cl->members[cl->nmembers - 1] >= s->nk) {
            s->pred[c] = cl->members[cl->nmembers - 1];
        }
    }
    size_t cap = cl->capmembers;
    int *members = grow(cl->members, &cap, cl->nmembers + 1, sizeof(int));
    if (!members) return -1;
    cl->members = members;
    cl->capmembers = (int)cap;
    cl->members[cl->nmembers++] = c;
    return 0;
}

static int khi_of(Search *s, int j) {
    if (s->khi[j] < 0) s->khi[j] = bisect_right(s->kcalls, s->nk, s->krets[j]);
    return s->khi[j];
}

static int ohi_of(Search *s, int j) {
    if (s->ohi[j] < 0) s->ohi[j] = s->nk + bisect_right(s->ocalls, s->n - s->nk, s->krets[j]);
    return s->ohi[j];
}

/* ---- the memo ---------------------------------------------------------- */

/* Entries: [state number, head of its optional sets (index + 1, 0: none), wk words]. */
#define ENTRY_WORDS(s) (2 + (size_t)(s)->wk)

static uint64_t memo_hash(const Search *s, const uint64_t *kbits, int dkey) {
    uint64_t h = mix((uint64_t)(uint32_t)dkey + 0x9e3779b97f4a7c15ULL);
    for (int w = 0; w < s->wk; w++) h = mix(h ^ kbits[w]) + w;
    return h;
}

/* The entry of (kbits, dkey), made if new (*made set). Returns its index, or -1 (error). */
static int64_t memo_entry(Search *s, const uint64_t *kbits, int dkey, int *made) {
    size_t ew = ENTRY_WORDS(s);
    if (2 * (s->nentries + 1) > s->capslots) {
        size_t cap = s->capslots ? 2 * s->capslots : 64;
        int64_t *slots = PyMem_Malloc(cap * sizeof(int64_t));
        if (!slots) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < cap; i++) slots[i] = -1;
        for (size_t e = 0; e < s->nentries; e++) {
            uint64_t *entry = s->entries + e * ew;
            size_t i = memo_hash(s, entry + 2, (int)(int64_t)entry[0]) & (cap - 1);
            while (slots[i] >= 0) i = (i + 1) & (cap - 1);
            slots[i] = (int64_t)e;
        }
        PyMem_Free(s->slots);
        s->slots = slots;
        s->capslots = cap;
    }
    size_t mask = s->capslots - 1, i = memo_hash(s, kbits, dkey) & mask;
    for (;;) {
        int64_t e = s->slots[i];
        if (e < 0) break;
        uint64_t *entry = s->entries + (size_t)e * ew;
        if ((int)(int64_t)entry[0] == dkey && !memcmp(entry + 2, kbits, s->wk * sizeof(uint64_t))) {
            *made = 0;
            return e;
        }
        i = (i + 1) & mask;
    }
    size_t cap = s->capentries;
    uint64_t *entries = grow(s->entries, &cap, (s->nentries + 1) * ew, sizeof(uint64_t));
    if (!entries) return -1;
    s->entries = entries;
    s->capentries = cap;
    uint64_t *entry = s->entries + s->nentries * ew;
    entry[0] = (uint64_t)(int64_t)dkey;
    entry[1] = 0;
    memcpy(entry + 2, kbits, s->wk * sizeof(uint64_t));
    s->slots[i] = (int64_t)s->nentries;
    *made = 1;
    return (int64_t)s->nentries++;
}

/* Whether an optional set already recorded for entry e is a subset of obits;
 * if none is, obits is recorded. -1 on error. */
static int dominated(Search *s, int64_t e, const uint64_t *obits) {
    size_t ew = ENTRY_WORDS(s), nw = 1 + (size_t)s->wn;
    uint64_t *entry = s->entries + (size_t)e * ew;
    for (uint64_t node = entry[1]; node; node = s->olists[(node - 1) * nw]) {
        const uint64_t *other = s->olists + (node - 1) * nw + 1;
        int subset = 1;
        for (int w = 0; w < s->wn; w++)
            if (other[w] & ~obits[w]) {
                subset = 0;
                break;
            }
        if (subset) return 1;
    }
    size_t cap = s->capolists;
    uint64_t *olists = grow(s->olists, &cap, (s->nolists + 1) * nw, sizeof(uint64_t));
    if (!olists) return -1;
    s->olists = olists;
    s->capolists = cap;
    entry = s->entries + (size_t)e * ew;
    uint64_t *node = s->olists + s->nolists * nw;
    node[0] = entry[1];
    memcpy(node + 1, obits, s->wn * sizeof(uint64_t));
    entry[1] = ++s->nolists;
    return 0;
}

/* ---- the hooks --------------------------------------------------------- */

/* klin | olin (with ops[extra] added when extra >= 0) as a Python int. */
static PyObject *placed_int(Search *s, int extra) {
    unsigned char *bytes = (unsigned char *)s->tmp;
    for (int w = 0; w < s->wn; w++) {
        uint64_t word = s->ob[w] | (w < s->wk ? s->kb[w] : 0);
        if (extra >= 0 && extra / 64 == w) word |= 1ULL << (extra % 64);
        for (int b = 0; b < 8; b++) bytes[8 * w + b] = (unsigned char)(word >> (8 * b));
    }
    return _PyLong_FromByteArray(bytes, 8 * (size_t)s->wn, 1, 0);
}

/* Whether the overwritten hook says state nsk is dead with ops[extra] added: 1, 0, -1 (error). */
static int is_dead(Search *s, int nsk, int extra) {
    PyObject *bits = placed_int(s, extra);
    if (!bits) return -1;
    PyObject *args[2] = {s->sstates[nsk], bits};
    PyObject *r = PyObject_Vectorcall(s->dead, args, 2, NULL);
    Py_DECREF(bits);
    if (!r) return -1;
    int answer = PyObject_IsTrue(r);
    Py_DECREF(r);
    return answer;
}

static int is_viable(Search *s) {
    PyObject *bits = placed_int(s, -1);
    if (!bits) return -1;
    PyObject *i = PyLong_FromLong(s->hi < s->nk - 1 ? s->hi : s->nk - 1);
    if (!i) {
        Py_DECREF(bits);
        return -1;
    }
    PyObject *args[3] = {s->sstates[s->sk], bits, i};
    PyObject *r = PyObject_Vectorcall(s->viable, args, 3, NULL);
    Py_DECREF(bits);
    Py_DECREF(i);
    if (!r) return -1;
    int answer = PyObject_IsTrue(r);
    Py_DECREF(r);
    return answer;
}

/* hook = factory(as_seen()) */
static PyObject *make_hook(Search *s, PyObject *factory) {
    PyObject *seen = PyObject_CallNoArgs(s->as_seen);
    if (!seen) return NULL;
    PyObject *hook = PyObject_CallOneArg(factory, seen);
    Py_DECREF(seen);
    return hook;
}

/* ---- the search -------------------------------------------------------- */

#define SETBIT(a, i) ((a)[(i) / 64] |= 1ULL << ((i) % 64))
#define FLIPBIT(a, i) ((a)[(i) / 64] ^= 1ULL << ((i) % 64))

static void push(Search *s, int c) {
    Entry *e = &s->stack[s->sp++];
    e->op = c;
    e->sk = s->sk;
    e->klo = s->klo;
    e->rp = s->rp;
}

/* After placing completed ops[c]: advance rp (1 if every completed op is placed) and klo. */
static int advance(Search *s, int c) {
    if (c == s->rorder[s->rp]) {
        s->rp++;
        while (s->done[s->rorder[s->rp]]) s->rp++;
        if (s->rp == s->nk) return 1;
        s->hi = khi_of(s, s->rorder[s->rp]);
    }
    if (c == s->klo) {
        s->klo++;
        while (s->done[s->klo]) s->klo++;
    }
    return 0;
}

static void blame(Search *s, int c) {
    if (!s->blamed[c]) {
        s->blamed[c] = 1;
        s->blamed_order[s->nblamed++] = c;
    }
}

/* Run to the next yield point (returns 2), or the verdict (1: found, 0: none); -1 on error. */
static int run(Search *s, long long slice) {
    int nk = s->nk, c = s->c, sk = s->sk;
    char *done = s->done;
    if (!s->started) {
        s->started = 1;
        s->yield_at = slice;
        s->hi = khi_of(s, s->rorder[0]);
    } else {
        s->yield_at = s->steps + slice;
        goto backtrack;
    }
    for (;;) {
        while (c < s->hi) {
            if (done[c]) {
                c++;
                continue;
            }
            if (s->cls[c] < 0 && setup_op(s, c) < 0) return -1;
            if (!done[s->pred[c]]) {
                c++;
                continue;
            }
            int nsk = step_of(s, c, sk);
            if (nsk == MISS) return -1;
            if (nsk == ILLEGAL) {
                blame(s, c);
                c++;
                continue;
            }
            if (s->phase) {
                /* An optional operation; one that changes nothing is never needed. */
                if (nsk == sk) {
                    c++;
                    continue;
                }
                int dkey = nsk;
                if (s->dead) {
                    int d = is_dead(s, nsk, c);
                    if (d < 0) return -1;
                    if (d) dkey = OVERWRITTEN;
                }
                SETBIT(s->ob, c);
                int made;
                int64_t e = memo_entry(s, s->kb, dkey, &made);
                int seen = e < 0 ? -1 : dominated(s, e, s->ob);
                if (seen) {
                    FLIPBIT(s->ob, c);
                    if (seen < 0) return -1;
                    c++;
                    continue;
                }
                s->sk = sk;
                push(s, c);
                done[c] = 1;
                sk = nsk;
                s->phase = 0;
                s->hi = khi_of(s, s->rorder[s->rp]);
            } else if (s->ro[c]) {
                /* A legal read: placed at once, no memo, no lookahead (nothing changed). */
                s->sk = sk;
                push(s, c);
                done[c] = 1;
                SETBIT(s->kb, c);
                s->depth++;
                if (advance(s, c)) goto found;
                c = s->klo;
                continue;
            } else {
                int dkey = nsk;
                SETBIT(s->kb, c);
                if (s->dead) {
                    int d = is_dead(s, nsk, -1);
                    if (d < 0) {
                        FLIPBIT(s->kb, c);
                        return -1;
                    }
                    if (d) dkey = OVERWRITTEN;
                }
                int made;
                int64_t e = memo_entry(s, s->kb, dkey, &made);
                int seen = e < 0 ? -1 : (s->has_optional ? dominated(s, e, s->ob) : !made);
                if (seen) {
                    FLIPBIT(s->kb, c);
                    if (seen < 0) return -1;
                    c++;
                    continue;
                }
                s->sk = sk;
                push(s, c);
                done[c] = 1;
                sk = nsk;
                s->depth++;
                if (advance(s, c)) goto found;
            }
            c = s->klo;
            if (!s->viable) continue;
            s->sk = sk;
            int v = is_viable(s);
            if (v < 0) return -1;
            if (v) continue;
            goto dead_end; /* the lookahead sees a dead end */
        }
        if (!s->phase && s->has_optional) {
            s->phase = 1;
            c = nk;
            s->hi = ohi_of(s, s->rorder[s->rp]);
            continue;
        }
    dead_end:
        /* Nothing more can be placed from here. */
        if (s->hooks && s->pops >= s->lookahead_after) {
            if (!s->viable && s->lookahead != Py_None) {
                s->viable = make_hook(s, s->lookahead);
                if (!s->viable) return -1;
            }
            if (s->pops >= s->overwritten_after) {
                s->hooks = 0;
                if (s->overwritten != Py_None) {
                    s->dead = make_hook(s, s->overwritten);
                    if (!s->dead) return -1;
                }
            }
        }
        if (s->depth > s->best_depth) {
            s->best_depth = s->depth;
            memcpy(s->best, s->stack, s->sp * sizeof(Entry));
            s->nbest = s->sp;
            s->best_key = sk;
            s->best_klo = s->klo;
            s->best_rp = s->rp;
        }
        if (s->pops + s->sp >= s->yield_at) {
            s->steps = s->pops + s->sp;
            s->c = c;
            s->sk = sk;
            return 2;
        }
    backtrack:
        for (;;) {
            if (!s->sp) {
                s->steps = s->pops;
                return 0;
            }
            Entry *e = &s->stack[--s->sp];
            c = e->op;
            sk = e->sk;
            s->klo = e->klo;
            s->rp = e->rp;
            s->pops++;
            done[c] = 0;
            if (c >= nk) {
                FLIPBIT(s->ob, c);
                s->phase = 1;
                s->hi = s->ohi[s->rorder[s->rp]];
                break;
            }
            FLIPBIT(s->kb, c);
            s->depth--;
            if (!s->ro[c]) {
                s->phase = 0;
                s->hi = s->khi[s->rorder[s->rp]];
                break;
            }
        }
        c++;
    }
found:
    s->steps = s->pops + s->sp;
    s->sk = sk;
    return 1;
}

/* ---- ordering a partition's operations ---------------------------------- */

static PyObject *call_name, *ret_name; /* "call" and "ret", interned at import */

/* A list of items[idx[i]] for i < len. */
static PyObject *pick(PyObject **items, const int *idx, int len) {
    PyObject *list = PyList_New(len);
    if (!list) return NULL;
    for (int i = 0; i < len; i++) {
        Py_INCREF(items[idx[i]]);
        PyList_SET_ITEM(list, i, items[idx[i]]);
    }
    return list;
}

/* order(ops): as _order_python, or None where that one must decide (a time that
 * is not plain, an operation that returns before its call). */
static PyObject *order(PyObject *module, PyObject *ops) {
    if (!PyList_Check(ops)) Py_RETURN_NONE;
    int n = (int)PyList_GET_SIZE(ops), nk = 0, no = 0;
    PyObject *result = NULL;
    PyObject **calls = PyMem_Calloc(n + 1, sizeof(PyObject *)), **rets = PyMem_Calloc(n + 1, sizeof(PyObject *));
    double *at = PyMem_Malloc((n + 1) * sizeof(double));
    int *kidx = PyMem_Malloc((n + 1) * sizeof(int)), *oidx = PyMem_Malloc((n + 1) * sizeof(int));
    int *scratch = PyMem_Malloc((n + 1) * sizeof(int));
    if (!calls || !rets || !at || !kidx || !oidx || !scratch) {
        PyErr_NoMemory();
        goto done;
    }
    for (int i = 0; i < n; i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        calls[i] = PyObject_GetAttr(op, call_name);
        if (!calls[i]) goto done;
        rets[i] = PyObject_GetAttr(op, ret_name);
        if (!rets[i]) goto done;
        double ret;
        if (!plain_time(calls[i], &at[i])) goto python;
        if (rets[i] == Py_None) {
            oidx[no++] = i;
            continue;
        }
        if (!plain_time(rets[i], &ret) || ret < at[i]) goto python;
        kidx[nk++] = i;
    }
    sort_by(kidx, scratch, nk, at);
    sort_by(oidx, scratch, no, at);
    memcpy(kidx + nk, oidx, no * sizeof(int));
    PyObject *ordered = pick(((PyListObject *)ops)->ob_item, kidx, n), *kcalls = pick(calls, kidx, nk);
    PyObject *krets = pick(rets, kidx, nk), *ocalls = pick(calls, oidx, no);
    if (ordered && kcalls && krets && ocalls) result = PyTuple_Pack(4, ordered, kcalls, krets, ocalls);
    Py_XDECREF(ordered);
    Py_XDECREF(kcalls);
    Py_XDECREF(krets);
    Py_XDECREF(ocalls);
    goto done;
python:
    result = Py_NewRef(Py_None);
done:
    if (calls && rets)
        for (int i = 0; i < n; i++) {
            Py_XDECREF(calls[i]);
            Py_XDECREF(rets[i]);
        }
    PyMem_Free(calls);
    PyMem_Free(rets);
    PyMem_Free(at);
    PyMem_Free(kidx);
    PyMem_Free(oidx);
    PyMem_Free(scratch);
    return result;
}

static PyMethodDef module_methods[] = {
    {"order", (PyCFunction)order, METH_O,
     "order(ops) -> (ops in search order, kcalls, krets, ocalls), or None: as _order_python."},
    {NULL, NULL, 0, NULL},
};

/* ---- the Python type --------------------------------------------------- */

static int Search_traverse(Search *s, visitproc visit, void *arg) {
    Py_VISIT(s->ops);
    Py_VISIT(s->outputs);
    Py_VISIT(s->step);
    Py_VISIT(s->keyf);
    Py_VISIT(s->read_only);
    Py_VISIT(s->states);
    Py_VISIT(s->lookahead);
    Py_VISIT(s->overwritten);
    Py_VISIT(s->as_seen);
    Py_VISIT(s->viable);
    Py_VISIT(s->dead);
    Py_VISIT(s->intern);
    for (int i = 0; i < s->nstates; i++) {
        Py_VISIT(s->skeys[i]);
        Py_VISIT(s->sstates[i]);
    }
    if (s->inp)
        for (int i = 0; i < s->n; i++) Py_VISIT(s->inp[i]);
    return 0;
}

static int Search_clear(Search *s) {
    Py_CLEAR(s->ops);
    Py_CLEAR(s->outputs);
    Py_CLEAR(s->step);
    Py_CLEAR(s->keyf);
    Py_CLEAR(s->read_only);
    Py_CLEAR(s->states);
    Py_CLEAR(s->lookahead);
    Py_CLEAR(s->overwritten);
    Py_CLEAR(s->as_seen);
    Py_CLEAR(s->viable);
    Py_CLEAR(s->dead);
    Py_CLEAR(s->intern);
    for (int i = 0; i < s->nstates; i++) {
        Py_CLEAR(s->skeys[i]);
        Py_CLEAR(s->sstates[i]);
    }
    s->nstates = 0;
    if (s->inp)
        for (int i = 0; i < s->n; i++) Py_CLEAR(s->inp[i]);
    return 0;
}

static void Search_dealloc(Search *s) {
    PyObject_GC_UnTrack(s);
    Search_clear(s);
    void *arrays[] = {s->kcalls, s->krets, s->ocalls, s->rorder, s->khi, s->ohi, s->cls, s->pred, s->ro,
                      s->done, s->blamed, s->inp, s->skeys, s->sstates, s->entries, s->slots, s->olists,
                      s->kb, s->ob, s->tmp, s->stack, s->best, s->blamed_order};
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) PyMem_Free(arrays[i]);
    for (int k = 0; k < s->nclasses; k++) PyMem_Free(s->classes[k].members);
    PyMem_Free(s->classes);
    intmap_free(&s->classmap);
    intmap_free(&s->cache);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *Search_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *ops, *outputs, *kcalls, *krets, *ocalls, *step, *keyf, *read_only, *states, *init_key, *init_state;
    PyObject *lookahead, *overwritten, *as_seen;
    int nk;
    long long lookahead_after, overwritten_after;
    if (!PyArg_ParseTuple(args, "O!O!iO!O!O!OOOO!OOOOOLL:Search", &PyList_Type, &ops, &PyList_Type, &outputs, &nk,
                          &PyList_Type, &kcalls, &PyList_Type, &krets, &PyList_Type, &ocalls, &step, &keyf,
                          &read_only, &PyDict_Type, &states, &init_key, &init_state, &lookahead, &overwritten,
                          &as_seen, &lookahead_after, &overwritten_after))
        return NULL;
    Search *s = (Search *)type->tp_alloc(type, 0);
    if (!s) return NULL;
    s->lookahead_after = lookahead_after;
    s->overwritten_after = overwritten_after;
    int n = (int)PyList_GET_SIZE(ops);
    s->n = n;
    s->nk = nk;
    s->wk = (nk + 63) / 64;
    s->wn = (n + 63) / 64;
    if (s->wn == 0) s->wn = 1;
    if (s->wk == 0) s->wk = 1;
    PyObject *refs[] = {ops, outputs, step, keyf, read_only, states, lookahead, overwritten, as_seen};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) Py_INCREF(refs[i]);
    s->ops = ops;
    s->outputs = outputs;
    s->step = step;
    s->keyf = keyf;
    s->read_only = read_only;
    s->states = states;
    s->lookahead = lookahead;
    s->overwritten = overwritten;
    s->as_seen = as_seen;
    s->hooks = lookahead != Py_None || overwritten != Py_None;
    s->has_optional = n > nk;
    s->intern = PyDict_New();
    if (!s->intern) goto error;
    if (PyList_GET_SIZE(outputs) != n || PyList_GET_SIZE(kcalls) != nk || PyList_GET_SIZE(krets) != nk ||
        PyList_GET_SIZE(ocalls) != n - nk || nk < 1) {
        PyErr_SetString(PyExc_ValueError, "inconsistent search inputs");
        goto error;
    }
    if (times(kcalls, &s->kcalls) < 0 || times(krets, &s->krets) < 0 || times(ocalls, &s->ocalls) < 0) goto error;
    s->rorder = PyMem_Malloc((nk + 1) * sizeof(int));
    s->khi = PyMem_Malloc(nk * sizeof(int));
    s->ohi = PyMem_Malloc(nk * sizeof(int));
    s->cls = PyMem_Malloc(n * sizeof(int));
    s->pred = PyMem_Malloc(n * sizeof(int));
    s->ro = PyMem_Calloc(n, 1);
    s->done = PyMem_Calloc(n + 2, 1);
    s->blamed = PyMem_Calloc(n, 1);
    s->blamed_order = PyMem_Malloc(n * sizeof(int));
    s->inp = PyMem_Calloc(n, sizeof(PyObject *));
    s->kb = PyMem_Calloc(s->wk, sizeof(uint64_t));
    s->ob = PyMem_Calloc(s->wn, sizeof(uint64_t));
    s->tmp = PyMem_Calloc(s->wn, sizeof(uint64_t));
    s->stack = PyMem_Malloc(n * sizeof(Entry));
    s->best = PyMem_Malloc(n * sizeof(Entry));
    int *scratch = PyMem_Malloc((nk + 1) * sizeof(int));
    if (!s->rorder || !s->khi || !s->ohi || !s->cls || !s->pred || !s->ro || !s->done || !s->blamed ||
        !s->blamed_order || !s->inp || !s->kb || !s->ob || !s->tmp || !s->stack || !s->best || !scratch) {
        PyMem_Free(scratch);
        PyErr_NoMemory();
        goto error;
    }
    for (int i = 0; i < nk; i++) {
        s->rorder[i] = i;
        s->khi[i] = s->ohi[i] = -1;
    }
    sort_by(s->rorder, scratch, nk, s->krets);
    PyMem_Free(scratch);
    s->rorder[nk] = n; /* a sentinel: done[n] stays 0 */
    for (int i = 0; i < n; i++) {
        s->cls[i] = -1;
        s->pred[i] = n + 1;
    }
    s->done[n + 1] = 1;
    if (intmap_init(&s->classmap, 64) < 0 || intmap_init(&s->cache, 64) < 0) goto error;
    if (intern_state(s, init_key, init_state) < 0) goto error;
    return (PyObject *)s;
error:
    Py_DECREF(s);
    return NULL;
}

static PyObject *Search_resume(Search *s, PyObject *arg) {
    long long slice = PyLong_AsLongLong(arg);
    if (slice == -1 && PyErr_Occurred()) return NULL;
    if (s->finished) {
        PyErr_SetString(PyExc_RuntimeError, "the search has finished");
        return NULL;
    }
    int r = run(s, slice);
    if (r < 0) return NULL;
    if (r == 2) Py_RETURN_NONE;
    s->finished = 1;
    s->verdict = r;
    return PyBool_FromLong(r);
}

static PyObject *entries_list(Search *s, Entry *entries, int count) {
    PyObject *list = PyList_New(count);
    if (!list) return NULL;
    for (int i = 0; i < count; i++) {
        Entry *e = &entries[i];
        PyObject *t = Py_BuildValue("(iOii)", e->op, s->skeys[e->sk], e->klo, e->rp);
        if (!t) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, t);
    }
    return list;
}

static PyObject *int_list(const int *values, int count) {
    PyObject *list = PyList_New(count);
    if (!list) return NULL;
    for (int i = 0; i < count; i++) {
        PyObject *v = PyLong_FromLong(values[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

/* (steps, blamed in order of discovery, best depth, best stack, best key, (klo, rp) there,
 *  rorder, witness ops, state keys after them) */
static PyObject *Search_outcome(Search *s, PyObject *Py_UNUSED(ignored)) {
    if (!s->finished) {
        PyErr_SetString(PyExc_RuntimeError, "the search has not finished");
        return NULL;
    }
    PyObject *blamed = int_list(s->blamed_order, s->nblamed);
    PyObject *best = entries_list(s, s->best, s->nbest);
    PyObject *rorder = int_list(s->rorder, s->nk + 1);
    int placed = s->verdict ? s->sp : 0;
    PyObject *witness = PyList_New(placed), *keys = PyList_New(placed);
    if (witness && keys)
        for (int i = 0; i < placed; i++) {
            PyObject *op = PyLong_FromLong(s->stack[i].op);
            if (!op) {
                Py_CLEAR(witness);
                break;
            }
            PyList_SET_ITEM(witness, i, op);
            PyObject *key = s->skeys[i + 1 < placed ? s->stack[i + 1].sk : s->sk];
            Py_INCREF(key);
            PyList_SET_ITEM(keys, i, key);
        }
    PyObject *result = NULL;
    if (blamed && best && rorder && witness && keys)
        result = Py_BuildValue("(LOiOO(ii)OOO)", s->steps, blamed, s->best_depth, best, s->skeys[s->best_key],
                               s->best_klo, s->best_rp, rorder, witness, keys);
    Py_XDECREF(blamed);
    Py_XDECREF(best);
    Py_XDECREF(rorder);
    Py_XDECREF(witness);
    Py_XDECREF(keys);
    return result;
}

static PyObject *Search_get_steps(Search *s, void *Py_UNUSED(closure)) { return PyLong_FromLongLong(s->steps); }

static PyMethodDef Search_methods[] = {
    {"resume", (PyCFunction)Search_resume, METH_O,
     "Run to the next yield point (None) or to the verdict (True: linearizable, False: not)."},
    {"outcome", (PyCFunction)Search_outcome, METH_NOARGS,
     "After the verdict: (steps, blamed, best_depth, best_stack, best_key, best_window, rorder, witness, "
     "witness_keys)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Search_getset[] = {
    {"steps", (getter)Search_get_steps, NULL, "operations placed so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SearchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labkit.check._searchcore.Search",
    .tp_basicsize = sizeof(Search),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The linearizability search over one partition, compiled.",
    .tp_new = Search_new,
    .tp_dealloc = (destructor)Search_dealloc,
    .tp_traverse = (traverseproc)Search_traverse,
    .tp_clear = (inquiry)Search_clear,
    .tp_methods = Search_methods,
    .tp_getset = Search_getset,
};

static struct PyModuleDef searchcore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "labkit.check._searchcore",
    .m_doc = "The compiled search loop of labkit.check.linearizability (optional; same verdicts).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__searchcore(void) {
    input_name = PyUnicode_InternFromString("input");
    call_name = PyUnicode_InternFromString("call");
    ret_name = PyUnicode_InternFromString("ret");
    if (!input_name || !call_name || !ret_name || PyType_Ready(&SearchType) < 0) return NULL;
    PyObject *m = PyModule_Create(&searchcore_module);
    if (!m) return NULL;
    Py_INCREF(&SearchType);
    if (PyModule_AddObject(m, "Search", (PyObject *)&SearchType) < 0) {
        Py_DECREF(&SearchType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
