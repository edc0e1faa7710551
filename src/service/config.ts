import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Static } from 'typebox';
import { Value } from 'typebox/value';
import { invalidTrustEntry } from '../api/client-ip.js';
import { invalidHostEntry } from '../api/hosts.js';
import { parseSpeed } from '../net/speed.js';
import { ConfigSchema } from './config-schema.js';
import { GabeError } from './errors.js';

export type Config = Readonly<Static<typeof ConfigSchema>>;

const PATH_KEYS = ['temp_path', 'output_path', 'database_path', 'log_path', 'ffmpeg_path'] as const;
const CONFIG_KEYS = Object.keys(ConfigSchema.properties) as (keyof Config)[];

export interface LoadConfigOptions {
  /** Path of config.json; a missing file means defaults. */
  file?: string;
  /** Environment to read GABE_<KEY> overrides from. */
  env?: NodeJS.ProcessEnv;
  /** Values that win over file and environment (CLI flags). */
  overrides?: Partial<Record<keyof Config, unknown>>;
}

export function defaultConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env['GABE_CONFIG'] || 'config.json');
}

function readConfigFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new GabeError('CONFIG', `${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new GabeError('CONFIG', `${file} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * GABE_PORT=9000, GABE_PROXY=null, GABE_USE_MULTITHREADING=false, GABE_HEADERS='{"Referer":"…"}': JSON
 * when it parses, else a string. Objects and arrays only for the keys that hold them, so that a value
 * that merely looks like JSON stays the string it is for a string key.
 */
function readEnvOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const raw = env[`GABE_${key.toUpperCase()}`];
    if (raw === undefined) continue;
    try {
      const v: unknown = JSON.parse(raw);
      out[key] = v !== null && typeof v === 'object' && !STRUCTURED_KEYS.has(key) ? raw : v;
    } catch {
      out[key] = raw;
    }
  }
  return out;
}

const STRUCTURED_KEYS = new Set<keyof Config>([
  'headers',
  'api_keys',
  'trust_proxy',
  'allowed_hosts',
  'queue',
  'storage',
]);

function describeError(e: {
  instancePath: string;
  message: string;
  keyword: string;
  params: object;
}): string {
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperties?: string[] }).additionalProperties ?? [];
    return `unknown key ${extra.map((k) => `"${k}"`).join(', ')} (known keys: ${CONFIG_KEYS.join(', ')})`;
  }
  const key = e.instancePath.replace(/^\//, '') || '(root)';
  return `"${key}" ${e.message}`;
}

/** Checks a JSON schema cannot express. */
function semanticErrors(config: Static<typeof ConfigSchema>): string[] {
  const out: string[] = [];
  if (Array.isArray(config.trust_proxy)) {
    for (const entry of config.trust_proxy) {
      const why = invalidTrustEntry(entry);
      if (why) out.push(`"trust_proxy" ${why}`);
    }
  }
  for (const entry of config.allowed_hosts ?? []) {
    const why = invalidHostEntry(entry);
    if (why) out.push(`"allowed_hosts" ${why}`);
  }
  try {
    parseSpeed(config.max_total_speed, 'max_total_speed'); // "0K" matches the pattern, yet is no speed
  } catch (err) {
    out.push((err as Error).message);
  }
  return out;
}

/**
 * Loads, validates and freezes the configuration. Precedence: defaults < file < GABE_* env < overrides.
 * Fails fast with GABE_ERR_CONFIG naming the key, so a typo never silently falls back to a default.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const file = path.resolve(options.file ?? defaultConfigFile(options.env));
  const baseDir = path.dirname(file);
  const merged: Record<string, unknown> = {
    ...readConfigFile(file),
    ...readEnvOverrides(options.env ?? process.env),
  };
  for (const [k, v] of Object.entries(options.overrides ?? {})) if (v !== undefined) merged[k] = v;

  const withDefaults = Value.Default(ConfigSchema, merged) as Record<string, unknown>;
  const errors = Value.Errors(ConfigSchema, withDefaults).filter(
    // A union failure is reported once per branch and once more for the union; keep the union's line.
    (e) => e.keyword !== 'boolean' && !/\/anyOf\/\d+$/.test(e.schemaPath),
  );
  if (errors.length > 0) {
    const lines = [...new Set(errors.map(describeError))];
    throw new GabeError('CONFIG', `invalid configuration (${file}): ${lines.join('; ')}`, {
      details: { errors: lines },
    });
  }
  const config = withDefaults as Static<typeof ConfigSchema>;
  const semantic = semanticErrors(config);
  if (semantic.length > 0) {
    throw new GabeError('CONFIG', `invalid configuration (${file}): ${semantic.join('; ')}`, {
      details: { errors: semantic },
    });
  }
  for (const key of PATH_KEYS) {
    const v = config[key];
    // ffmpeg_path may be a bare command name ("ffmpeg7"); only paths with a separator are resolved.
    if (typeof v === 'string' && (key !== 'ffmpeg_path' || v.includes('/') || v.includes(path.sep))) {
      (config as Record<string, unknown>)[key] = path.resolve(baseDir, v);
    }
  }
  return Object.freeze(config);
}
