/* The least a Redis module command can do for the writes tq's commands
 * make, as yardsticks for them in the benchmarks (never loaded outside
 * benchmarks and tests/yardstick.rs):
 *
 *   FLOOR.NOOP <key>               replies 1, touches nothing
 *   FLOOR.PUSH <key> <value>       RPUSH through the module key API, then
 *                                  replicated as RPUSH (what a module must do
 *                                  so that replicas and AOF need no module)
 *   FLOOR.PUSHACL <key> <value>    the same, after checking the caller's ACL
 *                                  for the key (what a module must do for
 *                                  every key it did not declare)
 *   FLOOR.ENQUEUE <queues> <queue> <name> <payload>
 *                                  what TQ.ENQUEUE must do besides encoding
 *                                  the payload: check the caller's ACL for
 *                                  both keys and for both plain commands it
 *                                  stands for (SADD, RPUSH), SADD the queue's
 *                                  name (skipped once known, as in
 *                                  FLOOR.TAKEACK), RPUSH, replicate
 *   FLOOR.ENQUEUEJOB <ns> <queue> <class> [<args-json>]
 *                                  FLOOR.ENQUEUE from TQ.ENQUEUE's own
 *                                  arguments: both key names built, and the
 *                                  payload as node-resque writes it (class
 *                                  and queue as JSON strings, the args copied
 *                                  unchecked, a bare value wrapped in [], as
 *                                  tq does for args already in
 *                                  JSON.stringify's form)
 *   FLOOR.PROMOTE <ns> <bucket>    what promoting one due bucket of node-resque's
 *                                  layout writes (the promotion floor's SADD,
 *                                  RPUSH, DEL of the markers, DEL, ZREM), as a
 *                                  module must make them: the bucket read
 *                                  through the key API, each job's queue found
 *                                  by a scan for its "queue" member (no JSON
 *                                  parse: less than any exact promoter does),
 *                                  each marker key's ACL checked, opened and
 *                                  deleted; replies the jobs moved
 *   FLOOR.PROMOTE <ns> <bucket> EXACT
 *                                  the same, as an exact promoter must: each
 *                                  job's queue is the last top-level "queue"
 *                                  member (as JSON.parse keeps it, escapes
 *                                  decoded), found by a structural scan; a
 *                                  marker is deleted only when this bucket is
 *                                  its one member, else SREM'd (node-resque
 *                                  files a payload under several seconds)
 *   FLOOR.TAKEACK <queue> <record> <workers> <member> <leases> <lease-member>
 *                 <processed> <processed-worker> <record-value> <lease-score>
 *                                  the take + complete floor's eight writes in
 *                                  one command, as a module must make them:
 *                                  the ACL check of each key, the writes
 *                                  through the key API, each replicated as its
 *                                  plain command, with its keyspace event.
 *                                  In the floor's order (LPOP, SET, SADD,
 *                                  ZADD, then DEL, INCR x2, ZREM: the job
 *                                  taken is the job completed); replies the
 *                                  payload.
 *   FLOOR.TAKEACK ... <delivery> <inflight> <inflight-value> <clock> <minute>
 *                 <minute-value>
 *                                  the same, plus what tq writes besides for a
 *                                  job: INCR of the delivery counter, SET of
 *                                  the in-flight entry, a read of the queue's
 *                                  clock, a read and SET of the minute's
 *                                  metrics record (an empty <clock> or
 *                                  <minute> skips that access: the job
 *                                  metrics' share, measured in C).
 *
 * No argument checks beyond arity: it only ever runs the benchmark's calls.
 * Built by `build_floor` (scripts/servers.sh) against the redismodule.h
 * shipped with the redis-module crate. */
#define REDISMODULE_MAIN
#include "redismodule.h"
#include <string.h>
#include <strings.h>

static int Noop(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return RedisModule_ReplyWithLongLong(ctx, 1);
}

/* The caller's user, or NULL (then every check fails). */
static RedisModuleUser *caller(RedisModuleCtx *ctx) {
    RedisModuleString *name = RedisModule_GetCurrentUserName(ctx);
    RedisModuleUser *user = name ? RedisModule_GetModuleUserFromUserName(name) : NULL;
    if (name) RedisModule_FreeString(ctx, name);
    return user;
}

/* The module API of Redis 7.0 has no set calls: SADD goes through
 * RedisModule_Call, skipped for a (set, member) this module added before (as
 * tq's own cache of registry members does; the benchmarks reuse names). */
#define MEMO 256
#define MEMO_BYTES 128
static char memo[MEMO][MEMO_BYTES];
static size_t memo_len[MEMO];

