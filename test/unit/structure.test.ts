/**
 * The size rules of the engineering guide, kept true by a test rather than by a reviewer's eye: a module
 * over ~300 lines holds more than one job, and a pipeline function over ~80 lines is phases that want names.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const SRC = path.resolve(import.meta.dirname, '../../src');
const MAX_FILE_LINES = 300;
const MAX_PIPELINE_FUNCTION_LINES = 80;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

function lineCount(text: string): number {
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

function longFunctions(file: string, max: number): string[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart()).line;
      const last = sf.getLineAndCharacterOfPosition(node.end).line;
      if (last - first + 1 > max) {
        found.push(`${path.relative(SRC, file)}:${first + 1} (${last - first + 1} lines)`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

describe('module and function sizes (GUIDE.md)', () => {
  const files = sources(SRC);

  it(`keeps every module in src/ at ${MAX_FILE_LINES} lines or fewer`, () => {
    const over = files
      .map((f) => ({ f: path.relative(SRC, f), n: lineCount(readFileSync(f, 'utf8')) }))
      .filter(({ n }) => n > MAX_FILE_LINES)
      .map(({ f, n }) => `${f} (${n} lines)`);
    assert.deepEqual(over, []);
  });

  it(`keeps every function in src/pipeline/ at ${MAX_PIPELINE_FUNCTION_LINES} lines or fewer`, () => {
    const pipeline = files.filter((f) => f.startsWith(path.join(SRC, 'pipeline') + path.sep));
    assert.ok(pipeline.length > 20, 'the pipeline folder is where it should be');
    assert.deepEqual(
      pipeline.flatMap((f) => longFunctions(f, MAX_PIPELINE_FUNCTION_LINES)),
      [],
    );
  });
});
