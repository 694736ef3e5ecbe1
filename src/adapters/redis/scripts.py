"""The Lua scripts that make every write one atomic step, and how they are called.

Each script checks every key's type and the stored count *before* its first write and answers
with a status code instead of half-applying, so a refused write leaves Redis as it was. Counts
never pass through Lua numbers (doubles, which would round above 2**53): `by` and the new value
travel as strings and the result is read back as a string; HINCRBY itself refuses a result
outside the signed 64-bit range. Needs Redis >= 5 (a script that writes after TIME).

The increment script does not judge an Idempotency-Key record: when one exists it hands it back
unchanged (fingerprint, recorded state, the server's time and the record's remaining TTL) and
Python asks the domain's `decide`. Nothing is written in that case, so the check and the write
that may follow stay atomic: the write happens only in a script run that found no record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from adapters.redis.protocol import bulk, pack

# Status codes the scripts answer with (first element of the reply).
APPLIED: Final = 0
RECORDED: Final = 1  # increment: a record exists for the key; nothing was written
OVERFLOW: Final = 3
CORRUPTED: Final = 4
STEP_REFUSED: Final = 5  # increment: outside the counter's [min_step, max_step]; nothing written
EXISTS: Final = 6  # create: the counter exists; nothing written
VERSION_MISMATCH: Final = 7  # set, delete: not at the expected version; nothing written
EXISTING: Final = 8  # restore: the counter is there (or no longer as seen); nothing written
NOT_FOUND: Final = 0  # delete
DELETED: Final = 1  # delete

# Shared by the write scripts: refuse to touch anything when the names index is not a sorted set,
# and sort a failed HINCRBY into overflow / unreadable data / anything else (OOM, READONLY...,
# which are passed on as they are and mean that nothing was written).
_LUA_PRELUDE: Final = """
local function names_unreadable()
  local kind = redis.call('TYPE', KEYS[2])['ok']
  if kind ~= 'zset' and kind ~= 'none' then
    return {4, 'WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. kind .. ', not a sorted set'}
  end
  return nil
end
local function refused(result)
  if type(result) == 'table' and result['err'] then
    local err = result['err']
    if string.find(err, 'would overflow', 1, true) then return {3} end
    if string.find(err, 'WRONGTYPE', 1, true) or string.find(err, 'not an integer', 1, true) then
      return {4, err}
    end
    return redis.error_reply(err)
  end
  return nil
end
local function now_us()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', t[2])
end
-- A counter with a ttl lives ttl_ms past each write: the key's PEXPIRE, and `expires_at` (in
-- microseconds, like the timestamps) for reads. Microseconds of today stay below 2^53.
local function push_expiry(key, ttl_ms, now)
  if not ttl_ms then return false end
  redis.call('PEXPIRE', key, ttl_ms)
  local expires = string.format('%.0f', tonumber(now) + tonumber(ttl_ms) * 1000)
  redis.call('HSET', key, 'expires_at', expires)
  return expires
end
local function state_of(key)
  return redis.call('HMGET', key, 'count', 'created_at', 'updated_at', 'expires_at', 'rules',
                    'admin_key_hash', 'version')
end
-- The version a counter is at, from its stored `version` field and whether its hash exists: 0
-- for a missing counter, 1 for one written before versions (no field); nil when unreadable.
-- Versions stay far below 2^53, so Lua's doubles hold them exactly.
local function version_of(stored, exists)
  if not exists then return 0 end
  if not stored then return 1 end
  if not string.match(stored, '^%d+$') then return nil end
  return tonumber(stored)
end
local function bad_version(key, stored)
  return {4, key .. ' holds the version ' .. tostring(stored) .. ', which is not a version'}
end
-- The expected version of a conditional write ('' for none) does not hold, or the counter is not
-- the one made at the expected created_at ('' for none): {7, current, its created_at or ''}.
local function mismatch(expected, version, made)
  local created = ''
  if made ~= '' then created = redis.call('HGET', KEYS[1], 'created_at') or '' end
  if (expected ~= '' and tonumber(expected) ~= version) or created ~= made then
    return {7, version, created}
  end
  return nil