static int sadd(RedisModuleCtx *ctx, RedisModuleString *key, RedisModuleString *member) {
    size_t klen, mlen;
    const char *k = RedisModule_StringPtrLen(key, &klen);
    const char *m = RedisModule_StringPtrLen(member, &mlen);
    char both[MEMO_BYTES];
    size_t len = klen + 1 + mlen;
    int memoable = len <= MEMO_BYTES;
    unsigned h = 2166136261u;
    if (memoable) {
        memcpy(both, k, klen);
        both[klen] = 0;
        memcpy(both + klen + 1, m, mlen);
        for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)both[i]) * 16777619u;
        h %= MEMO;
        if (memo_len[h] == len && memcmp(memo[h], both, len) == 0) return REDISMODULE_OK;
    }
    RedisModuleCallReply *r = RedisModule_Call(ctx, "SADD", "ss", key, member);
    if (!r || RedisModule_CallReplyType(r) != REDISMODULE_REPLY_INTEGER) {
        if (r) RedisModule_FreeCallReply(r);
        return REDISMODULE_ERR;
    }
    if (RedisModule_CallReplyInteger(r) == 1) RedisModule_Replicate(ctx, "SADD", "ss", key, member);
    RedisModule_FreeCallReply(r);
    if (memoable) {
        memcpy(memo[h], both, len);
        memo_len[h] = len;
    }
    return REDISMODULE_OK;
}

/* String writes replicated together as one MSET at the end of the command
 * (as tq does), rather than one command each. */
struct batch {
    RedisModuleString *args[8];
    RedisModuleString *owned[4];
    int n, owned_n;
};

static void replicate_batch(RedisModuleCtx *ctx, struct batch *b) {
    if (b->n) RedisModule_Replicate(ctx, "MSET", "v", b->args, (size_t)b->n);
    for (int i = 0; i < b->owned_n; i++) RedisModule_FreeString(ctx, b->owned[i]);
}

/* INCR of a string key, with its event; replicated as INCR, or, with a
 * batch, as its new value in the batch's MSET. */
static int incr(RedisModuleCtx *ctx, RedisModuleString *name, struct batch *b) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    long long n = 0;
    int type = RedisModule_KeyType(key);
    if (type == REDISMODULE_KEYTYPE_STRING) {
        size_t len;
        char *p = RedisModule_StringDMA(key, &len, REDISMODULE_READ);
        RedisModuleString *s = RedisModule_CreateString(ctx, p, len);
        int ok = RedisModule_StringToLongLong(s, &n) == REDISMODULE_OK;
        RedisModule_FreeString(ctx, s);
        if (!ok) type = -1;
    } else if (type != REDISMODULE_KEYTYPE_EMPTY) {
        type = -1;
    }
    if (type == -1) {
        RedisModule_CloseKey(key);
        return REDISMODULE_ERR;
    }
    RedisModuleString *v = RedisModule_CreateStringFromLongLong(ctx, n + 1);
    RedisModule_StringSet(key, v);
    RedisModule_CloseKey(key);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_STRING, "incrby", name);
    if (b && b->n + 2 <= 8 && b->owned_n < 4) {
        b->args[b->n++] = name;
        b->args[b->n++] = v;
        b->owned[b->owned_n++] = v;
    } else {
        RedisModule_Replicate(ctx, "INCR", "s", name);
        RedisModule_FreeString(ctx, v);
    }
    return REDISMODULE_OK;
}

/* A write check, as tq makes for a key it writes (covering its reads). */
#define WRITE (REDISMODULE_CMD_KEY_INSERT | REDISMODULE_CMD_KEY_UPDATE | REDISMODULE_CMD_KEY_DELETE)

/* A SET's replication: its own command, or a place in the batch's MSET. */
static void replicate_set(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleString *value, struct batch *b) {
    if (b && b->n + 2 <= 8) {
        b->args[b->n++] = name;
        b->args[b->n++] = value;
    } else {
        RedisModule_Replicate(ctx, "SET", "ss", name, value);
    }
}

/* SET of a string key, replicated, with its event. */
static void set(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleString *value, struct batch *b) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, REDISMODULE_WRITE);
    RedisModule_StringSet(key, value);
    RedisModule_CloseKey(key);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_STRING, "set", name);
    replicate_set(ctx, name, value, b);
}

/* ZREM of a member, replicated when it was there, with its event. */
static void zrem(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleString *member) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, REDISMODULE_WRITE);
    int removed = 0;
    if (RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_ZSET) RedisModule_ZsetRem(key, member, &removed);
    RedisModule_CloseKey(key);
    if (removed) {
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_ZSET, "zrem", name);
        RedisModule_Replicate(ctx, "ZREM", "ss", name, member);
    }
}

/* RPUSH of one value, replicated, with its event; the list's new length in
 * `len`. */
