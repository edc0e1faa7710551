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
  assert.ok(start >= 0, `no "## ${name}" section`);
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

/** Every file under `dir` (recursively), as paths relative to ROOT. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const sub = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...filesUnder(sub));
    else out.push(sub);
  }
  return out;
}

/**
 * The `.ts` paths a markdown file names in its code spans and link targets (fenced blocks aside):
 * `src/net/client.ts`, `pipeline/hls/job.ts`, `job-mux.ts`. Patterns (`*.test.ts`, `{a,b}.ts`,
 * `<file>.test.ts`) name no one file and are left out.
 */
function namedTsPaths(markdown: string): string[] {
  const text = markdown.replace(/^```[\s\S]*?^```/gm, '');
  const spans = [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] ?? '');
  const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => (m[1] ?? '').split('#')[0] ?? '');
  const names = new Set<string>();
  for (const chunk of [...spans, ...links]) {
    for (const raw of chunk.split(/[\s,;()]+/)) {
      const token = raw.replace(/^[[("']+|[\])"':.]+$/g, '');
      if (!/[\w-]\.ts$/.test(token) || /[*{}<>$]/.test(token)) continue;
      names.add(token);
    }
  }
  return [...names];
}

/**
 * Whether a named `.ts` path exists: with a folder, relative to the repository, to src/ or to the
 * doc's own folder; a bare name, as the name of some file under src/ or test/.
 */
function tsPathExists(name: string, docDir: string, bareNames: ReadonlySet<string>): boolean {
  if (!name.includes('/')) return bareNames.has(name);
  return [ROOT, path.join(ROOT, 'src'), path.join(ROOT, docDir)].some((base) =>
    existsSync(path.join(base, name)),
  );
}

/**
 * The module map of docs/architecture.md: for each folder block (a line starting with **`src/…/`**),
 * the `.ts` names given in its lines.
 */
function moduleMap(markdown: string): Map<string, Set<string>> {
  const map = new Map<string, Set<string>>();
  let folder: string | null = null;
  for (const line of section(markdown, 'Module map').split('\n')) {
    const head = /^\*\*`(src\/(?:[^`]*\/)?)`\*\*/.exec(line);
    if (head) {
      folder = head[1] ?? null;
      if (folder && !map.has(folder)) map.set(folder, new Set());
    }
    if (!folder) continue;
    for (const m of line.matchAll(/`([^`]+)`/g)) {
      for (const name of (m[1] ?? '').split(/[\s,]+/)) {
        if (name.endsWith('.ts')) map.get(folder)!.add(name);
      }
    }
  }
  return map;
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
  it('every .ts path named in README.md and docs/*.md exists (bare names: some file under src/ or test/)', () => {
    const bareNames = new Set([...filesUnder('src'), ...filesUnder('test')].map((f) => path.basename(f)));
    const missing: string[] = [];
    for (const file of docFiles()) {
      for (const name of namedTsPaths(read(file))) {
        if (!tsPathExists(name, path.dirname(file), bareNames)) missing.push(`${file}: ${name}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('the module map of docs/architecture.md names every .ts under src/ in its folder, and nothing else', () => {
    const map = moduleMap(read('docs/architecture.md'));
    const actual = new Map<string, Set<string>>();
    for (const f of filesUnder('src').filter((f) => f.endsWith('.ts'))) {
      const folder = `${path.dirname(f)}/`;
      if (!actual.has(folder)) actual.set(folder, new Set());
      actual.get(folder)!.add(path.basename(f));
    }
    const unmapped: string[] = [];
    for (const [folder, names] of actual) {
      for (const name of names) if (!map.get(folder)?.has(name)) unmapped.push(`${folder}${name}`);
    }
    const stale: string[] = [];
    for (const [folder, names] of map) {
      for (const name of names) if (!actual.get(folder)?.has(name)) stale.push(`${folder}${name}`);
    }
    assert.deepEqual(unmapped, [], 'modules under src/ missing from the module map');
    assert.deepEqual(stale, [], 'the module map names modules that do not exist there');
  });
});