end
local function decimal(number)
  return string.format('%.0f', number)
end
"""

# Every write script ends with a PUBLISH of the change on the counter's channel (a name built by
# keys.changes_channel, passed in ARGV), in the same atomic step: "{version} {count}", or
# "{version} deleted".

# KEYS: counter hash, names zset[, idempotency record];
# ARGV: by, name, channel[, fingerprint, ttl ms[, updated_at of a record the domain judged expired]].
# -> {0, count, created_at, updated_at, expires_at, rules, admin_key_hash, version}
#  | {1, fingerprint, count, created_at, updated_at, now, pttl, version}  (the record, untouched)
#  | {3} | {4, message} | {5, rules}
# The step range of a counter created with rules is in its hash (min_step, max_step: within
# 2^53, so Lua's doubles compare them exactly) and checked before anything is written.
# A record whose updated_at is ARGV[6] is the one Python was told to disregard: it is replaced
# only if it is still that record, so two callers never both apply over one expired record.
_INCREMENT_LUA: Final = (
    _LUA_PRELUDE
    + """
if KEYS[3] then
  local rec = redis.pcall('HMGET', KEYS[3], 'fingerprint', 'count', 'created_at', 'updated_at',
                          'version')
  if rec['err'] then return {4, rec['err']} end
  if rec[1] and rec[4] ~= ARGV[6] then
    return {1, rec[1], rec[2], rec[3], rec[4], now_us(), redis.call('PTTL', KEYS[3]), rec[5]}
  end
end
local bad = names_unreadable()
if bad then return bad end
local limits = redis.pcall('HMGET', KEYS[1], 'min_step', 'max_step', 'ttl_ms', 'version', 'count',
                           'created_at')
bad = refused(limits)
if bad then return bad end
local by = tonumber(ARGV[1])
if (limits[1] and by < tonumber(limits[1])) or (limits[2] and by > tonumber(limits[2])) then
  return {5, redis.call('HGET', KEYS[1], 'rules') or ''}
end
local version = version_of(limits[4], limits[5] or limits[6])
if not version then return bad_version(KEYS[1], limits[4]) end
version = decimal(version + 1)
bad = refused(redis.pcall('HINCRBY', KEYS[1], 'count', ARGV[1]))
if bad then return bad end
local now = now_us()
local state = redis.call('HMGET', KEYS[1], 'count', 'created_at')
if state[2] then
  redis.call('HSET', KEYS[1], 'updated_at', now, 'version', version)
else  -- a new counter
  state[2] = now
  redis.call('HSET', KEYS[1], 'created_at', now, 'updated_at', now, 'version', version)
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
end
push_expiry(KEYS[1], limits[3], now)
if KEYS[3] then
  redis.call('HSET', KEYS[3], 'fingerprint', ARGV[4], 'count', state[1],
             'created_at', state[2], 'updated_at', now, 'version', version)
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('PUBLISH', ARGV[3], version .. ' ' .. state[1])
local full = state_of(KEYS[1])
return {0, full[1], full[2], full[3], full[4], full[5], full[6], full[7]}
"""
)

# KEYS: counter hash, names zset; ARGV: count, name, channel, expected version, expected
# created_at (microseconds) ('' for none).
# -> {0, previous, count, created_at, updated_at, expires_at, rules, admin_key_hash, version}
#  | {4, message} | {7, version, created_at}
# The version is checked first, writing nothing. Then HINCRBY by 0 makes Redis itself check that
# the stored count is a 64-bit integer (and creates a missing counter at 0, the "previous" value
# of a new counter) before anything is overwritten.
_SET_LUA: Final = (
    _LUA_PRELUDE
    + """