static int rpush(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleString *value, long long *len) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, REDISMODULE_WRITE);
    if (RedisModule_ListPush(key, REDISMODULE_LIST_TAIL, value) != REDISMODULE_OK) {
        RedisModule_CloseKey(key);
        return REDISMODULE_ERR;
    }
    *len = (long long)RedisModule_ValueLength(key);
    RedisModule_CloseKey(key);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_LIST, "rpush", name);
    RedisModule_Replicate(ctx, "RPUSH", "ss", name, value);
    return REDISMODULE_OK;
}

static int empty(RedisModuleString *s) {
    size_t len;
    RedisModule_StringPtrLen(s, &len);
    return len == 0;
}

/* A read of a string key in place, as tq reads a clock or a record; with a
 * value, then its SET (one open), replicated, with its event. */
static void peek(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleString *value, struct batch *b) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | (value ? REDISMODULE_WRITE : 0));
    int string = RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_STRING;
    size_t len = 0;
    if (string) RedisModule_StringDMA(key, &len, REDISMODULE_READ);
    if (value) {
        /* Rewritten in place when the size holds (a record of fixed
         * layout): cheaper than RedisModule_StringSet's delete and add. */
        size_t vlen;
        const char *v = RedisModule_StringPtrLen(value, &vlen);
        char *p = string && len == vlen ? RedisModule_StringDMA(key, &len, REDISMODULE_WRITE) : NULL;
        if (p) {
            memcpy(p, v, vlen);
        } else {
            RedisModule_StringSet(key, value);
        }
    }
    RedisModule_CloseKey(key);
    if (value) {
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_STRING, "set", name);
        replicate_set(ctx, name, value, b);
    }
}

/* Names of the plain commands checked, made once. */
static RedisModuleString *rpush_name, *sadd_name, *lpop_name, *set_name, *zadd_name, *del_name, *incr_name, *zrem_name;

/* A TAKEACK stopped by a key of another type: what it wrote replicated,
 * the taken payload freed, an error replied. */
static int wrong_type(RedisModuleCtx *ctx, struct batch *b, RedisModuleString *payload) {
    replicate_batch(ctx, b);
    RedisModule_FreeString(ctx, payload);
    return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
}

static int TakeAck(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 11 && argc != 17) return RedisModule_WrongArity(ctx);
    int tq = argc == 17;
    RedisModuleString *queue = argv[1], *record = argv[2], *workers = argv[3], *member = argv[4], *leases = argv[5],
                      *lease_member = argv[6], *processed = argv[7], *processed_worker = argv[8], *value = argv[9];
    double score;
    if (RedisModule_StringToDouble(argv[10], &score) != REDISMODULE_OK) return RedisModule_ReplyWithError(ctx, "ERR score");
    RedisModuleUser *user = caller(ctx);
    RedisModuleString *keys[] = {queue, record, workers, leases, processed, processed_worker,
                                 tq ? argv[11] : NULL, tq ? argv[12] : NULL,
                                 tq && !empty(argv[14]) ? argv[14] : NULL, tq && !empty(argv[15]) ? argv[15] : NULL};
    int denied = !user;
    for (size_t i = 0; !denied && i < sizeof keys / sizeof *keys; i++)
        denied = keys[i] && RedisModule_ACLCheckKeyPermissions(user, keys[i], WRITE) != REDISMODULE_OK;
    /* The plain commands these writes are, each checked once, as a module
     * command must (Redis 7.0 gives module commands no ACL category) and as
     * TQ.POP ... ACK does: LPOP SET SADD ZADD DEL INCR ZREM. */
    RedisModuleString *cmd_argv[][2] = {{lpop_name, queue},  {set_name, record},  {sadd_name, workers},
                                        {zadd_name, leases}, {del_name, record},  {incr_name, processed},
                                        {zrem_name, leases}};
    for (size_t i = 0; !denied && i < sizeof cmd_argv / sizeof *cmd_argv; i++)
        denied = RedisModule_ACLCheckCommandPermissions(user, cmd_argv[i], 2) != REDISMODULE_OK;
    if (user) RedisModule_FreeModuleUser(user);
    if (denied) return RedisModule_ReplyWithError(ctx, "NOPERM");

    /* Take: LPOP, SET the record, SADD the worker, ZADD the lease. */
    RedisModuleKey *key = RedisModule_OpenKey(ctx, queue, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModuleString *payload = RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_LIST
                                     ? RedisModule_ListPop(key, REDISMODULE_LIST_HEAD)
                                     : NULL;
    RedisModule_CloseKey(key);
    if (!payload) return RedisModule_ReplyWithNull(ctx);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_LIST, "lpop", queue);
    RedisModule_Replicate(ctx, "LPOP", "s", queue);
    set(ctx, record, value, NULL);
    /* tq's own writes: its string writes replicated as one MSET, as tq does. */
    struct batch b = {.n = 0, .owned_n = 0};
    if (tq && incr(ctx, argv[11], &b) != REDISMODULE_OK) return wrong_type(ctx, &b, payload);
    if (tq && !empty(argv[14])) peek(ctx, argv[14], NULL, NULL);
    if (tq) set(ctx, argv[12], argv[13], &b);
    if (sadd(ctx, workers, member) != REDISMODULE_OK) return wrong_type(ctx, &b, payload);
    key = RedisModule_OpenKey(ctx, leases, REDISMODULE_WRITE);
    int flags = 0;
    int added = RedisModule_ZsetAdd(key, score, lease_member, &flags) == REDISMODULE_OK;
    RedisModule_CloseKey(key);
    if (added && !(flags & REDISMODULE_ZADD_NOP)) {
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_ZSET, "zadd", leases);
        RedisModule_Replicate(ctx, "ZADD", "sss", leases, argv[10], lease_member);
    }
    /* Complete: DEL the record, INCR both stats, ZREM the lease. */
    key = RedisModule_OpenKey(ctx, record, REDISMODULE_WRITE);
    if (RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_EMPTY) {
        RedisModule_DeleteKey(key);
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_GENERIC, "del", record);
        RedisModule_Replicate(ctx, "DEL", "s", record);
    }
    RedisModule_CloseKey(key);
    if (incr(ctx, processed, NULL) != REDISMODULE_OK || incr(ctx, processed_worker, NULL) != REDISMODULE_OK)
        return wrong_type(ctx, &b, payload);
    zrem(ctx, leases, lease_member);

    if (tq && !empty(argv[15])) peek(ctx, argv[15], argv[16], &b);
    replicate_batch(ctx, &b);
    RedisModule_ReplyWithString(ctx, payload);
    RedisModule_FreeString(ctx, payload);
    return REDISMODULE_OK;
}

