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
 *
 * No argument checks beyond arity: it only ever runs the benchmark's calls.
 * Built by scripts/bench.sh against the redismodule.h shipped with the
 * redis-module crate. */
#define REDISMODULE_MAIN
#include "redismodule.h"

static int Noop(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return RedisModule_ReplyWithLongLong(ctx, 1);
}

static int push(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int acl) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    if (acl) {
        RedisModuleString *name = RedisModule_GetCurrentUserName(ctx);
        RedisModuleUser *user = name ? RedisModule_GetModuleUserFromUserName(name) : NULL;
        int denied = !user || RedisModule_ACLCheckKeyPermissions(user, argv[1], REDISMODULE_CMD_KEY_INSERT) != REDISMODULE_OK;
        if (user) RedisModule_FreeModuleUser(user);
        if (name) RedisModule_FreeString(ctx, name);
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
        RedisModule_CreateCommand(ctx, "floor.pushacl", PushAcl, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
