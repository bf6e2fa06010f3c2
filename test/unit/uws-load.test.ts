// Smoke test: the uWebSockets.js native binary loads on this machine (see scripts/patch-uws.mjs for the
// glibc < 2.38 fix applied at install time) and serves HTTP GET and POST-with-body requests.
import { describe, it, expect } from 'vitest';
import uWS from 'uWebSockets.js';

describe('uWebSockets.js', () => {
  it('loads, serves a GET and a POST with a JSON body, and closes', async () => {
    const app = uWS
      .App()
      .get('/hello', (res) => {
        res.writeHeader('content-type', 'text/plain').end('hello');
      })
      .post('/echo', (res, req) => {
        // Copy what we need out of req before any async work: it is only valid in this callback.
        const contentType = req.getHeader('content-type');
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
        });
        const chunks: Buffer[] = [];
        res.onData((chunk, isLast) => {
          chunks.push(Buffer.from(chunk.slice(0))); // chunk is neutered after this callback: copy it
          if (!isLast || aborted) return;
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          res.cork(() => {
            res.writeStatus('201 Created').writeHeader('content-type', 'application/json').end(JSON.stringify({ contentType, body }));
          });
        });
      });

    const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
      app.listen('127.0.0.1', 0, (socket) => (socket ? resolve(socket) : reject(new Error('listen failed'))));
    });
    try {
      const port = uWS.us_socket_local_port(listenSocket);
      expect(port).toBeGreaterThan(0);
      const base = `http://127.0.0.1:${port}`;

      const get = await fetch(`${base}/hello`);
      expect(get.status).toBe(200);
      expect(get.headers.get('content-type')).toBe('text/plain');
      expect(await get.text()).toBe('hello');

      const payload = {
        campaign: 42,
        tags: ['a', 'b'],
        text: 'x'.repeat(100_000),
      };
      const post = await fetch(`${base}/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
      });
      expect(post.status).toBe(201);
      expect(await post.json()).toEqual({
        contentType: 'application/json',
        body: payload,
      });

      const missing = await fetch(`${base}/nope`);
      expect(missing.status).toBe(404);
      await missing.arrayBuffer();
    } finally {
      uWS.us_listen_socket_close(listenSocket);
    }
  });
});
