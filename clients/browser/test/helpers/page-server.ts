import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { serveStatic } from './static.js';

/**
 * The TEST PAGE SERVER: HTTPS on 127.0.0.1, serving the test pages and the
 * built logger for every host name of its certificate. Chromium reaches it as
 * https://<name> (port 443 mapped to this port by --host-resolver-rules), so
 * one server is both the allowed origin and the disallowed one.
 */
export class PageServer {
  private server: https.Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly key: Buffer, private readonly cert: Buffer) {}

  async start(host = '127.0.0.1', port = 0): Promise<this> {
    this.server = https.createServer({ key: this.key, cert: this.cert }, (req, res) => {
      void serveStatic(req, res).then((done) => {
        if (!done) res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found (test page server)');
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server?.listen(port, host, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
