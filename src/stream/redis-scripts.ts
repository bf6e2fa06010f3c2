/**
 * Every Lua script Herald runs, in one table, and the one way they are called. A script's file carries its
 * key count in its name (`chunk-step-9.lua`, as BullMQ names `moveToActive-11.lua`), so the count cannot
 * drift from the script; a call with another number of keys is refused before it reaches Redis.
 *
 * Scripts go by EVALSHA, and by EVAL when Redis answers NOSCRIPT (a Redis restarted empty, a failover):
 * a script that Redis did not know did not run, so sending it again is safe, in a pipeline too.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pipelineBySlot, type RedisClient } from './redis-connect.js';

interface Script {
  file: string;
  numberOfKeys: number;
  lua: string;
  sha: string;
}

function load(file: string): Script {
  const match = /-(\d+)$/.exec(file);
  if (match === null) throw new RangeError(`script file ${file}.lua does not end in its key count`);
  const lua = readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), 'utf8');
  return { file, numberOfKeys: Number(match[1]), lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const SCRIPTS = {
  announce: load('announce-3'),
  capSeed: load('cap-seed-3'),
  capTake: load('cap-take-3'),
  chunkStep: load('chunk-step-9'),
  fence: load('fence-3'),
  leaseAcquire: load('lease-acquire-3'),
  leaseRelease: load('lease-release-1'),
  leaseRenew: load('lease-renew-1'),
  livenessBeat: load('liveness-beat-1'),
  raise: load('raise-1'),
  rateAcquire: load('rate-acquire-1'),
  takeover: load('takeover-2'),
  touch: load('touch-1'),
} satisfies Record<string, Script>;

export type ScriptName = keyof typeof SCRIPTS;
export type ScriptArg = string | number | Buffer;

export interface ScriptCall {
  script: ScriptName;
  keys: readonly string[];
  args: readonly ScriptArg[];
}

/** A reply, or the error Redis gave for that one call (a pipeline's calls fail one by one). */
export type ScriptResult = { ok: true; reply: unknown } | { ok: false; error: Error };

/** The script's key count, as its file name says. */
export function scriptKeyCount(script: ScriptName): number {
  return SCRIPTS[script].numberOfKeys;
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

function commandArgs(call: ScriptCall, body: 'sha' | 'lua'): ScriptArg[] {
  const s = SCRIPTS[call.script];
  if (call.keys.length !== s.numberOfKeys) {
    throw new RangeError(`${s.file}.lua takes ${s.numberOfKeys} keys, given ${call.keys.length}`);
  }
  return [body === 'sha' ? s.sha : s.lua, s.numberOfKeys, ...call.keys, ...call.args];
}

/**
 * Runs one script. `replies: 'buffer'` keeps bulk strings as Buffers (entries carrying msgpack), else they
 * come as strings.
 */
export async function runScript(client: RedisClient, call: ScriptCall, replies: 'string' | 'buffer' = 'string'): Promise<unknown> {
  const send = (body: 'sha' | 'lua'): Promise<unknown> => {
    const args = commandArgs(call, body);
    const cmd = body === 'sha' ? 'EVALSHA' : 'EVAL';
    return replies === 'buffer' ? client.callBuffer(cmd, ...args) : client.call(cmd, ...args);
  };
  try {
    return await send('sha');
  } catch (err) {
    if (!isNoScript(err)) throw err;
    return send('lua');
  }
}

/**
 * Runs several scripts in one pipeline: one socket write and one read (on a cluster, one per hash tag of
 * the calls' keys, side by side). Each is still its own atomic script; only the round trip is shared.
 * Calls Redis did not know the script for are sent again by EVAL: each cluster node learns a script the
 * first time it is sent one.
 */
export async function runScripts(client: RedisClient, calls: readonly ScriptCall[]): Promise<ScriptResult[]> {
  for (const call of calls) commandArgs(call, 'sha'); // a wrong key count is refused before anything is sent
  const results = await pipelineBySlot(
    client,
    calls,
    (call) => call.keys[0] ?? '',
    (p, call) => p.call('EVALSHA', ...commandArgs(call, 'sha')),
  );
  const out = results.map(([err, reply]): ScriptResult => (err === null ? { ok: true, reply } : { ok: false, error: err }));
  // Only after a restart or failover: each script Redis did not know is sent again, in full.
  for (let i = 0; i < calls.length; i++) {
    const r = out[i]!;
    if (r.ok || !isNoScript(r.error)) continue;
    try {
      out[i] = { ok: true, reply: await client.call('EVAL', ...commandArgs(calls[i]!, 'lua')) };
    } catch (e) {
      out[i] = { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
    }
  }
  return out;
}