/* "<ns>:<rest><tail>" as a new string, made in one copy. */
static RedisModuleString *ns_key(RedisModuleCtx *ctx, RedisModuleString *ns, const char *rest, const char *tail,
                                 size_t tail_len) {
    size_t nlen, rlen = strlen(rest);
    const char *n = RedisModule_StringPtrLen(ns, &nlen);
    size_t len = nlen + 1 + rlen + tail_len;
    char small[512];
    char *buf = len <= sizeof small ? small : RedisModule_Alloc(len);
    memcpy(buf, n, nlen);
    buf[nlen] = ':';
    memcpy(buf + nlen + 1, rest, rlen);
    if (tail_len) memcpy(buf + nlen + 1 + rlen, tail, tail_len);
    RedisModuleString *k = RedisModule_CreateString(ctx, buf, len);
    if (buf != small) RedisModule_Free(buf);
    return k;
}

/* The value of a payload's top-level-looking "queue":"..." member, found
 * by a scan (no escapes, no JSON parse). */
static const char *queue_of(const char *p, size_t len, size_t *qlen) {
    static const char pat[] = "\"queue\":\"";
    size_t plen = sizeof pat - 1;
    for (size_t i = 0; i + plen <= len; i++) {
        if (memcmp(p + i, pat, plen) != 0) continue;
        const char *start = p + i + plen;
        const char *end = memchr(start, '"', len - (size_t)(start - p));
        if (!end) return NULL;
        *qlen = (size_t)(end - start);
        return start;
    }
    return NULL;
}

/* What an exact promoter must do besides (FLOOR.PROMOTE ... EXACT): find
 * a job's queue as JSON.parse would (the last top-level "queue" member,
 * escapes decoded) by a structural scan, no more (no number or UTF-8
 * checks); and remove the bucket from the job's marker as node-resque's
 * SREM does, deleting the marker only when the bucket is its one member. */

static size_t skip_ws(const char *p, size_t len, size_t i) {
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i;
}

/* The index after the string starting at p[i] ('"'), or 0; *esc set when
 * it holds an escape. */
static size_t str_end(const char *p, size_t len, size_t i, int *esc) {
    for (i++; i < len; i++) {
        if (p[i] == '\\') {
            *esc = 1;
            i++;
        } else if (p[i] == '"') {
            return i + 1;
        }
    }
    return 0;
}

/* The index just after the value starting at p[i], or 0. */
static size_t value_end(const char *p, size_t len, size_t i) {
    int depth = 0, esc = 0;
    for (; i < len; i++) {
        char c = p[i];
        if (c == '"') {
            size_t e = str_end(p, len, i, &esc);
            if (!e) return 0;
            if (!depth) return e;
            i = e - 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (!depth) return i;
            if (!--depth) return i + 1;
        } else if (!depth && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;
        }
    }
    return depth ? 0 : i;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15) return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

