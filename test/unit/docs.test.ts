/**
 * The docs state what the code has: the tables that mirror code are regenerated and compared, the README's
 * layout is checked against src/, and every relative link (and #anchor) must land somewhere.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Type } from 'typebox';
import { configRows, configTable, errorTable, GENERATED, ROOT, regenerate } from '../../scripts/gen-docs.js';
import { ConfigSchema } from '../../src/service/config-schema.js';

const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

function docFiles(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs.sort()];
}

/** Every folder under src/, as `src/a/b/`. */
function srcFolders(dir = 'src'): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const sub = `${dir}/${entry.name}`;
    out.push(`${sub}/`, ...srcFolders(sub));
  }
  return out;
}

/** The lines of a `## name` section, up to the next heading of that level. */
function section(markdown: string, name: string): string {
  const start = markdown.indexOf(`\n## ${name}\n`);
  assert.ok(start >= 0, `README.md has no "## ${name}" section`);
  const rest = markdown.slice(start + name.length + 5);
  const end = rest.search(/\n## /);
  return end < 0 ? rest : rest.slice(0, end);
}

/** Markdown without its fenced code blocks and code spans, where `[a](b)` is not a link. */
function withoutCode(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's heading anchors: code marks dropped, lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const text = (m[1] ?? '').replace(/`/g, '').toLowerCase();
    out.add(text.replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return out;
}

function relativeLinks(markdown: string): string[] {
  const links = [...withoutCode(markdown).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1] ?? '');
  return links.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l));
}

describe('docs', () => {
  it('holds exactly the tables generated from ConfigSchema and ErrorCodes (npm run docs)', () => {
    for (const { file } of GENERATED) {
      const text = read(file);
      assert.equal(text, regenerate(file, text), `${file} is stale: run npm run docs`);
    }
  });

  it('lists every config key in the configuration table, and no other', () => {
    const table = configTable();
    const keys = [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => (m[1] ?? '').split('.')[0]);
    assert.deepEqual([...new Set(keys)], Object.keys(ConfigSchema.properties));
    assert.ok(read('docs/configuration.md').includes(table));
  });

  it('the generator refuses a config key or an error code without a description', () => {
    const schema = Type.Object({
      port: Type.Integer({ default: 8000, description: 'Port.' }),
      retries: Type.Integer({ default: 3 }),
    });
    assert.throws(() => configTable(schema), /config key "retries" has no description/);
    assert.throws(
      () =>
        errorTable({
          OK: { status: 200, retryable: false, description: 'fine' },
          BAD: { status: 500, retryable: false },
        }),
      /error code BAD has no description/,
    );
  });

  it('the generator dots nested config keys and escapes table syntax in cells', () => {
    const schema = Type.Object({
      limits: Type.Object({
        per_ip: Type.Integer({ minimum: 0, default: 5, description: 'Jobs per IP | 0 = none.' }),
      }),
      secret: Type.Union([Type.String({ minLength: 16 }), Type.Null()], {
        default: null,
        description: 'Signs "<ts>.<body>".',
      }),
    });
    assert.deepEqual(
      configRows(schema).map((r) => [r.key, r.type, r.default]),
      [
        ['limits.per_ip', 'integer ≥ 0', '5'],
        ['secret', 'string (16+ chars) | null', 'null'],
      ],
    );
    const rows = configTable(schema).split('\n').slice(2);
    assert.deepEqual(rows, [
      '| `limits.per_ip` | integer ≥ 0 | `5` | Jobs per IP \\| 0 = none. |',
      '| `secret` | string (16+ chars) \\| null | `null` | Signs "&lt;ts&gt;.&lt;body&gt;". |',
    ]);
  });

  it('README Layout names exactly the folders under src/', () => {
    const layout = section(read('README.md'), 'Layout');
    const listed = [...layout.matchAll(/^- `(src\/[^`]*)`/gm)].map((m) => (m[1] ?? '').replace(/\/?$/, '/'));
    const actual = srcFolders();
    assert.deepEqual(
      listed.filter((f) => !actual.includes(f)),
      [],
      'README Layout lists folders that do not exist',
    );
    assert.deepEqual(
      actual.filter((f) => !listed.includes(f)),
      [],
      'folders under src/ missing from README Layout',
    );
  });

  it('README is at most 10 KB and starts with the two commands', () => {
    const readme = read('README.md');
    assert.ok(Buffer.byteLength(readme) <= 10 * 1024, `README.md is ${Buffer.byteLength(readme)} bytes`);
    const lines = readme.split('\n');
    assert.equal(lines[0], '# Gabe');
    assert.equal(lines[2], '```sh');
    assert.match(lines[3] ?? '', /^npm ci && npm start\s+#/);
    assert.match(lines[4] ?? '', /^npm test\s+#/);
    assert.equal(lines[5], '```');
  });

  it('every relative link in README.md and docs/*.md points at a file (and heading) that exists', () => {
    const broken: string[] = [];
    for (const file of docFiles()) {
      const dir = path.dirname(file);
      for (const link of relativeLinks(read(file))) {
        const [target = '', anchor] = link.split('#');
        const targetFile = target === '' ? file : path.normalize(path.join(dir, decodeURI(target)));
        const full = path.join(ROOT, targetFile);
        if (!existsSync(full)) {
          broken.push(`${file}: ${link} (no such file)`);
          continue;
        }
        if (anchor && statSync(full).isFile() && targetFile.endsWith('.md')) {
          if (!anchors(read(targetFile)).has(anchor)) broken.push(`${file}: ${link} (no such heading)`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });
});