local bad = names_unreadable()
if bad then return bad end
local stored = redis.pcall('HGET', KEYS[1], 'version')
bad = refused(stored)
if bad then return bad end
local version = version_of(stored, redis.call('EXISTS', KEYS[1]) == 1)
if not version then return bad_version(KEYS[1], stored) end
bad = mismatch(ARGV[4], version, ARGV[5])
if bad then return bad end
version = decimal(version + 1)
bad = refused(redis.pcall('HINCRBY', KEYS[1], 'count', 0))
if bad then return bad end
local previous = redis.call('HGET', KEYS[1], 'count')
local now = now_us()
redis.call('HSET', KEYS[1], 'count', ARGV[1], 'updated_at', now, 'version', version)
redis.call('HSETNX', KEYS[1], 'created_at', now)
redis.call('ZADD', KEYS[2], 0, ARGV[2])
push_expiry(KEYS[1], redis.call('HGET', KEYS[1], 'ttl_ms'), now)
redis.call('PUBLISH', ARGV[3], version .. ' ' .. ARGV[1])
local full = state_of(KEYS[1])
return {0, previous, full[1], full[2], full[3], full[4], full[5], full[6], full[7]}
"""
)

# KEYS: counter hash, names zset; ARGV: name, channel, expected version, expected created_at
# (microseconds) ('' for none).
# -> {0} (did not exist)
#  | {1, count, created_at, updated_at, expires_at, rules, admin_key_hash, version}
#  | {4, message} | {7, version, created_at}
_DELETE_LUA: Final = (
    _LUA_PRELUDE
    + """
local bad = names_unreadable()
if bad then return bad end
local stored = redis.pcall('HGET', KEYS[1], 'version')
bad = refused(stored)
if bad then return bad end
local exists = redis.call('EXISTS', KEYS[1]) == 1
local version = version_of(stored, exists)
if not version then return bad_version(KEYS[1], stored) end
bad = mismatch(ARGV[3], version, ARGV[4])
if bad then return bad end
if not exists then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0}
end
bad = refused(redis.pcall('HINCRBY', KEYS[1], 'count', 0))
if bad then return bad end
local state = state_of(KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], decimal(version + 1) .. ' deleted')
return {1, state[1], state[2], state[3], state[4], state[5], state[6], decimal(version)}
"""
)

# KEYS: counter hash, names zset; ARGV: count, name, rules (JSON), min_step, max_step, ttl ms,
# admin_key_hash ('' where there is none), channel.
# -> {0, count, created_at, updated_at, expires_at, rules, admin_key_hash, version} | {4, message}
#  | {6}
# An expired counter is a missing key (Redis deleted it), so it may be created again.
_CREATE_LUA: Final = (
    _LUA_PRELUDE
    + """
local bad = names_unreadable()
if bad then return bad end
if redis.call('EXISTS', KEYS[1]) == 1 then return {6} end
local now = now_us()
redis.call('HSET', KEYS[1], 'count', ARGV[1], 'created_at', now, 'updated_at', now, 'rules', ARGV[3],
           'version', '1')
local optional = {min_step = ARGV[4], max_step = ARGV[5], ttl_ms = ARGV[6], admin_key_hash = ARGV[7]}
for field, value in pairs(optional) do
  if value ~= '' then redis.call('HSET', KEYS[1], field, value) end
end
if ARGV[6] ~= '' then push_expiry(KEYS[1], ARGV[6], now) end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('PUBLISH', ARGV[8], '1 ' .. ARGV[1])
local full = state_of(KEYS[1])
return {0, full[1], full[2], full[3], full[4], full[5], full[6], full[7]}
"""
)

# KEYS: counter hash.
# -> {0, count, created_at, updated_at, expires_at, rules, admin_key_hash, version}
#  | {0} (missing) | {4, message}. A get that moves the expiry of a counter with a ttl.
_TOUCH_LUA: Final = (
    _LUA_PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local ttl = redis.pcall('HGET', KEYS[1], 'ttl_ms')
local bad = refused(ttl)
if bad then return bad end
push_expiry(KEYS[1], ttl, now_us())
local full = state_of(KEYS[1])
return {0, full[1], full[2], full[3], full[4], full[5], full[6], full[7]}
"""
)


