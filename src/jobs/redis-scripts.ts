/**
 * The Redis job store's read-modify-write steps, each one Lua script: Redis runs a script alone, so a
 * step is atomic across any number of API nodes and workers without locks or WATCH retries.
 *
 * Keys, under the store's prefix P (which ends in ':'):
 *   P seq                           INCR: the submission order (SQLite's seq)
 *   P job:<id>                      hash: the job's columns (jobs/redis-job-hash.ts), plus cancel_requested
 *   P jobs                          zset of every id, score seq
 *   P status:<STATUS>               zset, score seq: counts are ZCARD, lists are ZREVRANGE
 *   P owner:<owner>                 zset of an API key's jobs, score seq
 *   P owner-status:<STATUS>:<owner> zset, score seq (GET /jobs?status= for one key)
 *   P active:ip:<ip>, P active:owner:<owner>   sets of PENDING and PROCESSING ids (admission limits)
 *   P finished                      zset of final ids, score completed_at in ms (retention cleanup)
 * Every variable part comes last in its key, so no owner or IP can spell another one's key.
 *
 * Every script takes P as ARGV[1] and builds the keys itself: which index keys a step touches depends
 * on fields it reads (the job's IP, owner and status), so they cannot all be declared up front. That
 * is fine on a single Redis (or a primary with replicas), which is what queue.redis_url names.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { canTransition, JobStatus } from './types.js';

/** types.ts's transition table as a Lua table literal, so Lua cannot drift from canTransition. */
export function luaTransitionTable(): string {
  const statuses = Object.values(JobStatus);
  const rows = statuses.map((from) => {
    const to = statuses.filter((s) => canTransition(from, s)).map((s) => `${s} = true`);
    return `${from} = { ${to.join(', ')} }`;
  });
  return `{ ${rows.join(', ')} }`;
}

const PRELUDE = `
local P = ARGV[1]
local FINAL = { COMPLETED = true, FAILED = true, CANCELLED = true }
local ALLOWED = ${luaTransitionTable()}

local function jobKey(id) return P .. 'job:' .. id end

-- Moves a job from the indexes of state \`from\` to those of \`to\`.
local function reindex(id, from, to, nowMs)
  local meta = redis.call('HMGET', jobKey(id), 'seq', 'client_ip', 'owner')
  local seq, ip, owner = meta[1], meta[2], meta[3]
  redis.call('ZREM', P .. 'status:' .. from, id)
  redis.call('ZADD', P .. 'status:' .. to, seq, id)
  if owner then
    redis.call('ZREM', P .. 'owner-status:' .. from .. ':' .. owner, id)
    redis.call('ZADD', P .. 'owner-status:' .. to .. ':' .. owner, seq, id)
  end
  if FINAL[to] then
    redis.call('SREM', P .. 'active:ip:' .. ip, id)
    if owner then redis.call('SREM', P .. 'active:owner:' .. owner, id) end
    redis.call('ZADD', P .. 'finished', nowMs, id)
  end
end

-- SqliteJobStore.transition: false when the job is gone or the table refuses the move. completed_at
-- is set on a final state and cleared otherwise; a final job stops (speed 0, no ETA); COMPLETED is
-- 100 %; result is kept unless one is given; error and error_code are set, or cleared when not given.
local function move(id, to, now, nowMs, result, err, code)
  local k = jobKey(id)
  local from = redis.call('HGET', k, 'status')
  if not from or not ALLOWED[from] or not ALLOWED[from][to] then return false end
  if FINAL[to] then
    redis.call('HSET', k, 'status', to, 'updated_at', now, 'completed_at', now, 'speed_bps', '0')
    redis.call('HDEL', k, 'eta_seconds')
  else
    redis.call('HSET', k, 'status', to, 'updated_at', now)
    redis.call('HDEL', k, 'completed_at')
  end
  if to == 'COMPLETED' then redis.call('HSET', k, 'progress', '100') end
  if result then redis.call('HSET', k, 'result', result) end
  if err then redis.call('HSET', k, 'error', err) else redis.call('HDEL', k, 'error') end
  if code then redis.call('HSET', k, 'error_code', code) else redis.call('HDEL', k, 'error_code') end
  reindex(id, from, to, nowMs)
  return true
end
`;

