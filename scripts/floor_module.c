/* The least a Redis module command can do for RPUSH's work, as a yardstick
 * for TQ.ENQUEUE in scripts/bench.sh (never loaded outside benchmarks):
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
 * Built by scripts/bench.sh against the redismodule.h shipped with the
 * redis-module crate. */
#define REDISMODULE_MAIN
#include "redismodule.h"
#include <string.h>

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

static int empty(RedisModuleString *s) {
    size_t len;
    RedisModule_StringPtrLen(s, &len);
    return len == 0;
}

/* A read of a string key in place (its first byte, so the read is kept);
 * with a value, then its SET (one open), replicated, with its event. */
static int peek(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleString *value, struct batch *b) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | (value ? REDISMODULE_WRITE : 0));
    int first = -1;
    size_t len = 0;
    if (RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_STRING) {
        const char *p = RedisModule_StringDMA(key, &len, REDISMODULE_READ);
        if (len) first = (unsigned char)p[0];
    }
    if (value) {
        /* Rewritten in place when the size holds (a record of fixed
         * layout): cheaper than RedisModule_StringSet's delete and add. */
        size_t vlen;
        const char *v = RedisModule_StringPtrLen(value, &vlen);
        char *p = first >= 0 && len == vlen ? RedisModule_StringDMA(key, &len, REDISMODULE_WRITE) : NULL;
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
    return first;
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
    if (tq && (incr(ctx, argv[11], &b) != REDISMODULE_OK || (!empty(argv[14]) && peek(ctx, argv[14], NULL, NULL) == -2))) {
        replicate_batch(ctx, &b);
        RedisModule_FreeString(ctx, payload);
        return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    }
    if (tq) set(ctx, argv[12], argv[13], &b);
    if (sadd(ctx, workers, member) != REDISMODULE_OK) {
        replicate_batch(ctx, &b);
        RedisModule_FreeString(ctx, payload);
        return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    }
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
    if (incr(ctx, processed, NULL) != REDISMODULE_OK || incr(ctx, processed_worker, NULL) != REDISMODULE_OK) {
        replicate_batch(ctx, &b);
        RedisModule_FreeString(ctx, payload);
        return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    }
    key = RedisModule_OpenKey(ctx, leases, REDISMODULE_WRITE);
    int deleted = 0;
    if (RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_ZSET) RedisModule_ZsetRem(key, lease_member, &deleted);
    RedisModule_CloseKey(key);
    if (deleted) {
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_ZSET, "zrem", leases);
        RedisModule_Replicate(ctx, "ZREM", "ss", leases, lease_member);
    }

    if (tq && !empty(argv[15])) peek(ctx, argv[15], argv[16], &b);
    replicate_batch(ctx, &b);
    RedisModule_ReplyWithString(ctx, payload);
    RedisModule_FreeString(ctx, payload);
    return REDISMODULE_OK;
}

/* Names of the plain commands checked, made once. */
static RedisModuleString *rpush_name, *sadd_name;

static int Enqueue(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 5) return RedisModule_WrongArity(ctx);
    RedisModuleString *queues = argv[1], *queue = argv[2], *name = argv[3], *payload = argv[4];
    RedisModuleUser *user = caller(ctx);
    RedisModuleString *push_argv[] = {rpush_name, queue, payload};
    RedisModuleString *add_argv[] = {sadd_name, queues, name};
    int denied = !user || RedisModule_ACLCheckKeyPermissions(user, queues, WRITE) != REDISMODULE_OK ||
                 RedisModule_ACLCheckKeyPermissions(user, queue, WRITE) != REDISMODULE_OK ||
                 RedisModule_ACLCheckCommandPermissions(user, add_argv, 3) != REDISMODULE_OK ||
                 RedisModule_ACLCheckCommandPermissions(user, push_argv, 3) != REDISMODULE_OK;
    if (user) RedisModule_FreeModuleUser(user);
    if (denied) return RedisModule_ReplyWithError(ctx, "NOPERM");
    if (sadd(ctx, queues, name) != REDISMODULE_OK) return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    RedisModuleKey *key = RedisModule_OpenKey(ctx, queue, REDISMODULE_WRITE);
    if (RedisModule_ListPush(key, REDISMODULE_LIST_TAIL, payload) != REDISMODULE_OK) {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    }
    long long len = (long long)RedisModule_ValueLength(key);
    RedisModule_CloseKey(key);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_LIST, "rpush", queue);
    RedisModule_Replicate(ctx, "RPUSH", "ss", queue, payload);
    return RedisModule_ReplyWithLongLong(ctx, len);
}

static int push(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int acl) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    if (acl) {
        RedisModuleUser *user = caller(ctx);
        int denied = !user || RedisModule_ACLCheckKeyPermissions(user, argv[1], REDISMODULE_CMD_KEY_INSERT) != REDISMODULE_OK;
        if (user) RedisModule_FreeModuleUser(user);
        if (denied) return RedisModule_ReplyWithError(ctx, "NOPERM");
    }
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_WRITE);
    if (RedisModule_ListPush(key, REDISMODULE_LIST_TAIL, argv[2]) != REDISMODULE_OK) {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    }
    long long len = (long long)RedisModule_ValueLength(key);
    RedisModule_CloseKey(key);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_LIST, "rpush", argv[1]);
    RedisModule_Replicate(ctx, "RPUSH", "ss", argv[1], argv[2]);
    return RedisModule_ReplyWithLongLong(ctx, len);
}

static int Push(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) { return push(ctx, argv, argc, 0); }
static int PushAcl(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) { return push(ctx, argv, argc, 1); }

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    if (RedisModule_Init(ctx, "floor", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    if (RedisModule_CreateCommand(ctx, "floor.noop", Noop, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "floor.push", Push, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "floor.pushacl", PushAcl, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        /* Keys undeclared, as tq's are (each checked by the command). */
        RedisModule_CreateCommand(ctx, "floor.takeack", TakeAck, "write deny-oom", 0, 0, 0) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "floor.enqueue", Enqueue, "write deny-oom", 0, 0, 0) == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    rpush_name = RedisModule_CreateString(NULL, "RPUSH", 5);
    sadd_name = RedisModule_CreateString(NULL, "SADD", 4);
    if (!rpush_name || !sadd_name)
        return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