/* The body of a string literal (between its quotes) decoded into out (room
 * for n bytes always suffices); its length, or -1 on a bad escape. */
static long unescape(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (++i >= n) return -1;
        char c = s[i];
        if (c != 'u') {
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *at = strchr(from, c);
            if (!at || !c) return -1;
            out[o++] = to[at - from];
            continue;
        }
        unsigned u, lo;
        if (i + 4 >= n || !hex4(s + i + 1, &u)) return -1;
        i += 4;
        if (u >= 0xD800 && u < 0xDC00 && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u' && hex4(s + i + 3, &lo) &&
            lo >= 0xDC00 && lo < 0xE000) {
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        if (u < 0x80) {
            out[o++] = (char)u;
        } else if (u < 0x800) {
            out[o++] = (char)(0xC0 | u >> 6);
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            out[o++] = (char)(0xE0 | u >> 12);
            out[o++] = (char)(0x80 | (u >> 6 & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | u >> 18);
            out[o++] = (char)(0x80 | (u >> 12 & 0x3F));
            out[o++] = (char)(0x80 | (u >> 6 & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        }
    }
    return (long)o;
}

/* The payload's queue, exactly: its last top-level "queue" member, a
 * string, decoded into buf (room for len bytes) when it holds escapes.
 * NULL when the payload is no object or has no such string. */
static const char *queue_exact(const char *p, size_t len, size_t *qlen, char *buf) {
    const char *found = NULL;
    size_t i = skip_ws(p, len, 0);
    if (i >= len || p[i] != '{') return NULL;
    i = skip_ws(p, len, i + 1);
    if (i < len && p[i] == '}') return NULL;
    for (;;) {
        if (i >= len || p[i] != '"') return NULL;
        int kesc = 0;
        size_t ke = str_end(p, len, i, &kesc);
        if (!ke) return NULL;
        int is_queue;
        if (kesc) {
            long kl = unescape(p + i + 1, ke - i - 2, buf);
            is_queue = kl == 5 && memcmp(buf, "queue", 5) == 0;
        } else {
            is_queue = ke - i - 2 == 5 && memcmp(p + i + 1, "queue", 5) == 0;
        }
        i = skip_ws(p, len, ke);
        if (i >= len || p[i] != ':') return NULL;
        i = skip_ws(p, len, i + 1);
        if (i >= len) return NULL;
        size_t ve = value_end(p, len, i);
        if (!ve) return NULL;
        if (is_queue) {
            found = NULL;
            if (p[i] == '"') {
                int vesc = 0;
                str_end(p, len, i, &vesc);
                if (!vesc) {
                    found = p + i + 1;
                    *qlen = ve - i - 2;
                } else {
                    long ql = unescape(p + i + 1, ve - i - 2, buf);
                    if (ql < 0) return NULL;
                    found = buf;
                    *qlen = (size_t)ql;
                }
            }
        }
        i = skip_ws(p, len, ve);
        if (i < len && p[i] == ',') {
            i = skip_ws(p, len, i + 1);
            continue;
        }
        if (i < len && p[i] == '}') return found;
        return NULL;
    }
}

struct probe {
    const char *want;
    size_t len;
    int seen, equal;
};

static void probe_member(RedisModuleKey *key, RedisModuleString *field, RedisModuleString *value, void *data) {
    (void)key;
    (void)value;
    struct probe *pr = data;
    size_t len;
    const char *f = RedisModule_StringPtrLen(field, &len);
    if (!pr->seen) pr->equal = len == pr->len && memcmp(f, pr->want, len) == 0;
    pr->seen = 1;
}

/* True when the set's one member is want (Redis 7.0's module API has no
 * set calls: a scan of a one-member set). */
static int only_member(RedisModuleKey *set, const char *want, size_t len) {
    if (RedisModule_ValueLength(set) != 1) return 0;
    struct probe pr = {want, len, 0, 0};
    RedisModuleScanCursor *cursor = RedisModule_ScanCursorCreate();
    for (int k = 0; k < 64 && !pr.seen; k++)
        if (!RedisModule_ScanKey(set, cursor, probe_member, &pr)) break;
    RedisModule_ScanCursorDestroy(cursor);
    return pr.equal;
}

/* The RPUSH of a run of jobs onto one queue: closed, its event, replicated. */
static void pushed(RedisModuleCtx *ctx, RedisModuleKey *qkey, RedisModuleString *qname, RedisModuleString **run,
                   size_t n) {
    RedisModule_CloseKey(qkey);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_LIST, "rpush", qname);
    RedisModule_Replicate(ctx, "RPUSH", "sv", qname, run, n);
}

static int Promote(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3 && argc != 4) return RedisModule_WrongArity(ctx);
    RedisModuleString *ns = argv[1], *bucket = argv[2];
    size_t blen, xlen = 0;
    const char *b = RedisModule_StringPtrLen(bucket, &blen);
    const char *x = argc == 4 ? RedisModule_StringPtrLen(argv[3], &xlen) : "";
    int exact = xlen == 5 && strncasecmp(x, "exact", 5) == 0;
    if (argc == 4 && !exact) return RedisModule_ReplyWithError(ctx, "ERR the fourth argument can only be EXACT");
    /* The marker member this bucket is filed under: "delayed:<bucket>". */
    RedisModuleString *member = RedisModule_CreateStringPrintf(ctx, "delayed:%.*s", (int)blen, b);
    size_t mem_len;
    const char *mem = RedisModule_StringPtrLen(member, &mem_len);
    RedisModuleString *schedule = ns_key(ctx, ns, "delayed_queue_schedule", NULL, 0);
    RedisModuleString *list = ns_key(ctx, ns, "delayed:", b, blen);
    RedisModuleString *queues = ns_key(ctx, ns, "queues", NULL, 0);
    RedisModuleUser *user = caller(ctx);
    int denied = !user || RedisModule_ACLCheckKeyPermissions(user, schedule, WRITE) != REDISMODULE_OK ||
                 RedisModule_ACLCheckKeyPermissions(user, list, WRITE) != REDISMODULE_OK ||
                 RedisModule_ACLCheckKeyPermissions(user, queues, WRITE) != REDISMODULE_OK;
    RedisModuleKey *key = RedisModule_OpenKey(ctx, list, REDISMODULE_READ);
    size_t n = !denied && RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_LIST ? RedisModule_ValueLength(key) : 0;
    /* Read and checked before any write: each job, its marker key, and for
     * each run of jobs bound for one queue, that queue's key and name (NULL
     * for the rest of a run). */
    RedisModuleString **s4 = RedisModule_Calloc(4 * n + 1, sizeof *s4);
    RedisModuleString **jobs = s4, **qkeys = s4 + n, **qnames = s4 + 2 * n, **markers = s4 + 3 * n;
    const char *bad = NULL, *prev = NULL;
    size_t prev_len = 0;
    char small[512], *buf = small;
    for (size_t i = 0; i < n && !denied && !bad; i++) {
        size_t plen, qlen;
        jobs[i] = RedisModule_ListGet(key, (long)i);
        const char *p = jobs[i] ? RedisModule_StringPtrLen(jobs[i], &plen) : NULL;
        if (p && exact && plen > sizeof small) {
            if (buf != small) RedisModule_Free(buf);
            buf = RedisModule_Alloc(plen);
        }
        const char *q = !p ? NULL : exact ? queue_exact(p, plen, &qlen, buf) : queue_of(p, plen, &qlen);
        if (!q) {
            bad = "ERR a job without a queue";
            break;
        }
        if (!prev || prev_len != qlen || memcmp(prev, q, qlen) != 0) {
            qkeys[i] = ns_key(ctx, ns, "queue:", q, qlen);
            qnames[i] = RedisModule_CreateString(ctx, q, qlen);
            denied = RedisModule_ACLCheckKeyPermissions(user, qkeys[i], WRITE) != REDISMODULE_OK;
            /* Compared from the name kept (a decoded queue's buffer is reused). */
            prev = RedisModule_StringPtrLen(qnames[i], &prev_len);
        }
        markers[i] = ns_key(ctx, ns, "timestamps:", p, plen);
        denied = denied || RedisModule_ACLCheckKeyPermissions(user, markers[i], WRITE) != REDISMODULE_OK;
    }
    if (buf != small) RedisModule_Free(buf);
    if (user) RedisModule_FreeModuleUser(user);
    /* Reopened to write: Redis 7.0 asserts when a list key read with
     * RedisModule_ListGet is deleted through the same handle. */
    RedisModule_CloseKey(key);
    int ok = !denied && !bad;
    if (ok && n) {
        key = RedisModule_OpenKey(ctx, list, REDISMODULE_WRITE);
        RedisModule_DeleteKey(key);
        RedisModule_CloseKey(key);
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_GENERIC, "del", list);
        RedisModule_Replicate(ctx, "DEL", "s", list);
    }
    /* Each job onto its queue (one RPUSH a run), its marker deleted (one
     * DEL of them all). */
    RedisModuleKey *qkey = NULL;
    RedisModuleString **gone = RedisModule_Calloc(n + 1, sizeof *gone);
    size_t first = 0, deleted = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (qkeys[i]) {
            if (qkey) pushed(ctx, qkey, qkeys[first], jobs + first, i - first);
            sadd(ctx, queues, qnames[i]);
            qkey = RedisModule_OpenKey(ctx, qkeys[i], REDISMODULE_WRITE);
            first = i;
        }
        RedisModule_ListPush(qkey, REDISMODULE_LIST_TAIL, jobs[i]);
        RedisModuleKey *m = RedisModule_OpenKey(ctx, markers[i], REDISMODULE_READ | REDISMODULE_WRITE);
        if (RedisModule_KeyType(m) == REDISMODULE_KEYTYPE_SET) {
            if (!exact || only_member(m, mem, mem_len)) {
                RedisModule_DeleteKey(m);
                RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_GENERIC, "del", markers[i]);
                gone[deleted++] = markers[i];
            } else {
                /* Filed under other seconds too: only this one goes. */
                RedisModule_CloseKey(m);
                m = NULL;
                RedisModuleCallReply *r = RedisModule_Call(ctx, "SREM", "ss!", markers[i], member);
                if (r) RedisModule_FreeCallReply(r);
            }
        }
        if (m) RedisModule_CloseKey(m);
    }
    if (qkey) pushed(ctx, qkey, qkeys[first], jobs + first, n - first);
    if (deleted) RedisModule_Replicate(ctx, "DEL", "v", gone, deleted);
    RedisModule_Free(gone);
    if (ok) zrem(ctx, schedule, bucket);
    for (size_t i = 0; i < 4 * n; i++)
        if (s4[i]) RedisModule_FreeString(ctx, s4[i]);
    RedisModule_Free(s4);
    RedisModule_FreeString(ctx, schedule);
    RedisModule_FreeString(ctx, list);
    RedisModule_FreeString(ctx, queues);
    RedisModule_FreeString(ctx, member);
    if (!ok) return RedisModule_ReplyWithError(ctx, denied ? "NOPERM" : bad);
    return RedisModule_ReplyWithLongLong(ctx, (long long)n);
}


