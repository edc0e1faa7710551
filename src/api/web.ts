import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { PACKAGE_ROOT } from '../version.js';

/** web/ sits beside src/ and dist/. */
export const WEB_DIR = path.join(PACKAGE_ROOT, 'web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/** Paths the page needs before it knows an API key (the page asks for one). */
export function isWebPath(url: string): boolean {
  const p = url.split('?')[0] ?? '';
  return p === '/' || p.startsWith('/web/') || p === '/favicon.ico';
}

/**
 * The web page: a handful of static files, read from disk per request (small, and edits show up
 * without a restart). Names are matched against a fixed pattern, so no request can leave web/.
 */
export const webRoutes: FastifyPluginAsync = async (app) => {
  const send = async (name: string, reply: import('fastify').FastifyReply) => {
    const type = TYPES[path.extname(name)];
    if (!type || !/^[a-z0-9][a-z0-9._-]*$/i.test(name)) {
      return reply.code(404).send({ detail: 'not found', code: 'GABE_ERR_NOT_FOUND' });
    }
    try {
      const body = await readFile(path.join(WEB_DIR, name));
      return reply.type(type).header('cache-control', 'no-cache').send(body);
    } catch {
      return reply.code(404).send({ detail: 'not found', code: 'GABE_ERR_NOT_FOUND' });
    }
  };
  app.get('/', { schema: { hide: true } }, (_req, reply) => send('index.html', reply));
  app.get<{ Params: { name: string } }>('/web/:name', { schema: { hide: true } }, (req, reply) =>
    send(req.params.name, reply),
  );
};
