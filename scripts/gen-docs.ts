/**
 * The tables in docs/ that mirror code: every config key from ConfigSchema into docs/configuration.md,
 * every error code from ErrorCodes into docs/api.md. Written by hand they drifted from the code; generated,
 * a test (test/unit/docs.test.ts) fails as soon as either changes without `npm run docs`.
 *
 *   npm run docs          rewrite the tables between their markers
 *
 * Only the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` is written; the prose
 * around it is the docs' own.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigSchema } from '../src/service/config-schema.js';
import { ErrorCodes } from '../src/service/error-codes.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The part of a JSON schema (TypeBox emits plain JSON Schema) the tables read. */
interface SchemaNode {
  type?: string;
  anyOf?: SchemaNode[];
  items?: SchemaNode;
  properties?: Record<string, SchemaNode>;
  patternProperties?: Record<string, SchemaNode>;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  default?: unknown;
  description?: string;
}

/**
 * Markdown table cells: a `|` would end the cell, a newline the row, and outside code spans a `<body>`
 * would be taken for an HTML tag and vanish from the rendered page.
 */
function cell(text: string): string {
  return text
    .replace(/\s*\n\s*/g, ' ')
    .split('`')
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/</g, '&lt;').replace(/>/g, '&gt;')))
    .join('`')
    .replace(/\|/g, '\\|');
}

function bounds(s: SchemaNode): string {
  const max = s.maximum;
  if (s.exclusiveMinimum !== undefined)
    return max === undefined ? ` > ${s.exclusiveMinimum}` : ` > ${s.exclusiveMinimum}, ≤ ${max}`;
  if (s.minimum !== undefined) return max === undefined ? ` ≥ ${s.minimum}` : ` ${s.minimum}–${max}`;
  return max === undefined ? '' : ` ≤ ${max}`;
}

/** A key's type as a reader needs it: the JSON type, its range, and the alternatives of a union. */
export function typeOf(s: SchemaNode): string {
  if (s.anyOf) return s.anyOf.map(typeOf).join(' | ');
  switch (s.type) {
    case 'integer':
    case 'number':
      return `${s.type}${bounds(s)}`;
    case 'string':
      return s.minLength && s.minLength > 1 ? `string (${s.minLength}+ chars)` : 'string';
    case 'array':
      return `${s.items ? typeOf(s.items).replace(/ \(.*\)$/, '') : 'any'}[]`;
    case 'object':
      return s.patternProperties ? 'object (name → string)' : 'object';
    default:
      return s.type ?? 'any';
  }
}

interface ConfigRow {
  key: string;
  type: string;
  default: string;
  description: string;
}

/** One row per key, nested object keys dotted (`a.b`); a key without a description is an error. */
export function configRows(schema: SchemaNode = ConfigSchema as SchemaNode, prefix = ''): ConfigRow[] {
  const rows: ConfigRow[] = [];
  for (const [name, node] of Object.entries(schema.properties ?? {})) {
    const key = prefix + name;
    if (node.type === 'object' && node.properties) {
      rows.push(...configRows(node, `${key}.`));
      continue;
    }
    if (!node.description?.trim()) {
      throw new Error(`config key "${key}" has no description in ConfigSchema: add one (with its unit)`);
    }
    rows.push({
      key,
      type: typeOf(node),
      default: node.default === undefined ? '(required)' : JSON.stringify(node.default),
      description: node.description,
    });
  }
  return rows;
}

export function configTable(schema?: SchemaNode): string {
  const lines = ['| key | type | default | description |', '| --- | --- | --- | --- |'];
  for (const r of configRows(schema)) {
    lines.push(`| \`${r.key}\` | ${cell(r.type)} | \`${cell(r.default)}\` | ${cell(r.description)} |`);
  }
  return lines.join('\n');
}

type CodeTable = Record<string, { status: number; retryable: boolean; description?: string }>;

export function errorTable(codes: CodeTable = ErrorCodes): string {
  const lines = ['| code | HTTP status | retryable | meaning |', '| --- | ---: | --- | --- |'];
  for (const [kind, c] of Object.entries(codes)) {
    if (!c.description?.trim()) throw new Error(`error code ${kind} has no description in ErrorCodes`);
    lines.push(
      `| \`GABE_ERR_${kind}\` | ${c.status} | ${c.retryable ? 'yes' : 'no'} | ${cell(c.description)} |`,
    );
  }
  return lines.join('\n');
}

/** Replaces what lies between the markers of `name` in `text`; fails when they are missing. */
export function fillMarkers(text: string, name: string, content: string): string {
  const open = `<!-- generated:${name} -->`;
  const close = `<!-- /generated:${name} -->`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start < 0 || end < start) throw new Error(`markers ${open} … ${close} not found`);
  return `${text.slice(0, start + open.length)}\n${content}\n${text.slice(end)}`;
}

/** Every generated file: its path under the repository and the tables it holds. */
export const GENERATED: { file: string; tables: { name: string; render: () => string }[] }[] = [
  { file: 'docs/configuration.md', tables: [{ name: 'config', render: () => configTable() }] },
  { file: 'docs/api.md', tables: [{ name: 'errors', render: () => errorTable() }] },
];

/** The file's text with its tables regenerated. */
export function regenerate(file: string, text: string): string {
  const entry = GENERATED.find((g) => g.file === file);
  if (!entry) throw new Error(`${file} has no generated tables`);
  return entry.tables.reduce((t, table) => fillMarkers(t, table.name, table.render()), text);
}

function main(): void {
  for (const { file } of GENERATED) {
    const full = path.join(ROOT, file);
    const before = readFileSync(full, 'utf8');
    const after = regenerate(file, before);
    if (after === before) {
      console.log(`${file}: up to date`);
    } else {
      writeFileSync(full, after);
      console.log(`${file}: tables rewritten`);
    }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