/* FLOOR.ENQUEUE's checks and writes, its arguments given as strings. */
static int enqueue(RedisModuleCtx *ctx, RedisModuleString *queues, RedisModuleString *queue, RedisModuleString *name,
                   RedisModuleString *payload) {
    RedisModuleUser *user = caller(ctx);
    RedisModuleString *push_argv[] = {rpush_name, queue, payload};
    RedisModuleString *add_argv[] = {sadd_name, queues, name};
    int denied = !user || RedisModule_ACLCheckKeyPermissions(user, queues, WRITE) != REDISMODULE_OK ||
                 RedisModule_ACLCheckKeyPermissions(user, queue, WRITE) != REDISMODULE_OK ||
                 RedisModule_ACLCheckCommandPermissions(user, add_argv, 3) != REDISMODULE_OK ||
                 RedisModule_ACLCheckCommandPermissions(user, push_argv, 3) != REDISMODULE_OK;
    if (user) RedisModule_FreeModuleUser(user);
    if (denied) return RedisModule_ReplyWithError(ctx, "NOPERM");
    long long len;
    if (sadd(ctx, queues, name) != REDISMODULE_OK || rpush(ctx, queue, payload, &len) != REDISMODULE_OK)
        return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    return RedisModule_ReplyWithLongLong(ctx, len);
}