export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(body: string): Script {
  const source = PRELUDE + body;
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * ARGV: P, id, type, request, client_ip, video_name, now, has_owner, owner, max_queue, max_ip,
 * max_owner (0 = no check). Returns {'ok', hash} or {kind, count} for the limit that refused.
 */
export const ADMIT = script(`
local id, ip, now = ARGV[2], ARGV[5], ARGV[7]
local owner = ARGV[8] == '1' and ARGV[9] or nil
local maxQueue, maxIp, maxOwner = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
if maxIp > 0 then
  local n = redis.call('SCARD', P .. 'active:ip:' .. ip)
  if n >= maxIp then return { 'IP_LIMIT', n } end
end
if owner and maxOwner > 0 then
  local n = redis.call('SCARD', P .. 'active:owner:' .. owner)
  if n >= maxOwner then return { 'KEY_LIMIT', n } end
end
local pending = redis.call('ZCARD', P .. 'status:PENDING')
if pending >= maxQueue then return { 'QUEUE_FULL', pending } end
local seq = redis.call('INCR', P .. 'seq')
local k = jobKey(id)
redis.call('HSET', k, 'seq', seq, 'id', id, 'type', ARGV[3], 'status', 'PENDING', 'request', ARGV[4],
  'client_ip', ip, 'video_name', ARGV[6], 'created_at', now, 'updated_at', now, 'progress', '0',
  'total_segments', '0', 'downloaded_segments', '0', 'downloaded_bytes', '0', 'speed_bps', '0',
  'attempts', '0')
redis.call('ZADD', P .. 'jobs', seq, id)
redis.call('ZADD', P .. 'status:PENDING', seq, id)
redis.call('SADD', P .. 'active:ip:' .. ip, id)
if owner then
  redis.call('HSET', k, 'owner', owner)
  redis.call('ZADD', P .. 'owner:' .. owner, seq, id)
  redis.call('ZADD', P .. 'owner-status:PENDING:' .. owner, seq, id)
  redis.call('SADD', P .. 'active:owner:' .. owner, id)
end
return { 'ok', redis.call('HGETALL', k) }
`);

/**
 * ARGV: P, id, to, now, now_ms, has_result, result, has_error, error, has_code, code, attempt fence ('' =
 * none). Hash or nil.
 */
export const TRANSITION = script(`
local id = ARGV[2]
local result = ARGV[6] == '1' and ARGV[7] or nil
local err = ARGV[8] == '1' and ARGV[9] or nil
local code = ARGV[10] == '1' and ARGV[11] or nil
-- The fence: a run that is no longer the job's current attempt records nothing.
if ARGV[12] ~= '' and redis.call('HGET', jobKey(id), 'attempts') ~= ARGV[12] then return false end
if not move(id, ARGV[3], ARGV[4], ARGV[5], result, err, code) then return false end
return redis.call('HGETALL', jobKey(id))
`);

/**
 * ARGV: P, id, attempt fence ('' = none), now, n, then n values of field/value pairs to set, then fields
 * to delete (nulls).
 */
export const PROGRESS = script(`
local k = jobKey(ARGV[2])
if redis.call('HGET', k, 'status') ~= 'PROCESSING' then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', k, 'attempts') ~= ARGV[3] then return 0 end
local n = tonumber(ARGV[5])
local set = { 'updated_at', ARGV[4] }
for i = 6, 5 + n do set[#set + 1] = ARGV[i] end
redis.call('HSET', k, unpack(set))
for i = 6 + n, #ARGV do redis.call('HDEL', k, ARGV[i]) end
return 1
`);

/**
 * ARGV: P, id, max_attempts, now, now_ms, exhausted message (string.format: attempts, max),
 * cancel message, cancel code, attempts code. Returns {outcome} or {outcome, hash}.
 */
export const CLAIM = script(`
local id, max, now, nowMs = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local k = jobKey(id)
local status = redis.call('HGET', k, 'status')
if not status then return { 'gone' } end
if FINAL[status] then return { 'final', redis.call('HGETALL', k) } end
-- Asked while it ran; it may have gone back to PENDING (its worker shut down) before anyone acted.
if redis.call('HGET', k, 'cancel_requested') == '1' then
  move(id, 'CANCELLED', now, nowMs, nil, ARGV[7], ARGV[8])
  return { 'cancelled', redis.call('HGETALL', k) }
end
if status == 'PENDING' then
  redis.call('HSET', k, 'status', 'PROCESSING', 'updated_at', now)
  redis.call('HSETNX', k, 'started_at', now)
  redis.call('HINCRBY', k, 'attempts', 1)
  reindex(id, 'PENDING', 'PROCESSING', nowMs)
  return { 'run', redis.call('HGETALL', k) }
end
-- PROCESSING: its worker died and BullMQ handed the job to this one.
local attempts = tonumber(redis.call('HGET', k, 'attempts'))
if attempts >= max then
  move(id, 'FAILED', now, nowMs, nil, string.format(ARGV[6], attempts, max), ARGV[9])
  return { 'exhausted', redis.call('HGETALL', k) }
end
redis.call('HINCRBY', k, 'attempts', 1)
redis.call('HSET', k, 'updated_at', now)
return { 'resume', redis.call('HGETALL', k) }
`);

/** ARGV: P, id, now, now_ms, cancel message, cancel code. The job afterwards, or nil. */
export const REQUEST_CANCEL = script(`
local id = ARGV[2]
local k = jobKey(id)
local status = redis.call('HGET', k, 'status')
if not status then return false end
local cancelled = 0
if status == 'PENDING' then
  move(id, 'CANCELLED', ARGV[3], ARGV[4], nil, ARGV[5], ARGV[6])
  cancelled = 1
elseif status == 'PROCESSING' then
  redis.call('HSET', k, 'cancel_requested', '1')
end
return { cancelled, redis.call('HGETALL', k) }
`);

/** ARGV: P, id. 1 when a job was deleted. */
export const DELETE = script(`
local id = ARGV[2]
local k = jobKey(id)
local meta = redis.call('HMGET', k, 'status', 'client_ip', 'owner')
local status, ip, owner = meta[1], meta[2], meta[3]
if not status then return 0 end
redis.call('ZREM', P .. 'jobs', id)
redis.call('ZREM', P .. 'status:' .. status, id)
redis.call('ZREM', P .. 'finished', id)
redis.call('SREM', P .. 'active:ip:' .. ip, id)
if owner then
  redis.call('ZREM', P .. 'owner:' .. owner, id)
  redis.call('ZREM', P .. 'owner-status:' .. status .. ':' .. owner, id)
  redis.call('SREM', P .. 'active:owner:' .. owner, id)
end
redis.call('DEL', k)
return 1
`);

/** ARGV: P, index key (after P), offset, limit. {total, hash, ...} newest first: one snapshot. */
export const PAGE = script(`
local key = P .. ARGV[2]
local offset, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = { redis.call('ZCARD', key) }
if limit > 0 then
  for _, id in ipairs(redis.call('ZREVRANGE', key, offset, offset + limit - 1)) do
    out[#out + 1] = redis.call('HGETALL', jobKey(id))
  end
end
return out
`);

/** ARGV: P, cutoff in ms, limit. Hashes of final jobs completed before the cutoff, oldest first. */
export const FINISHED_BEFORE = script(`
local out = {}
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do out[#out + 1] = redis.call('HGETALL', jobKey(id)) end
return out
`);

/** ARGV: P. Hashes of every PENDING and PROCESSING job. */
export const ACTIVE = script(`
local out = {}
for _, status in ipairs({ 'PENDING', 'PROCESSING' }) do
  for _, id in ipairs(redis.call('ZRANGE', P .. 'status:' .. status, 0, -1)) do
    out[#out + 1] = redis.call('HGETALL', jobKey(id))
  end
end
return out
`);

/** Runs a script by its SHA, sending the source only when this Redis has not seen it (NOSCRIPT). */
export async function runScript(redis: Redis, s: Script, args: (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(s.sha, 0, ...args);
  } catch (err) {
    if (!String((err as Error | null)?.message).startsWith('NOSCRIPT')) throw err;
    return redis.eval(s.source, 0, ...args);
  }
}