# KEYS: counter hash, names zset; ARGV: mode ('absent', or 'replace' the state seen), the count
# and updated_at seen (replace), count, name, created_at, updated_at, rules, min_step, max_step,
# ttl ms, admin_key_hash, expires_at (microseconds), expiry (Unix ms) ('' where there is none),
# version, channel.
# -> {0} | {8, count, created_at, updated_at, expires_at, rules, admin_key_hash, version} (it is
# there: Python judges it, domain.restore) | {8} (replace: it is gone) | {4, message}
# Only the state Python judged is replaced: the count and updated_at seen must still be there.
_RESTORE_LUA: Final = (
    _LUA_PRELUDE
    + """
local bad = names_unreadable()
if bad then return bad end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local state = redis.pcall('HMGET', KEYS[1], 'count', 'created_at', 'updated_at', 'expires_at',
                            'rules', 'admin_key_hash', 'version')
  bad = refused(state)
  if bad then return bad end
  if ARGV[1] ~= 'replace' or state[1] ~= ARGV[2] or state[3] ~= ARGV[3] then
    return {8, state[1], state[2], state[3], state[4], state[5], state[6], state[7]}
  end
  redis.call('DEL', KEYS[1])
elseif ARGV[1] == 'replace' then
  return {8}
end
redis.call('HSET', KEYS[1], 'count', ARGV[4], 'created_at', ARGV[6], 'updated_at', ARGV[7],
           'version', ARGV[15])
local optional = {rules = ARGV[8], min_step = ARGV[9], max_step = ARGV[10], ttl_ms = ARGV[11],
                  admin_key_hash = ARGV[12], expires_at = ARGV[13]}
for field, value in pairs(optional) do
  if value ~= '' then redis.call('HSET', KEYS[1], field, value) end
end
if ARGV[14] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[14]) end
redis.call('ZADD', KEYS[2], 0, ARGV[5])
redis.call('PUBLISH', ARGV[16], ARGV[15] .. ' ' .. ARGV[4])
return {0}
"""
)

# KEYS: counter hash, names zset; ARGV: name. -> 1 when the name was taken out of the index.
# Redis deletes an expired counter's hash but not its name in the index: a listing that finds
# the hash gone drops the name, unless the counter has been made again meanwhile.
_PRUNE_LUA: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('TYPE', KEYS[2])['ok'] == 'zset' then
  return redis.call('ZREM', KEYS[2], ARGV[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script called by EVALSHA; `source` is sent with SCRIPT LOAD when Redis lacks it."""

    source: bytes
    sha: bytes

    @staticmethod
    def of(source: str) -> Script:
        encoded = source.encode()
        return Script(source=encoded, sha=hashlib.sha1(encoded, usedforsecurity=False).hexdigest().encode())

    def call(self, keys: Sequence[bytes], args: Sequence[bytes]) -> bytes:
        return self._head(keys, len(args)) + b"".join(map(bulk, args))

    def load(self) -> bytes:
        return pack(b"SCRIPT", b"LOAD", self.source)

    def prepare(self, keys: Sequence[bytes], args_after_first: Sequence[bytes]) -> PreparedCall:
        """The call with every key and argument but the first already packed, for a command
        sent again and again with another first argument (an increment's amount)."""
        head = self._head(keys, 1 + len(args_after_first))
        return PreparedCall(head, b"".join(map(bulk, args_after_first)))

    def _head(self, keys: Sequence[bytes], argument_count: int) -> bytes:
        """EVALSHA, the script's hash and its keys: the call up to its first argument."""
        head = b"*%d\r\n$7\r\nEVALSHA\r\n%b%b" % (
            3 + len(keys) + argument_count,
            bulk(self.sha),
            bulk(b"%d" % len(keys)),
        )
        return head + b"".join(map(bulk, keys))


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A script call packed but for its first argument: `head`, then that argument packed with
    `bulk()`, then `tail`."""

    head: bytes
    tail: bytes

    def with_first(self, packed_first: bytes) -> bytes:
        return self.head + packed_first + self.tail


INCREMENT: Final = Script.of(_INCREMENT_LUA)
SET: Final = Script.of(_SET_LUA)
DELETE: Final = Script.of(_DELETE_LUA)
CREATE: Final = Script.of(_CREATE_LUA)
TOUCH: Final = Script.of(_TOUCH_LUA)
PRUNE: Final = Script.of(_PRUNE_LUA)
RESTORE: Final = Script.of(_RESTORE_LUA)