static int Enqueue(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 5) return RedisModule_WrongArity(ctx);
    return enqueue(ctx, argv[1], argv[2], argv[3], argv[4]);
}

/* `s` as JSON.stringify writes a string, at `out` (room for 2 + 6 * len);
 * returns the bytes written. */
static size_t json_string(char *out, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *short_form = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                               : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
        if (short_form) {
            out[n++] = short_form[0];
            out[n++] = short_form[1];
        } else if (c < 0x20) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[c >> 4];
            out[n + 5] = hex[c & 15];
            n += 6;
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    return n;
}

/* `<ns>:<a>` or `<ns>:<a>:<b>` as a new string (b may be NULL). */
static RedisModuleString *key_name(RedisModuleCtx *ctx, const char *ns, size_t nslen, const char *a, const char *b,
                                   size_t blen) {
    char stack[256];
    size_t alen = strlen(a), len = nslen + 1 + alen + (b ? 1 + blen : 0);
    char *buf = len <= sizeof stack ? stack : RedisModule_Alloc(len);
    memcpy(buf, ns, nslen);
    buf[nslen] = ':';
    memcpy(buf + nslen + 1, a, alen);
    if (b) {
        buf[nslen + 1 + alen] = ':';
        memcpy(buf + nslen + 2 + alen, b, blen);
    }
    RedisModuleString *s = RedisModule_CreateString(ctx, buf, len);
    if (buf != stack) RedisModule_Free(buf);
    return s;
}

static int EnqueueJob(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 4 && argc != 5) return RedisModule_WrongArity(ctx);
    size_t nslen, qlen, clen, alen = 2;
    const char *ns = RedisModule_StringPtrLen(argv[1], &nslen);
    const char *q = RedisModule_StringPtrLen(argv[2], &qlen);
    const char *class = RedisModule_StringPtrLen(argv[3], &clen);
    const char *args = argc == 5 ? RedisModule_StringPtrLen(argv[4], &alen) : "[]";
    /* node-resque's arrayify: a bare value becomes a one-element array. */
    int bare = alen == 0 || args[0] != '[';
    /* 27 bytes of members and braces, 4 quotes, 2 brackets; 6 a byte escaped. */
    size_t room = 33 + 6 * (qlen + clen) + alen;
    char stack[512];
    char *buf = room <= sizeof stack ? stack : RedisModule_Alloc(room);
    size_t n = 0;
    memcpy(buf, "{\"class\":", 9);
    n = 9 + json_string(buf + 9, class, clen);
    memcpy(buf + n, ",\"queue\":", 9);
    n += 9;
    n += json_string(buf + n, q, qlen);
    memcpy(buf + n, ",\"args\":", 8);
    n += 8;
    if (bare) buf[n++] = '[';
    memcpy(buf + n, args, alen);
    n += alen;
    if (bare) buf[n++] = ']';
    buf[n++] = '}';
    RedisModuleString *payload = RedisModule_CreateString(ctx, buf, n);
    if (buf != stack) RedisModule_Free(buf);
    RedisModuleString *queues = key_name(ctx, ns, nslen, "queues", NULL, 0);
    RedisModuleString *queue = key_name(ctx, ns, nslen, "queue", q, qlen);
    int r = enqueue(ctx, queues, queue, argv[2], payload);
    RedisModule_FreeString(ctx, payload);
    RedisModule_FreeString(ctx, queues);
    RedisModule_FreeString(ctx, queue);
    return r;
}

static int push(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int acl) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    if (acl) {
        RedisModuleUser *user = caller(ctx);
        int denied = !user || RedisModule_ACLCheckKeyPermissions(user, argv[1], REDISMODULE_CMD_KEY_INSERT) != REDISMODULE_OK;
        if (user) RedisModule_FreeModuleUser(user);
        if (denied) return RedisModule_ReplyWithError(ctx, "NOPERM");
    }
    long long len;
    if (rpush(ctx, argv[1], argv[2], &len) != REDISMODULE_OK) return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    return RedisModule_ReplyWithLongLong(ctx, len);
}

static int Push(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) { return push(ctx, argv, argc, 0); }
static int PushAcl(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) { return push(ctx, argv, argc, 1); }

/* A flush empties the sets the memo remembers. */
static void on_flush(RedisModuleCtx *ctx, RedisModuleEvent e, uint64_t sub, void *data) {
    (void)ctx;
    (void)e;
    (void)sub;
    (void)data;
    memset(memo_len, 0, sizeof memo_len);
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    if (RedisModule_Init(ctx, "floor", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    if (RedisModule_CreateCommand(ctx, "floor.noop", Noop, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "floor.push", Push, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "floor.pushacl", PushAcl, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        /* Keys undeclared, as tq's are (each checked by the command). */
        RedisModule_CreateCommand(ctx, "floor.takeack", TakeAck, "write deny-oom", 0, 0, 0) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "floor.enqueue", Enqueue, "write deny-oom", 0, 0, 0) == REDISMODULE_ERR ||
        /* TQ.ENQUEUE's arguments, its namespace declared as TQ.ENQUEUE's is. */
        RedisModule_CreateCommand(ctx, "floor.enqueuejob", EnqueueJob, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "floor.promote", Promote, "write deny-oom", 0, 0, 0) == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    if (RedisModule_SubscribeToServerEvent(ctx, RedisModuleEvent_FlushDB, on_flush) == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    rpush_name = RedisModule_CreateString(NULL, "RPUSH", 5);
    sadd_name = RedisModule_CreateString(NULL, "SADD", 4);
    lpop_name = RedisModule_CreateString(NULL, "LPOP", 4);
    set_name = RedisModule_CreateString(NULL, "SET", 3);
    zadd_name = RedisModule_CreateString(NULL, "ZADD", 4);
    del_name = RedisModule_CreateString(NULL, "DEL", 3);
    incr_name = RedisModule_CreateString(NULL, "INCR", 4);
    zrem_name = RedisModule_CreateString(NULL, "ZREM", 4);
    if (!rpush_name || !sadd_name || !lpop_name || !set_name || !zadd_name || !del_name || !incr_name || !zrem_name)
        return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
